#!/bin/sh
# isobench probe: print every fact the suites read, in one container start.
#
# Output: one fact a line, "name<TAB>value"; a name ending in "[]" is one
# item of a list. The line "isobench-probe-end" closes the facts. Then, with
# ISOBENCH_PROBE_HOLD=1, the probe waits until its stdin is closed, so the
# harness can read the container's namespaces from the host side while it
# still runs.
#
# Only POSIX sh and busybox applets: the image contains nothing else.

fact() { printf '%s\t%s\n' "$1" "$(printf '%s' "$2" | tr '\t\n' '  ')"; }
item() { fact "$1[]" "$2"; }

fact probe.version 1
fact self.pid "$$"
fact id.uid "$(id -u 2>/dev/null)"
fact id.gid "$(id -g 2>/dev/null)"

for ns in pid pid_for_children mnt net uts ipc user cgroup time; do
    if [ -e "/proc/self/ns/$ns" ]; then
        fact "ns.$ns" "$(readlink "/proc/self/ns/$ns" 2>/dev/null)"
    fi
done

fact hostname "$(cat /proc/sys/kernel/hostname 2>/dev/null || hostname)"
fact pid1.cmdline "$(tr '\0' ' ' < /proc/1/cmdline 2>/dev/null | sed 's/ *$//')"

for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [ -r "$dir/cmdline" ] || continue
    line=$(tr '\0' ' ' < "$dir/cmdline" 2>/dev/null | sed 's/ *$//')
    [ -n "$line" ] || line="[$(cat "$dir/comm" 2>/dev/null)]"
    item proc "$pid $line"
done

while read -r _id _parent _dev _root point _rest; do
    item mount.point "$point"
done < /proc/self/mountinfo
while read -r line; do item mountinfo "$line"; done < /proc/self/mountinfo

if [ -d /sys/class/net ]; then
    for dir in /sys/class/net/*; do
        [ -e "$dir" ] || continue
        item net.if "${dir##*/} $(cat "$dir/address" 2>/dev/null)"
    done
elif ip -o link >/dev/null 2>&1; then
    # Without /sys (bwrap mounts none), netlink still gives each name and address, so
    # that a container's eth0 is distinguished from the host's.
    ip -o link | while read -r _number name rest; do
        name=${name%:}
        name=${name%%@*}
        item net.if "$name $(echo "$rest" | sed -n 's|.*link/[a-z0-9]* \([^ ]*\).*|\1|p')"
    done
else
    sed -n 's/^ *\([^:]*\):.*/\1/p' /proc/net/dev | while read -r name; do
        item net.if "$name"
    done
fi
# IPv4 routes from the kernel's table; the header line is skipped.
sed 1d /proc/net/route 2>/dev/null | while read -r iface dest _rest; do
    item net.route "$iface $dest"
done

while read -r line; do item cgroup "$line"; done < /proc/self/cgroup
memory_path=$(sed -n 's/^[0-9]*:\([^:]*,\)\{0,1\}memory\(,[^:]*\)\{0,1\}:\(.*\)$/\3/p' /proc/self/cgroup)
if [ -n "$memory_path" ]; then
    fact cgroup.memory.path "$memory_path"
    if [ -d "/sys/fs/cgroup/memory$memory_path" ]; then
        fact cgroup.memory.path_exists yes
    else
        fact cgroup.memory.path_exists no
    fi
fi
unified_path=$(sed -n 's/^0::\(.*\)$/\1/p' /proc/self/cgroup)
if [ -n "$unified_path" ]; then
    fact cgroup.unified.path "$unified_path"
fi

[ -r /proc/self/uid_map ] && while read -r line; do item uid_map "$line"; done < /proc/self/uid_map
[ -r /proc/self/gid_map ] && while read -r line; do item gid_map "$line"; done < /proc/self/gid_map

if [ -r /proc/sysvipc/shm ]; then
    sed 1d /proc/sysvipc/shm | while read -r key _rest; do item sysvipc.shm.key "$key"; done
    fact sysvipc.readable yes
else
    fact sysvipc.readable no
fi

while read -r name value _rest; do
    case "$name" in
        CapInh:|CapPrm:|CapEff:|CapBnd:|CapAmb:|Seccomp:|NoNewPrivs:|Uid:|Gid:|Cpus_allowed_list:)
            fact "status.${name%:}" "$value" ;;
    esac
done < /proc/self/status

fact cwd "$(pwd)"
[ -r /proc/self/limits ] && sed 1d /proc/self/limits | while read -r line; do item limits "$line"; done
lsm=$(cat /proc/self/attr/current 2>/dev/null)
[ -n "$lsm" ] && fact lsm.current "$lsm"

# Device nodes under /dev and one level below (/dev/pts, /dev/net).
for node in /dev/* /dev/*/*; do
    if [ -c "$node" ] && [ ! -L "$node" ]; then item dev.char "$node"; fi
    if [ -b "$node" ] && [ ! -L "$node" ]; then item dev.block "$node"; fi
done

# Paths the harness requests, separated by ":", such as host marker files.
old_ifs=$IFS
IFS=:
for path in ${ISOBENCH_PROBE_PATHS:-}; do
    if [ -e "$path" ]; then item path.exists "$path"; fi
done
IFS=$old_ifs

# Paths that runtimes mask: which exist, and which still show content (a file
# with data, a directory with entries). Reading one byte is enough.
IFS=:
for path in ${ISOBENCH_PROBE_MASKED:-}; do
    [ -e "$path" ] || continue
    item masked.present "$path"
    if [ -d "$path" ]; then
        [ -n "$(ls -A "$path" 2>/dev/null)" ] && item masked.visible "$path"
    else
        [ -n "$(head -c 1 "$path" 2>/dev/null | od -An -c)" ] && item masked.visible "$path"
    fi
done
IFS=$old_ifs

echo isobench-probe-end
if [ "${ISOBENCH_PROBE_HOLD:-0}" = 1 ]; then
    read -r _ || true
fi
