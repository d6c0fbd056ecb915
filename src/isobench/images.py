"""The images: rootfs directories made from the host's static busybox.

The probe image contains busybox with its applet links, a shell and the probe
script. The static image contains one file, the busybox binary as /busybox,
and no shell, like the distroless and scratch images many services ship in.
The benchmark image is the probe image plus the host's fio, sockperf and
iperf3 and every shared library they link, copied at the host's paths, since
none of them is static. sockperf and iperf3 are copied only when the host has
them, because only the network benchmark needs them.

There is no registry to pull from, so the rootfs is built locally, named by
a hash of its content, and imported into each engine that needs it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

from isobench import commands, hosts, probe
from isobench.errors import UsageError
from isobench.runtimes.base import ProbeImage

log = logging.getLogger(__name__)

# Bumped whenever the layout below changes, so that old images are not reused.
RECIPE_VERSION = "1"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
#: The only file of the static image.
STATIC_BINARY = "/busybox"
#: Programs of the network benchmark, copied into the benchmark image when installed:
#: sockperf for request/response latency, iperf3 for bulk throughput.
NETWORK_TOOLS = ("sockperf", "iperf3")

PASSWD = """root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
"""
GROUP = """root:x:0:
nogroup:x:65534:
user:x:1000:
"""


def cache_dir() -> Path:
    return Path(os.environ.get("ISOBENCH_CACHE_DIR", "/var/cache/isobench"))


def find_busybox() -> Path:
    """Return the host's busybox binary; it must be static to run inside any image."""
    configured = os.environ.get("ISOBENCH_BUSYBOX")
    for candidate in ([configured] if configured else []) + list(BUSYBOX_CANDIDATES):
        path = Path(candidate)
        if path.is_file():
            return path
    raise UsageError(
        "no busybox binary found (tried "
        + ", ".join(BUSYBOX_CANDIDATES)
        + "); install it with 'apt-get install busybox-static' or run 'make setup'"
    )


def _is_static(path: Path) -> bool:
    result = commands.run(["file", "-L", str(path)], timeout=30, check=False, host=hosts.LOCAL)
    if result.returncode != 0:
        # Without file(1), fall back to looking for an ELF interpreter string.
        return b"ld-linux" not in path.read_bytes()[:65536]
    return "statically linked" in result.stdout or "static-pie" in result.stdout


def content_tag(busybox: Path, *extra: Path) -> str:
    digest = hashlib.sha256()
    digest.update(RECIPE_VERSION.encode())
    digest.update(busybox.read_bytes())
    digest.update(probe.script_text().encode())
    for program in extra:
        digest.update(program.read_bytes())
    return digest.hexdigest()[:12]


def build_probe_image(base: Path | None = None) -> ProbeImage:
    """Build (or reuse) the probe rootfs and return it."""
    return _build("probe", base)


def build_static_image(base: Path | None = None) -> ProbeImage:
    """Build (or reuse) the static image: /busybox and nothing else."""
    return _build("static", base)


def build_bench_image(base: Path | None = None) -> ProbeImage:
    """Build (or reuse) the benchmark image: the probe image plus the benchmark programs
    (``bench_programs``) and their libraries."""
    return _build("bench", base)


def find_fio() -> Path:
    """Return the host's fio binary."""
    configured = os.environ.get("ISOBENCH_FIO")
    found = configured or shutil.which("fio")
    if not found or not Path(found).is_file():
        raise UsageError(
            "fio not found; install it with 'apt-get install fio' or run 'make setup'"
            + (f" (ISOBENCH_FIO is {configured})" if configured else "")
        )
    return Path(found)


def find_network_tools() -> list[Path]:
    """Return the host's programs of ``NETWORK_TOOLS`` that are installed."""
    found = (shutil.which(name) for name in NETWORK_TOOLS)
    return [Path(path) for path in found if path]


def bench_programs() -> list[Path]:
    """Return the host programs that the benchmark image gets: fio (required), then the
    network tools that are installed."""
    return [find_fio(), *find_network_tools()]


def shared_libraries(binary: Path) -> list[Path]:
    """Return the shared libraries a dynamically linked binary loads, its loader included."""
    output = commands.run(["ldd", str(binary)], timeout=30, host=hosts.LOCAL).stdout
    return parse_ldd(output)


def parse_ldd(output: str) -> list[Path]:
    """Return the library paths of ldd(1) output (the vDSO has none)."""
    found = []
    for line in output.splitlines():
        words = line.split()
        if "=>" in words:
            after = words[words.index("=>") + 1 :]
            if after and after[0].startswith("/"):
                found.append(Path(after[0]))
        elif words and words[0].startswith("/"):
            found.append(Path(words[0]))
    return found


def _add_programs(rootfs: Path, programs: list[Path]) -> None:
    """Copy each program and each library it links into the rootfs, at the host's paths."""
    for program in programs:
        for source in [program, *shared_libraries(program)]:
            target = rootfs / str(source).lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source.resolve(), target)


def _build(kind: str, base: Path | None) -> ProbeImage:
    busybox = find_busybox()
    if not _is_static(busybox):
        raise UsageError(
            f"{busybox} is dynamically linked and cannot run inside the image; "
            "install 'busybox-static' or set ISOBENCH_BUSYBOX to a static busybox"
        )
    programs = bench_programs() if kind == "bench" else []
    tag = content_tag(busybox, *programs)
    root = (base or cache_dir() / "images") / f"{kind}-{tag}"
    rootfs = root / "rootfs"
    if (root / "complete").exists():
        return ProbeImage(rootfs, tag, kind)

    log.info("building the %s rootfs in %s", kind, rootfs)
    if root.exists():
        shutil.rmtree(root)
    partial = root.with_name(root.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    if kind == "static":
        (partial / "rootfs").mkdir(parents=True)
        shutil.copy2(busybox, partial / "rootfs" / STATIC_BINARY.lstrip("/"))
    else:
        _lay_out(partial / "rootfs", busybox)
    if programs:
        _add_programs(partial / "rootfs", programs)
    partial.rename(root)
    (root / "complete").write_text(tag + "\n")
    return ProbeImage(rootfs, tag, kind)


def _lay_out(rootfs: Path, busybox: Path) -> None:
    for name in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/user", "isobench"):
        (rootfs / name).mkdir(parents=True, exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)
    shutil.copy2(busybox, rootfs / "bin" / "busybox")

    # Applet links are relative: absolute ones would point at the host's path.
    applets = commands.run([str(busybox), "--list"], timeout=30, host=hosts.LOCAL).stdout.split()
    for applet in applets:
        link = rootfs / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    for alias in ("sbin", "usr/bin", "usr/sbin"):
        target = rootfs / alias
        target.parent.mkdir(parents=True, exist_ok=True)
        depth = len(Path(alias).parts) - 1
        target.symlink_to("../" * depth + "bin")

    (rootfs / "etc" / "passwd").write_text(PASSWD)
    (rootfs / "etc" / "group").write_text(GROUP)
    (rootfs / "etc" / "hostname").write_text("isobench\n")
    (rootfs / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (rootfs / "etc" / "resolv.conf").write_text("")
    script = rootfs / probe.IMAGE_PATH.lstrip("/")
    script.write_text(probe.script_text())
    script.chmod(0o755)
