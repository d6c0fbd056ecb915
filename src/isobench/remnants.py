"""Find what a run left on the host: containers, runtime state, mounts, cgroups, netns, files.

Everything isobench makes carries the run id in its name or label, so a scan
for the id finds it, even where the journal is lost. The tests and the
interruption proof (scripts/interrupt-proof.py) use this to check that a
run, once finished, interrupted or killed and cleaned, left nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ENGINES = ("/usr/bin/docker", "/usr/bin/podman")
OCI_STATE = {
    "runc": Path("/run/isobench/runc"),
    "runsc": Path("/run/isobench/runsc"),
    "isobox": Path("/run/isobench/isobox"),
    "crun": Path("/run/isobench/crun"),
}


def _engine_containers(binary: str, run_id: str) -> list[str]:
    if not Path(binary).exists():
        return []
    listed = subprocess.run(
        [
            binary,
            "ps",
            "-a",
            "--filter",
            "label=isobench.run",
            "--format",
            "{{.Names}}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return _labelled(listed.stdout, run_id)


def _labelled(listing: str, run_id: str) -> list[str]:
    """Return the names of a listing of labelled objects that carry the run id: names
    of a worker of pytest-xdist carry it too, with the worker's name after it."""
    return [name for name in listing.split() if run_id in name]


def _engine_networks(binary: str, run_id: str) -> list[str]:
    if not Path(binary).exists():
        return []
    listed = subprocess.run(
        [
            binary,
            "network",
            "ls",
            "--filter",
            "label=isobench.run",
            "--format",
            "{{.Name}}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return _labelled(listed.stdout, run_id)


def _oci_containers(runtime: str, state: Path, run_id: str) -> list[str]:
    binary = shutil.which(runtime) or shutil.which(runtime, path=str(Path(sys.executable).parent))
    if binary is None or not state.exists():
        return []
    listed = subprocess.run(
        [binary, "--root", str(state), "list", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        entries = json.loads(listed.stdout or "null") or []
    except json.JSONDecodeError:
        return [f"unreadable '{runtime} list' output: {listed.stdout[:200]}"]
    return [entry["id"] for entry in entries if run_id in entry.get("id", "")]


def _cgroups(run_id: str) -> list[str]:
    """Return the cgroup directories that carry ``run_id``. A directory that another run
    removes during the walk is skipped."""
    found = []
    for top in Path("/sys/fs/cgroup").iterdir():
        if top.is_symlink():  # cpu -> cpu,cpuacct: the same hierarchy again
            continue
        stack = [top]
        while stack:
            directory = stack.pop()
            try:
                children = [child for child in directory.iterdir() if child.is_dir()]
            except OSError:
                continue
            for child in children:
                if run_id in child.name:
                    found.append(str(child))
                stack.append(child)
    return sorted(found)


def _netns(run_id: str) -> list[str]:
    directory = Path("/run/netns")
    if not directory.exists():
        return []
    return [path.name for path in directory.iterdir() if run_id in path.name]


def _processes(run_id: str) -> list[str]:
    """Return 'PID command' of each process whose command line names the run id: a
    containerd of the run, its shims, a waiting client."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(part.decode(errors="replace") for part in argv if part)
        if run_id in text and "remnants" not in text:
            found.append(f"{entry.name} {text[:200]}")
    return found


def _hidden_under_unified(run_id: str) -> list[str]:
    """Return the entries carrying ``run_id`` in the directory that the cgroup v2 hierarchy
    of a hybrid host is mounted on: crun, run with that hierarchy unmounted, makes them
    there, and the mount hides them from the host."""
    unified = Path("/sys/fs/cgroup/unified")
    if not unified.is_mount():
        return []
    listed = subprocess.run(
        [
            *("unshare", "--mount", "--propagation", "private", "--"),
            *("sh", "-c", 'umount "$0" && ls -A "$0"', str(unified)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [
        f"{unified}/{name} (under the mount)" for name in listed.stdout.split() if run_id in name
    ]


def remnants(run_id: str) -> dict[str, list[str]]:
    """Return what exists on the host that carries ``run_id``, by kind (empty lists: none)."""
    found: dict[str, list[str]] = {}
    for binary in ENGINES:
        found[f"{Path(binary).name} containers"] = _engine_containers(binary, run_id)
        found[f"{Path(binary).name} networks"] = _engine_networks(binary, run_id)
    for runtime, state in OCI_STATE.items():
        found[f"{runtime} state"] = _oci_containers(runtime, state, run_id)
    found["mounts"] = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if run_id in line
    ]
    found["cgroups"] = _cgroups(run_id) + _hidden_under_unified(run_id)
    found["netns"] = _netns(run_id)
    found["processes"] = _processes(run_id)
    # Any runtime's state below /run/isobench, also a declared row's, or runsc's lock files.
    found["runtime state files"] = sorted(
        str(p) for p in Path("/run/isobench").glob(f"**/*{run_id}*") if "containerd" not in p.parts
    )
    found["files"] = sorted(
        str(p)
        for pattern in (
            f"/tmp/isobench-marker-{run_id}*",
            f"/var/lib/isobench/bundles/{run_id}*",
            f"/var/lib/isobench/journal/{run_id}*",
            f"/var/lib/isobench/containerd/{run_id}*",
            f"/run/isobench/containerd/{run_id}*",
        )
        for p in Path("/").glob(pattern.lstrip("/"))
    )
    return found


def count(found: dict[str, list[str]]) -> int:
    return sum(len(items) for items in found.values())
