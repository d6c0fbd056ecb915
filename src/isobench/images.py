"""The images: rootfs directories made from the host's static busybox.

The probe image holds busybox with its applet links, a shell and the probe
script. The static image holds one file, the busybox binary as /busybox,
and no shell, like the distroless and scratch images many services ship in.

There is no registry to pull from, so the rootfs is built locally, named by
a hash of its content, and imported into each engine that needs it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

from isobench import commands, probe
from isobench.errors import UsageError
from isobench.runtimes.base import ProbeImage

log = logging.getLogger(__name__)

# Bumped whenever the layout below changes, so that old images are not reused.
RECIPE_VERSION = "1"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
#: The only file of the static image.
STATIC_BINARY = "/busybox"

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
    result = commands.run(["file", "-L", str(path)], timeout=30, check=False)
    if result.returncode != 0:
        # Without file(1), fall back to looking for an ELF interpreter string.
        return b"ld-linux" not in path.read_bytes()[:65536]
    return "statically linked" in result.stdout or "static-pie" in result.stdout


def content_tag(busybox: Path) -> str:
    digest = hashlib.sha256()
    digest.update(RECIPE_VERSION.encode())
    digest.update(busybox.read_bytes())
    digest.update(probe.script_text().encode())
    return digest.hexdigest()[:12]


def build_probe_image(base: Path | None = None) -> ProbeImage:
    """Build (or reuse) the probe rootfs and return it."""
    return _build("probe", base)


def build_static_image(base: Path | None = None) -> ProbeImage:
    """Build (or reuse) the static image: /busybox and nothing else."""
    return _build("static", base)


def _build(kind: str, base: Path | None) -> ProbeImage:
    busybox = find_busybox()
    if not _is_static(busybox):
        raise UsageError(
            f"{busybox} is dynamically linked and cannot run inside the image; "
            "install 'busybox-static' or set ISOBENCH_BUSYBOX to a static busybox"
        )
    tag = content_tag(busybox)
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
    partial.rename(root)
    (root / "complete").write_text(tag + "\n")
    return ProbeImage(rootfs, tag, kind)


def _lay_out(rootfs: Path, busybox: Path) -> None:
    for name in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/user", "isobench"):
        (rootfs / name).mkdir(parents=True, exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)
    shutil.copy2(busybox, rootfs / "bin" / "busybox")

    # Applet links are relative: absolute ones would point at the host's path.
    applets = commands.run([str(busybox), "--list"], timeout=30).stdout.split()
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
