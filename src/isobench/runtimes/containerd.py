"""containerd driven through ``ctr``, with a private containerd daemon per run.

``prepare`` starts a containerd of its own for each run: its own root, state
directory, socket and config, never the host's. The daemon runs in a mount
namespace of its own in which ``/run/containerd`` is a directory of its state
directory. containerd 1.6's runc shim puts its sockets in
``/run/containerd/s`` and runc's state in ``/run/containerd/runc`` whatever
the daemon's state directory is, so without that namespace a run would write
into the host containerd's directory. The namespace also keeps the daemon's
overlay mounts off the host's mount table: they end with its last process.

The probe image is imported as an OCI image layout archive built here from
the image's rootfs directory, so nothing is pulled.

``python -m isobench.runtimes.containerd stop --state DIR`` stops a run's
daemon, its shims and their containers. The journal runs it at the end of a
run, and ``isobench clean`` after a harness that was killed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import itertools
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from isobench import commands
from isobench.errors import HarnessError, IsobenchError
from isobench.journal import Entry
from isobench.model import CAPABILITIES, Request, capability_name
from isobench.probe import host
from isobench.runtimes.base import (
    Adapter,
    Availability,
    Context,
    Launched,
    ProbeImage,
    journal_cgroups,
    popen,
    unmanaged_network_reason,
)
from isobench.runtimes.oci import USERNS_HOST_ID, USERNS_SIZE, host_bounding_set

log = logging.getLogger(__name__)

#: The ctr namespace of every container of the private daemon.
NAMESPACE = "isobench"
ROOT_BASE = Path("/var/lib/isobench/containerd")
STATE_BASE = Path("/run/isobench/containerd")
#: The directory of containerd 1.6's runc shim sockets and runc's state, fixed in the
#: shim whatever the daemon's own state directory is.
SHIM_DIRECTORY = Path("/run/containerd")
#: Seconds to wait until a new daemon responds to ``ctr version``.
START_TIMEOUT_S = 30.0
#: Seconds between SIGTERM and SIGKILL when the daemon is stopped.
STOP_GRACE_S = 5.0
#: Substrings of ctr's messages that mean a container or task is already gone.
_ABSENT = ("not found",)
_INSTALL_HINT = "Install it with 'apt-get install containerd' (it brings ctr and the runc shim)."

_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_CONFIG = "application/vnd.oci.image.config.v1+json"
_LAYER = "application/vnd.oci.image.layer.v1.tar"
_REF_NAME = "org.opencontainers.image.ref.name"
#: The annotation from which ``ctr images import`` takes a full image name.
_IMAGE_NAME = "io.containerd.image.name"

#: Request fields that ctr 1.6's ``run`` has no option for, with the reason a check skips.
CANNOT: dict[str, str] = {
    "hostname": "ctr 1.6 'run' has no --hostname option: a private UTS namespace keeps "
    "the host's hostname",
    "user": "ctr 1.6 'run' has no --user option (only 'ctr task exec' has one), so the "
    "process runs as the image's user, root",
    "ulimits": "ctr 1.6 'run' has no option for resource limits (setrlimit); the process "
    "gets nofile 1024:1024 from containerd's default spec",
    "init": "ctr has no init process of its own to run in front of the command",
    "memory_swap": "ctr 1.6 'run' has no option for a memory plus swap limit",
    "pids_limit": "ctr 1.6 'run' has no option for a task limit (pids.max)",
    "cpuset_cpus": "ctr 1.6 'run' has no option for a cpuset",
    "device_write_bps": "ctr 1.6 'run' has no option for block I/O throttling",
    "device_read_bps": "ctr 1.6 'run' has no option for block I/O throttling",
}


@dataclass
class Daemon:
    """A containerd started for one run, and where its files are."""

    run_id: str
    root: Path
    state: Path
    process: subprocess.Popen[bytes] | None = None
    imported: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def socket(self) -> Path:
        return self.state / "containerd.sock"

    @property
    def config(self) -> Path:
        return self.state / "config.toml"

    @property
    def log_file(self) -> Path:
        return self.state / "containerd.log"

    @property
    def pid_file(self) -> Path:
        return self.state / "containerd.pid"

    @property
    def fifo_dir(self) -> Path:
        return self.state / "fifo"

    @property
    def shim_dir(self) -> Path:
        """The directory mounted on /run/containerd in the daemon's mount namespace."""
        return self.state / "shim"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise HarnessError(f"the containerd of run {self.run_id} was not started")
        return self.process.pid


def daemon_dirs(run_id: str) -> tuple[Path, Path]:
    """Return the root and state directories of a run's daemon."""
    root = Path(os.environ.get("ISOBENCH_CONTAINERD_ROOT", str(ROOT_BASE)))
    state = Path(os.environ.get("ISOBENCH_CONTAINERD_STATE", str(STATE_BASE)))
    return root / run_id, state / run_id


def _toml_string(text: str) -> str:
    return json.dumps(text)


def config_toml(root: Path, state: Path, socket_path: Path) -> str:
    """Write a containerd 1.6 config (version 2) that listens on unix sockets only.

    The CRI plugin is off, so no streaming server listens on TCP, and the metrics
    address is empty. The opt plugin is off, because it would create /opt/containerd.
    """
    disabled = [
        "io.containerd.grpc.v1.cri",
        "io.containerd.internal.v1.opt",
        "io.containerd.snapshotter.v1.aufs",
        "io.containerd.snapshotter.v1.btrfs",
        "io.containerd.snapshotter.v1.devmapper",
        "io.containerd.snapshotter.v1.zfs",
    ]
    lines = [
        "version = 2",
        f"root = {_toml_string(str(root))}",
        f"state = {_toml_string(str(state))}",
        f"disabled_plugins = [{', '.join(_toml_string(name) for name in disabled)}]",
        "",
        "[grpc]",
        f"  address = {_toml_string(str(socket_path))}",
        "",
        "[ttrpc]",
        f"  address = {_toml_string(str(socket_path) + '.ttrpc')}",
        "",
        "[debug]",
        f"  address = {_toml_string(str(state / 'debug.sock'))}",
        "",
        "[metrics]",
        '  address = ""',
        "",
    ]
    return "\n".join(lines)


# -- the image archive ----------------------------------------------------


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def _layer_tar(rootfs: Path, out: Path) -> None:
    """Write the files of ``rootfs`` as an uncompressed layer, with numeric owners."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as layer:
        for path in sorted(rootfs.rglob("*")):
            info = layer.gettarinfo(str(path), arcname=str(path.relative_to(rootfs)))
            info.uname = info.gname = ""
            if info.isfile():
                with path.open("rb") as handle:
                    layer.addfile(info, handle)
            else:
                layer.addfile(info)


def write_oci_archive(rootfs: Path, reference: str, out: Path) -> dict[str, str]:
    """Write an OCI image layout archive of ``rootfs`` named ``reference`` to ``out``.

    The archive contains ``oci-layout``, ``index.json`` and three blobs: the
    layer, the image config and the manifest. Returns their digests by role.
    """
    layer_file = out.with_name(out.name + ".layer")
    _layer_tar(rootfs, layer_file)
    try:
        layer_digest = _file_digest(layer_file)
        image_config = {
            "architecture": _architecture(),
            "os": "linux",
            "config": {"Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
        config_bytes = json.dumps(image_config, sort_keys=True).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": _MANIFEST,
            "config": {
                "mediaType": _CONFIG,
                "digest": _digest(config_bytes),
                "size": len(config_bytes),
            },
            "layers": [
                {"mediaType": _LAYER, "digest": layer_digest, "size": layer_file.stat().st_size}
            ],
        }
        manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
        tag = reference.rsplit(":", 1)[-1]
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": _MANIFEST,
                    "digest": _digest(manifest_bytes),
                    "size": len(manifest_bytes),
                    "annotations": {_REF_NAME: tag, _IMAGE_NAME: reference},
                }
            ],
        }
        index_bytes = json.dumps(index, sort_keys=True).encode()
        with tarfile.open(out, "w") as archive:
            _add_bytes(archive, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
            _add_bytes(archive, "index.json", index_bytes)
            archive.add(str(layer_file), arcname=_blob_path(layer_digest))
            _add_bytes(archive, _blob_path(_digest(config_bytes)), config_bytes)
            _add_bytes(archive, _blob_path(_digest(manifest_bytes)), manifest_bytes)
    finally:
        layer_file.unlink(missing_ok=True)
    return {
        "layer": layer_digest,
        "config": _digest(config_bytes),
        "manifest": _digest(manifest_bytes),
    }


def _blob_path(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(time.time())
    archive.addfile(info, io.BytesIO(data))


def _architecture() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


# -- request translation --------------------------------------------------


def capability_options(request: Request, host_caps: Sequence[str]) -> list[str]:
    """Translate cap_add and cap_drop into ctr's --cap-add and --cap-drop.

    ctr 1.6 accepts CAP_ALL and silently ignores it, so ALL becomes the whole
    list: every capability of the host's bounding set for an add, every
    capability for a drop. ctr applies the adds before the drops, so a
    capability that is both added and dropped is not dropped: as with the
    engines, an add wins.
    """
    adds = [capability_name(c) for c in request.cap_add]
    drops = [capability_name(c) for c in request.cap_drop]
    if "CAP_ALL" in adds:
        adds = list(host_caps)
    if "CAP_ALL" in drops:
        drops = list(CAPABILITIES)
    options: list[str] = []
    for cap in dict.fromkeys(adds):
        options += ["--cap-add", cap]
    for cap in dict.fromkeys(drops):
        if cap not in adds:
            options += ["--cap-drop", cap]
    return options


def run_options(
    request: Request, daemon_pid: int, host_caps: Sequence[str] = CAPABILITIES
) -> list[str]:
    """Translate a request into ``ctr run`` options.

    A host namespace is joined through the daemon's own (``--with-ns
    TYPE:/proc/DAEMON/ns/TYPE``): the daemon runs in the host's PID, IPC and
    UTS namespaces, and ctr has no other way to keep one.
    """
    options: list[str] = []
    for key, value in request.env:
        options += ["--env", f"{key}={value}"]
    if request.workdir is not None:
        options += ["--cwd", request.workdir]
    for kind, sharing in (("pid", request.pid), ("ipc", request.ipc), ("uts", request.uts)):
        if sharing == "host":
            options += ["--with-ns", f"{kind}:/proc/{daemon_pid}/ns/{kind}"]
    if request.network == "host":
        options += ["--net-host"]
    if request.userns == "private":
        mapping = f"0:{USERNS_HOST_ID}:{USERNS_SIZE}"
        options += ["--uidmap", mapping, "--gidmap", mapping]
    options += capability_options(request, host_caps)
    # Neither seccomp value needs an option: ctr applies a seccomp filter only with
    # --seccomp, and "unconfined" asks for no filter.
    if request.no_new_privs is False:
        options += ["--allow-new-privs"]
    if request.privileged:
        options += ["--privileged"]
    if request.read_only:
        options += ["--read-only"]
    for mount in request.mounts:
        flags = "rbind:ro" if mount.read_only else "rbind:rw"
        options += ["--mount", f"type=bind,src={mount.source},dst={mount.target},options={flags}"]
    for tmpfs in request.tmpfs:
        flags = f"nosuid:nodev:size={int(tmpfs.size)}"
        options += ["--mount", f"type=tmpfs,src=tmpfs,dst={tmpfs.target},options={flags}"]
    for device in request.devices:
        options += ["--device", device]
    if request.memory is not None:
        options += ["--memory-limit", str(int(request.memory))]
    if request.cpus is not None:
        options += ["--cpus", f"{request.cpus:g}"]
    if request.cpu_shares is not None:
        options += ["--cpu-shares", str(request.cpu_shares)]
    return options


_DEFAULT_REQUEST = Request()


def unsupported_reason(request: Request) -> str | None:
    """Return why ctr 1.6 cannot express ``request``, or None when it can."""
    network = unmanaged_network_reason("ctr", request)
    if network is not None:
        return network
    for name, reason in CANNOT.items():
        value = getattr(request, name)
        if name == "init":
            if value:
                return reason
        elif value != getattr(_DEFAULT_REQUEST, name):
            return reason
    if request.network == "default":
        return (
            "ctr has no network of its own unless a CNI plugin is configured (--cni), and "
            "none is here; a new network namespace holds only a loopback"
        )
    if request.cgroupns == "private":
        # containerd's default spec (defaultUnixNamespaces in oci/spec.go) lists pid, ipc,
        # uts, mount and network. NOTE: checked by running only on a cgroup v1 hybrid host.
        return (
            "ctr 1.6 'run' has no option that creates a cgroup namespace (--with-ns only "
            "joins an existing one), and the spec it builds has none"
        )
    if request.masked_paths == "unconfined" and not request.privileged:
        return (
            "ctr 1.6 has no option to unmask /proc and /sys paths; only --privileged "
            "drops the masked and read-only paths"
        )
    for mount in request.mounts:
        if "," in mount.source or "," in mount.target:
            return f"ctr's --mount splits at commas, so it cannot bind {mount.source!r}"
    for tmpfs in request.tmpfs:
        if "," in tmpfs.target:
            return f"ctr's --mount splits at commas, so it cannot mount a tmpfs on {tmpfs.target!r}"
    for key, _value in request.env:
        if "=" in key:
            return (
                f"the environment variable name {key!r} contains '=', which ctr's --env splits at"
            )
    return None


def parse_task_pid(output: str, name: str) -> int | None:
    """Return the PID of the task ``name`` in ``ctr task ls`` output, or None."""
    for line in output.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == name and fields[1].isdigit():
            return int(fields[1]) or None
    return None


def parse_task_status(output: str, name: str) -> str | None:
    """Return the status (RUNNING, STOPPED, ...) of the task ``name`` in ``ctr task ls``."""
    for line in output.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[0] == name:
            return fields[2]
    return None


def ctr_failure(exit_code: int, stderr: str) -> str | None:
    """Return ctr's own error message when ctr, not the container's command, failed.

    ctr exits 1 and prints ``ctr: MESSAGE`` when it cannot create or start the
    task. A command in the container may also exit 1, so the message decides.
    """
    if exit_code != 1:
        return None
    for line in stderr.splitlines():
        if line.startswith("ctr: "):
            return f"ctr itself failed: {line.removeprefix('ctr: ').strip()}"
    return None


# -- the adapter -----------------------------------------------------------


def _find(env_name: str, default: str) -> str | None:
    configured = os.environ.get(env_name) or default
    return shutil.which(configured)


class ContainerdAdapter(Adapter):
    """containerd 1.6 through ctr, with a containerd daemon of its own per run."""

    name = "containerd"
    family = "containerd"

    def __init__(self) -> None:
        self._availability: Availability | None = None
        self._daemons: dict[str, Daemon] = {}
        self._lock = threading.Lock()

    @property
    def ctr(self) -> str:
        return _find("ISOBENCH_CTR", "ctr") or "ctr"

    @property
    def containerd(self) -> str:
        return _find("ISOBENCH_CONTAINERD", "containerd") or "containerd"

    # -- discovery -------------------------------------------------------

    def availability(self) -> Availability:
        if self._availability is None:
            self._availability = self._check_availability()
        return self._availability

    def _check_availability(self) -> Availability:
        found: dict[str, str] = {}
        for env_name, binary in (
            ("ISOBENCH_CTR", "ctr"),
            ("ISOBENCH_CONTAINERD", "containerd"),
            ("", "containerd-shim-runc-v2"),
            ("", "runc"),
            ("", "unshare"),
        ):
            path = _find(env_name, binary) if env_name else shutil.which(binary)
            if path is None:
                named = os.environ.get(env_name) if env_name else None
                source = f" (set by {env_name})" if named else ""
                return Availability(
                    False,
                    reason=f"'{named or binary}'{source} not found",
                    hint=_INSTALL_HINT,
                )
            found[binary] = path
        versions: dict[str, str] = {}
        for binary in ("ctr", "containerd"):
            try:
                result = commands.run([found[binary], "--version"], timeout=30)
            except IsobenchError as exc:
                return Availability(False, reason=str(exc), hint=_INSTALL_HINT)
            # "ctr github.com/containerd/containerd 1.6.20~ds1"
            words = result.stdout.split()
            versions[binary] = words[2] if len(words) > 2 else result.stdout.strip()
        problem = self._config_problem(found["containerd"])
        if problem:
            return Availability(
                False,
                version=versions["containerd"],
                reason=problem,
                hint="The installed containerd rejects the config that isobench writes; "
                "check its version (isobench writes a version 2 config for containerd 1.6).",
            )
        details = {
            "ctr": found["ctr"],
            "ctr_version": versions["ctr"],
            "containerd": found["containerd"],
            "containerd_version": versions["containerd"],
            "shim": found["containerd-shim-runc-v2"],
        }
        return Availability(True, version=versions["containerd"], details=details)

    def _config_problem(self, containerd: str) -> str:
        """Return containerd's own message when it cannot load the config of a run, or "".

        ``config dump`` reads the config without starting the daemon or creating its
        directories. NOTE: a daemon that loads its config and then fails (a socket it
        cannot bind, a snapshotter the filesystem lacks) is reported by ``prepare``, as
        an error with the daemon's log, on every check of the run.
        """
        with tempfile.TemporaryDirectory(prefix="isobench-containerd-") as scratch:
            base = Path(scratch)
            config = base / "config.toml"
            config.write_text(config_toml(base / "root", base / "state", base / "c.sock"))
            result = commands.run(
                [containerd, "--config", str(config), "config", "dump"], timeout=30, check=False
            )
        if result.returncode == 0:
            return ""
        message = result.stderr.strip() or result.stdout.strip()
        return f"'containerd config dump' failed with exit status {result.returncode}: {message}"

    def unsupported(self, request: Request) -> str | None:
        return unsupported_reason(request)

    def runtime_failure(self, exit_code: int, stderr: str) -> str | None:
        return ctr_failure(exit_code, stderr)

    # -- the daemon ------------------------------------------------------

    def prepare(self, ctx: Context) -> None:
        if ctx.image is None:
            raise HarnessError("no probe image was built before preparing the runtimes")
        daemon = self._start_daemon(ctx)
        self._ensure_image(daemon, ctx.image)
        static = ctx.images.get("static")
        if static is not None:
            self._ensure_image(daemon, static)

    def _daemon(self, ctx: Context) -> Daemon:
        with self._lock:
            daemon = self._daemons.get(ctx.run_id)
        if daemon is None or daemon.process is None:
            raise HarnessError(f"the containerd of run {ctx.run_id} was not started (prepare)")
        return daemon

    def _start_daemon(self, ctx: Context) -> Daemon:
        with self._lock:
            if ctx.run_id in self._daemons:
                return self._daemons[ctx.run_id]
            root, state = daemon_dirs(ctx.run_id)
            daemon = Daemon(ctx.run_id, root, state)
            self._daemons[ctx.run_id] = daemon

        if not SHIM_DIRECTORY.exists():
            # The daemon's mount namespace needs a mount point there; it stays empty on the host.
            # If a host containerd has put files there since, rmdir leaves it in place.
            ctx.journal.record(
                "directory",
                str(SHIM_DIRECTORY),
                ["rmdir", str(SHIM_DIRECTORY)],
                runtime=self.name,
                absent=("No such file", "Directory not empty"),
            )
            SHIM_DIRECTORY.mkdir(mode=0o711, parents=True)
        for base in (root.parent, state.parent):
            if not base.exists():
                # Shared by the runs of this host: removed only once it is empty.
                ctx.journal.record(
                    "directory",
                    str(base),
                    ["rmdir", str(base)],
                    runtime=self.name,
                    absent=("No such file", "Directory not empty"),
                )
                base.mkdir(mode=0o711, parents=True)
        self._record_directory(ctx, root, ["rm", "-rf", str(root)])
        root.mkdir(mode=0o711, parents=True)
        self._record_directory(ctx, state, ["rm", "-rf", str(state)])
        state.mkdir(mode=0o711, parents=True)
        daemon.shim_dir.mkdir(mode=0o711)
        daemon.fifo_dir.mkdir(mode=0o700)
        daemon.config.write_text(config_toml(root, state, daemon.socket))

        ctx.journal.record("daemon", str(state), removal_argv("stop", state), runtime=self.name)
        argv = self.daemon_argv(daemon)
        log.debug("starting containerd for run %s: %s", ctx.run_id, shlex.join(argv))
        with daemon.log_file.open("ab") as log_handle:
            daemon.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        daemon.pid_file.write_text(f"{daemon.process.pid}\n")
        # Reap the daemon whenever it exits, so that no zombie stays behind.
        threading.Thread(target=daemon.process.wait, daemon=True).start()
        self._wait_until_ready(daemon, argv)
        return daemon

    def _record_directory(self, ctx: Context, path: Path, remove: list[str]) -> Entry:
        return ctx.journal.record(
            "directory", str(path), remove, runtime=self.name, absent=("No such file",)
        )

    def daemon_argv(self, daemon: Daemon) -> list[str]:
        """Return the command that starts the daemon in a mount namespace of its own.

        unshare and sh exec in place, so the PID of the command is containerd's.
        Mounts of the host still reach the namespace (slave propagation), and its
        own mounts stay in it.
        """
        script = 'mount --bind "$0" /run/containerd && exec "$@"'
        return [
            "unshare",
            "--mount",
            "--propagation",
            "slave",
            "--",
            "sh",
            "-c",
            script,
            str(daemon.shim_dir),
            self.containerd,
            "--config",
            str(daemon.config),
        ]

    def _ctr(self, daemon: Daemon) -> list[str]:
        return [self.ctr, "--address", str(daemon.socket), "--namespace", NAMESPACE]

    def _wait_until_ready(self, daemon: Daemon, argv: list[str]) -> None:
        version = [*self._ctr(daemon), "version"]
        deadline = time.monotonic() + START_TIMEOUT_S
        last = ""
        while time.monotonic() < deadline:
            assert daemon.process is not None
            if daemon.process.poll() is not None:
                last = f"containerd exited with status {daemon.process.returncode}"
                break
            if daemon.socket.exists():
                result = commands.run(version, timeout=10, check=False)
                if result.returncode == 0:
                    return
                last = result.stderr.strip()
            time.sleep(0.2)
        else:
            last = f"'{shlex.join(version)}' did not succeed within {START_TIMEOUT_S:g} s: {last}"
        raise HarnessError(
            f"containerd did not start: {last}\ncommand: {shlex.join(argv)}\n"
            f"last lines of {daemon.log_file}:\n{_tail(daemon.log_file)}"
        )

    def _ensure_image(self, daemon: Daemon, image: ProbeImage) -> None:
        """Import an image of the harness into the run's daemon unless it is there already."""
        with daemon.lock:
            if image.reference in daemon.imported:
                return
            archive = daemon.state / f"image-{image.kind}-{image.tag}.tar"
            write_oci_archive(image.rootfs, image.reference, archive)
            try:
                commands.run([*self._ctr(daemon), "images", "import", str(archive)], timeout=300)
            finally:
                archive.unlink(missing_ok=True)
            daemon.imported.add(image.reference)
        log.debug("imported the image %s into containerd of run %s", image.reference, daemon.run_id)

    # -- containers ------------------------------------------------------

    def launch(
        self, ctx: Context, request: Request, argv: Sequence[str], env: dict[str, str]
    ) -> Launched:
        daemon = self._daemon(ctx)
        image = ctx.image_for(request)
        self._ensure_image(daemon, image)
        name = ctx.container_name(self.name)

        # A cgroup path of our own, so that what a container leaves can be found and removed.
        cgroup_path = f"/{name}"
        entries = [entry for _, entry in journal_cgroups(ctx, self.name, cgroup_path)]
        remove = removal_argv("remove", daemon.state, "--name", name)
        entries.append(ctx.journal.record("container", name, remove, runtime=self.name))

        options = run_options(request, daemon.pid, host_bounding_set())
        for key, value in env.items():
            options += ["--env", f"{key}={value}"]
        command = [
            *self._ctr(daemon),
            *("run", "--rm", "--fifo-dir", str(daemon.fifo_dir), "--cgroup", cgroup_path),
            *("--label", f"isobench.run={ctx.run_id}"),
            *options,
            image.reference,
            name,
            *argv,
        ]
        process = popen(command)
        return Launched(name=name, process=process, argv=command, entries=entries)

    def host_pid(self, ctx: Context, launched: Launched) -> int | None:
        command = [*self._ctr(self._daemon(ctx)), "task", "ls"]
        launched.commands.append(shlex.join(command))
        result = commands.run(command, timeout=30, check=False)
        return parse_task_pid(result.stdout, launched.name)

    def wait_started(self, ctx: Context, launched: Launched, deadline: float) -> None:
        # 'ctr run' loses the end of stdin when stdin closes before the task has
        # started: a command that reads to the end (cat) then never exits.
        command = [*self._ctr(self._daemon(ctx)), "task", "ls"]
        while launched.process.poll() is None and time.monotonic() < deadline:
            result = commands.run(command, timeout=30, check=False)
            if parse_task_status(result.stdout, launched.name) in ("RUNNING", "STOPPED"):
                return
            time.sleep(0.02)

    def _exec_command(
        self, ctx: Context, launched: Launched, argv: Sequence[str], detach: bool
    ) -> list[str]:
        daemon = self._daemon(ctx)
        with self._lock:
            number = len(launched.state) + 1
            exec_id = f"exec-{number}"
            launched.state[exec_id] = " ".join(argv)
        command = [*self._ctr(daemon), "task", "exec", "--fifo-dir", str(daemon.fifo_dir)]
        if detach:
            command.append("--detach")
        command += ["--exec-id", exec_id, launched.name, *argv]
        launched.commands.append(shlex.join(command))
        return command

    def exec_detached(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> None:
        command = self._exec_command(ctx, launched, argv, detach=True)
        commands.run(command, timeout=60, output_to_files=True)

    def exec_output(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> str:
        command = self._exec_command(ctx, launched, argv, detach=False)
        return commands.run(command, timeout=60).stdout

    def stop(self, ctx: Context, launched: Launched, grace_s: float) -> None:
        kill = [*self._ctr(self._daemon(ctx)), "task", "kill", "--signal"]
        launched.commands.append(shlex.join([*kill, "SIGTERM", launched.name]))
        commands.run([*kill, "SIGTERM", launched.name], timeout=60, check=False)
        try:
            launched.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            launched.commands.append(shlex.join([*kill, "SIGKILL", launched.name]))
            commands.run([*kill, "SIGKILL", launched.name], timeout=60, check=False)

    def storage_device(self, ctx: Context) -> tuple[str, int, int]:
        root, _ = daemon_dirs(ctx.run_id)
        try:
            return host.block_device(root)
        except OSError as exc:
            raise HarnessError(f"containerd stores the run's snapshots in {root}: {exc}") from None


def removal_argv(verb: str, state: Path, *options: str) -> list[str]:
    """Return the command of :func:`main` that removes a daemon ("stop") or a container
    ("remove"), for the journal."""
    return [
        sys.executable,
        "-m",
        "isobench.runtimes.containerd",
        verb,
        "--state",
        str(state),
        *options,
    ]


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({path} cannot be read: {exc.strerror})"


# -- removal, also after a harness that was killed ---------------------------


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _alive(pid: int) -> bool:
    """Tell whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def is_daemon(cmdline: Sequence[str], config: Path) -> bool:
    """Tell whether a command line is containerd started with ``config``."""
    if not cmdline or not Path(cmdline[0]).name.startswith("containerd"):
        return False
    return any(
        flag in ("--config", "-c") and value == str(config)
        for flag, value in itertools.pairwise(cmdline)
    )


def is_shim(cmdline: Sequence[str], socket_path: Path) -> bool:
    """Tell whether a command line is a containerd shim started for ``socket_path``."""
    if not cmdline or not Path(cmdline[0]).name.startswith("containerd-shim"):
        return False
    return any(
        flag == "-address" and value == str(socket_path)
        for flag, value in itertools.pairwise(cmdline)
    )


def _descendants(parents: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid in _pids():
        parent = _parent(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    pending = list(parents)
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def _kill(pids: set[int], signal_number: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal_number)


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    left = {pid for pid in pids if _alive(pid)}
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {pid for pid in left if _alive(pid)}
    return left


def _mounts_under(directories: Sequence[Path]) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == str(d) or point.startswith(f"{d}/") for d in directories):
            found.append(point)
    return found


def stop_daemon(state: Path, timeout: float = 20.0) -> list[str]:
    """Stop the daemon of the state directory ``state``, its shims and their containers,
    and unmount what is still mounted under its directories.

    Only a process whose command line names this state directory's config or
    socket is signalled. Returns what is left; an empty list means nothing is.
    """
    config = state / "config.toml"
    socket_path = state / "containerd.sock"
    root = Path(os.environ.get("ISOBENCH_CONTAINERD_ROOT", str(ROOT_BASE))) / state.name

    daemons: set[int] = set()
    with contextlib.suppress(OSError, ValueError):
        pid = int((state / "containerd.pid").read_text().strip())
        if is_daemon(_cmdline(pid), config):
            daemons.add(pid)
    shims: set[int] = set()
    for pid in _pids():
        cmdline = _cmdline(pid)
        if is_daemon(cmdline, config):
            # Also found when the harness was killed before it wrote the pid file.
            daemons.add(pid)
        elif is_shim(cmdline, socket_path):
            shims.add(pid)

    # The containers' processes are the shims' descendants (each shim is their subreaper).
    containers = _descendants(shims)
    _kill(containers, signal.SIGKILL)
    left = _wait_gone(containers, timeout)
    _kill(daemons, signal.SIGTERM)
    if _wait_gone(daemons, STOP_GRACE_S):
        _kill(daemons, signal.SIGKILL)
    _kill(shims, signal.SIGKILL)
    left |= _wait_gone(daemons | shims, timeout)

    problems = [f"process {pid} ({shlex.join(_cmdline(pid))}) is still running" for pid in left]
    for point in reversed(_mounts_under([root, state])):
        result = commands.run(["umount", "--lazy", point], timeout=30, check=False)
        if result.returncode != 0:
            problems.append(f"umount {point} failed: {result.stderr.strip()}")
    return problems


def remove_container(state: Path, name: str, ctr: str = "ctr") -> list[str]:
    """Kill and delete the container ``name`` of the daemon in ``state``.

    When the daemon's socket is gone, ctr cannot reach the daemon, so this does
    nothing: the daemon's own removal (``stop``) ends what its shims left.
    Returns what failed.
    """
    socket_path = state / "containerd.sock"
    if not socket_path.exists():
        return []
    base = [ctr, "--address", str(socket_path), "--namespace", NAMESPACE]
    problems = []
    commands.run([*base, "task", "kill", "--signal", "SIGKILL", name], timeout=30, check=False)
    for verb in (["task", "delete", "--force"], ["containers", "delete"]):
        result = commands.run([*base, *verb, name], timeout=60, check=False)
        if result.returncode != 0 and not any(m in result.stderr for m in _ABSENT):
            problems.append(f"{shlex.join(result.argv)}: {result.stderr.strip()}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Remove a run's containerd resources: ``stop --state DIR`` or ``remove --state DIR
    --name NAME``. Exits 0 when nothing of it is left, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="python -m isobench.runtimes.containerd")
    verbs = parser.add_subparsers(dest="verb", required=True)
    stop = verbs.add_parser("stop", help="stop a run's containerd, its shims and containers")
    stop.add_argument("--state", type=Path, required=True, help="the daemon's state directory")
    remove = verbs.add_parser("remove", help="kill and delete one container of a run's daemon")
    remove.add_argument("--state", type=Path, required=True, help="the daemon's state directory")
    remove.add_argument("--name", required=True, help="the container's name")
    args = parser.parse_args(argv)

    if args.verb == "stop":
        problems = stop_daemon(args.state)
    else:
        problems = remove_container(args.state, args.name, _find("ISOBENCH_CTR", "ctr") or "ctr")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
