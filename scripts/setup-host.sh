#!/usr/bin/env bash
# Prepare this host for isobench: install the container runtimes and tools,
# make podman and dockerd usable, and create the Python virtualenv .venv.
#
# Usage: scripts/setup-host.sh             full set-up, as root
#        scripts/setup-host.sh --venv-only  only the virtualenv, any user
#
# Every step checks first and changes nothing when its work is already done,
# so a second run on a prepared host is quick. The host has no systemd, so
# this script starts dockerd itself and leaves it running in the background.
set -euo pipefail

readonly packages=(
    docker.io podman runc runsc catatonit busybox-static
    iproute2 util-linux procps fio hyperfine crun bubblewrap
    containerd lxc systemd-container
    docker-compose
    sockperf iperf3
    openssh-server
)
readonly apt_log=/var/log/isobench-apt.log

readonly docker=/usr/bin/docker # Debian's client, which matches Debian's dockerd
readonly dockerd=/usr/sbin/dockerd
readonly dockerd_log=/var/log/isobench-dockerd.log
readonly dockerd_pidfile=/var/run/docker.pid
readonly daemon_json=/etc/docker/daemon.json
# Without --network=none, runsc under this dockerd failed to start containers
# ("cannot run with network enabled in root network namespace"). With it, a
# container has only a loopback interface, whatever network is requested.
# dockerd reloads the runtimes in daemon.json on SIGHUP.
readonly runsc_runtime='{"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]}'
readonly dockerd_start_timeout=60 # seconds
readonly dockerd_reload_timeout=20 # seconds

readonly podman_ulimits_conf=/etc/containers/containers.conf.d/50-isobench-ulimits.conf
readonly podman_probe_image=localhost/isobench-setup-probe

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly repo_root
readonly venv=$repo_root/.venv
readonly venv_stamp=$venv/.installed

log() {
    printf 'setup-host: %s\n' "$*"
}

die() {
    printf 'setup-host: error: %s\n' "$*" >&2
    exit 1
}

install_packages() {
    local package status
    local missing=()
    for package in "${packages[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
        if [[ $status != "install ok installed" ]]; then
            missing+=("$package")
        fi
    done
    if ((${#missing[@]} == 0)); then
        log "Debian packages: already present"
        return
    fi

    log "Debian packages: installing ${missing[*]} (output in $apt_log)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get update >>"$apt_log" 2>&1; then
        tail -n 20 "$apt_log" >&2
        die "apt-get update failed; see $apt_log"
    fi
    # Services that packages start on install (ssh on every address, among others) are
    # not wanted: isobench starts what it needs itself. A policy that the host has is kept.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
    fi
    if ! apt-get install -y "${missing[@]}" >>"$apt_log" 2>&1; then
        ((made_policy)) && rm -f "$policy"
        tail -n 20 "$apt_log" >&2
        die "apt-get install ${missing[*]} failed; see $apt_log"
    fi
    ((made_policy)) && rm -f "$policy"
    log "Debian packages: installed ${missing[*]}"
}

# Print the smaller of two rlimit values as ulimit prints them, where
# "unlimited" is larger than any number.
min_limit() {
    if [[ $1 == unlimited ]]; then
        echo "$2"
    elif [[ $2 == unlimited ]] || (($1 <= $2)); then
        echo "$1"
    else
        echo "$2"
    fi
}

# Run `podman run --rm --runtime runc` on a one-file busybox image imported
# for the check, then remove the image. Store the combined output of
# `podman run` in podman_probe_output and return its exit status.
podman_probe_output=
run_podman_probe() {
    local rootfs status=0
    rootfs=$(mktemp -d)
    cp /bin/busybox "$rootfs/"
    if ! tar -C "$rootfs" -c . | podman import --quiet - "$podman_probe_image" >/dev/null; then
        rm -rf "$rootfs"
        die "podman import of a busybox rootfs as $podman_probe_image failed"
    fi
    rm -rf "$rootfs"

    podman_probe_output=$(podman run --rm --runtime runc "$podman_probe_image" /busybox true 2>&1) ||
        status=$?
    podman rmi --force "$podman_probe_image" >/dev/null ||
        log "podman: could not remove the image $podman_probe_image; remove it by hand"
    return "$status"
}

# Root podman 4.3 writes RLIMIT_NOFILE 1048576 into the OCI spec. Its built-in
# default_ulimits sets RLIMIT_NPROC to pid_max, but a default_ulimits list or
# --ulimit flags without nproc get RLIMIT_NPROC 1048576 as well. runc cannot
# raise a hard limit above its own without CAP_SYS_RESOURCE, which some hosts
# drop from the bounding set, and then every `podman run` fails with
# "error setting rlimit". The drop-in written here gives containers the
# caller's own limits instead, as dockerd's containers get its limits. nproc is
# capped at pid_max because podman lowers its own RLIMIT_NPROC to pid_max at
# start, and runc inherits that. podman's default OCI runtime stays as it is,
# because isobench passes --runtime itself.
configure_podman() {
    if run_podman_probe; then
        if [[ -e $podman_ulimits_conf ]]; then
            log "podman: ulimits in $podman_ulimits_conf already present"
        else
            log "podman: runs containers with runc, no extra config needed"
        fi
        return
    fi
    if [[ $podman_probe_output != *"error setting rlimit"* ]]; then
        die "podman run --runtime runc failed: $podman_probe_output"
    fi
    if [[ -e $podman_ulimits_conf ]]; then
        die "podman run --runtime runc still fails to set rlimits although" \
            "$podman_ulimits_conf exists; fix its default_ulimits: $podman_probe_output"
    fi

    local pid_max nofile nproc_hard nproc
    pid_max=$(</proc/sys/kernel/pid_max)
    nofile="$(ulimit -Sn):$(ulimit -Hn)"
    nproc_hard=$(min_limit "$(ulimit -Hu)" "$pid_max")
    nproc="$(min_limit "$(ulimit -Su)" "$nproc_hard"):$nproc_hard"

    mkdir -p "$(dirname "$podman_ulimits_conf")"
    cat >"$podman_ulimits_conf" <<EOF
# Written by isobench's scripts/setup-host.sh because \`podman run\` failed to
# set podman's default rlimits on this host: runc cannot raise a hard limit
# without CAP_SYS_RESOURCE. These are the limits of the shell that ran the
# script, with nproc capped at pid_max.
[containers]
default_ulimits = [
  "nofile=$nofile",
  "nproc=$nproc",
]
EOF
    if ! run_podman_probe; then
        die "podman run --runtime runc still fails after writing" \
            "$podman_ulimits_conf: $podman_probe_output"
    fi
    log "podman: wrote $podman_ulimits_conf (nofile=$nofile, nproc=$nproc)"
}

# Add the runsc runtime to daemon.json, keeping every other key. Print
# "unchanged" or "updated".
register_runsc_in_daemon_json() {
    python3 - "$daemon_json" "$runsc_runtime" <<'EOF'
import json
import os
import sys

path, runtime_json = sys.argv[1], sys.argv[2]
runtime = json.loads(runtime_json)
try:
    with open(path, encoding="utf-8") as file:
        config = json.load(file)
except FileNotFoundError:
    config = {}
except json.JSONDecodeError as error:
    sys.exit(f"setup-host: error: {path} is not valid JSON ({error}); fix or remove it")
if not isinstance(config, dict) or not isinstance(config.get("runtimes", {}), dict):
    sys.exit(f"setup-host: error: {path} must be a JSON object whose 'runtimes' is an object")

runtimes = config.setdefault("runtimes", {})
if runtimes.get("runsc") == runtime:
    print("unchanged")
    sys.exit(0)
runtimes["runsc"] = runtime

os.makedirs(os.path.dirname(path), exist_ok=True)
temporary_path = path + ".isobench-tmp"
with open(temporary_path, "w", encoding="utf-8") as file:
    json.dump(config, file, indent=2)
    file.write("\n")
os.replace(temporary_path, path)
print("updated")
EOF
}

docker_responds() {
    timeout 10 "$docker" info --format '{{.ServerVersion}}' >/dev/null 2>&1
}

# Succeed when the running dockerd lists runsc with the settings in runsc_runtime.
runsc_registered() {
    local runtimes
    runtimes=$(timeout 10 "$docker" info --format '{{json .Runtimes}}' 2>/dev/null) || return 1
    python3 -c '
import json, sys
runtimes, expected = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.exit(0 if runtimes.get("runsc") == expected else 1)
' "$runtimes" "$runsc_runtime"
}

# Print the PID in dockerd's pidfile if a process named dockerd has it.
read_dockerd_pidfile() {
    local pid
    [[ -r $dockerd_pidfile ]] || return 1
    pid=$(<"$dockerd_pidfile")
    [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]] || return 1
    echo "$pid"
}

# Print the PID of the dockerd that listens on the default socket: the one in
# its pidfile, or else the only process named dockerd. Fail when there is none
# or more than one.
find_running_dockerd_pid() {
    local pid comm_file
    local found=()
    if read_dockerd_pidfile; then
        return 0
    fi
    for comm_file in /proc/[0-9]*/comm; do
        if [[ $(cat "$comm_file" 2>/dev/null) == dockerd ]]; then
            pid=${comm_file#/proc/}
            found+=("${pid%/comm}")
        fi
    done
    if ((${#found[@]} != 1)); then
        return 1
    fi
    echo "${found[0]}"
}

show_dockerd_log() {
    printf 'setup-host: last lines of %s:\n' "$dockerd_log" >&2
    tail -n 20 "$dockerd_log" >&2 || true
}

reload_dockerd() {
    local pid deadline
    pid=$(find_running_dockerd_pid) ||
        die "dockerd responds but lacks the runsc runtime, and its PID is not in" \
            "$dockerd_pidfile (nor is there exactly one dockerd process); restart dockerd by hand"
    kill -HUP "$pid"

    deadline=$((SECONDS + dockerd_reload_timeout))
    until runsc_registered; do
        if ((SECONDS >= deadline)); then
            die "dockerd (PID $pid) did not register runsc within ${dockerd_reload_timeout} s" \
                "of SIGHUP; check $daemon_json and dockerd's log"
        fi
        sleep 1
    done
    log "dockerd: reloaded $daemon_json with SIGHUP (PID $pid), runsc registered"
}

start_dockerd() {
    local pid deadline action
    # A dockerd whose PID is in the pidfile and that does not respond yet is
    # the default one still starting. Other dockerd processes may serve other
    # sockets, so they do not count.
    if pid=$(read_dockerd_pidfile); then
        action="waited for the running dockerd"
    else
        # setsid detaches dockerd from this session and its terminal, and the
        # redirections keep it from holding the caller's output open, so make
        # and CI do not wait for it. It runs from / so that it does not keep
        # the repository directory busy. $! is dockerd's PID, because setsid
        # forks only when it is a process group leader, which a background job
        # of a shell without job control is not.
        (
            cd /
            exec setsid env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
                "$dockerd" </dev/null >>"$dockerd_log" 2>&1
        ) &
        pid=$!
        action="started dockerd"
    fi

    deadline=$((SECONDS + dockerd_start_timeout))
    until docker_responds; do
        if ! kill -0 "$pid" 2>/dev/null; then
            if [[ $action == "waited for the running dockerd" ]]; then
                # That dockerd was shutting down, not starting: start a new one.
                log "dockerd: PID $pid exited while shutting down; starting a new one"
                start_dockerd
                return
            fi
            show_dockerd_log
            die "dockerd (PID $pid) exited before responding; see $dockerd_log"
        fi
        if ((SECONDS >= deadline)); then
            show_dockerd_log
            die "dockerd (PID $pid) did not respond to \`docker info\` within" \
                "${dockerd_start_timeout} s; see $dockerd_log"
        fi
        sleep 1
    done
    if ! runsc_registered; then
        die "dockerd (PID $pid) runs but lacks the runsc runtime from $daemon_json; see $dockerd_log"
    fi
    log "dockerd: $action (PID $pid, log $dockerd_log), runsc registered"
}

configure_docker() {
    local daemon_json_state
    daemon_json_state=$(register_runsc_in_daemon_json)
    if [[ $daemon_json_state == unchanged ]]; then
        log "docker: runsc runtime in $daemon_json already present"
    else
        log "docker: registered the runsc runtime in $daemon_json"
    fi

    if ! docker_responds; then
        start_dockerd
    elif runsc_registered; then
        log "dockerd: already running with the runsc runtime"
    else
        reload_dockerd
    fi
}

create_venv() {
    local created=false
    if ! "$venv/bin/python" -c '' 2>/dev/null; then
        "${PYTHON:-python3}" -m venv --clear "$venv"
        created=true
    fi
    if [[ $created == false && -e $venv_stamp && ! $repo_root/pyproject.toml -nt $venv_stamp ]]; then
        log "virtualenv: $venv already present"
        compile_sources
        return
    fi

    log "virtualenv: installing isobench with its dev extras into $venv"
    (cd "$repo_root" && "$venv/bin/pip" install --quiet --disable-pip-version-check -e '.[dev]') ||
        die "pip install -e '.[dev]' into $venv failed; see pip's output above"
    touch "$venv_stamp"
    log "virtualenv: installed into $venv"
    compile_sources
}

# Writes the bytecode of src/ ahead of time. Where PYTHONDONTWRITEBYTECODE is set,
# Python would otherwise compile every module at every start, and isobox, a runtime
# started once per container, would take twice as long to start.
compile_sources() {
    "$venv/bin/python" -m compileall -q "$repo_root/src" >/dev/null ||
        die "compiling $repo_root/src failed; see the output above"
}

main() {
    case ${1:-} in
        "") ;;
        --venv-only)
            create_venv
            return
            ;;
        *) die "unknown argument '$1'; usage: $0 [--venv-only]" ;;
    esac

    if ((EUID != 0)); then
        die "must run as root to install packages and start dockerd; use --venv-only for the virtualenv alone"
    fi
    install_packages
    configure_podman
    configure_docker
    create_venv
}

main "$@"
