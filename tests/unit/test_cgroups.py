"""Tests of isobench.probe.cgroups on recorded cgroup trees of v1, v2 and hybrid hosts.

Each tree is built under tmp_path with the file names and contents that the
kernel shows, and the mountinfo text points the cgroup mounts at that tree.
The hybrid host copies the shape of a real hybrid host: one v1 mount per
controller (cpu and cpuacct apart), name=systemd, and a cgroup2 mount at
``unified`` whose cgroup.controllers is nearly empty.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from isobench.probe.cgroups import (
    CgroupDirs,
    hierarchies,
    layout,
    locate,
    process_cgroup_facts,
    read,
)

CONTAINER_ID = "4fcbe6c81bd272e74ed9ad7aeb22d4464fcbe6c81bd272e74ed9ad7aeb22d446"
V2_SCOPE = f"system.slice/docker-{CONTAINER_ID}.scope"
V1_GROUP = f"docker/{CONTAINER_ID}"

#: The value v1 shows in memory.limit_in_bytes when no limit is set (LONG_MAX rounded to pages).
V1_NO_LIMIT = "9223372036854771712"

PRESSURE = (
    "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0"
)
CPU_STAT = (
    "usage_usec 2500\nuser_usec 1500\nsystem_usec 1000\n"
    "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0"
)
ALL_V2_CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma misc"

# A v2 root cgroup has no limit files: memory.max, memory.events, pids.*, cpu.max
# and cpu.weight are created only below the root.
V2_ROOT_FILES: dict[str, str | None] = {
    "cgroup.controllers": ALL_V2_CONTROLLERS,
    "cgroup.subtree_control": ALL_V2_CONTROLLERS,
    "cgroup.procs": "1\n2",
    "cgroup.threads": "1\n2\n3",
    "cgroup.stat": "nr_descendants 42\nnr_dying_descendants 0",
    "cpu.stat": CPU_STAT,
    "cpu.pressure": PRESSURE,
    "cpuset.cpus.effective": "0-3",
    "cpuset.mems.effective": "0",
    "io.pressure": PRESSURE,
    "memory.stat": "anon 104857600\nfile 209715200",
    "memory.pressure": PRESSURE,
}

# A container limited to 512 MiB of memory, 512 MiB of swap, 100 tasks and half a CPU.
V2_CONTAINER_FILES: dict[str, str | None] = {
    "cgroup.controllers": ALL_V2_CONTROLLERS,
    "cgroup.subtree_control": "",
    "cgroup.type": "domain",
    "cgroup.procs": "4242\n4250",
    "cgroup.threads": "4242\n4250\n4251",
    "memory.max": "536870912",
    "memory.swap.max": "536870912",
    "memory.current": "52428800",
    "memory.peak": "134217728",
    "memory.events": "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\noom_group_kill 0",
    "memory.pressure": PRESSURE,
    "pids.max": "100",
    "pids.current": "7",
    "cpu.max": "50000 100000",
    "cpu.weight": "100",
    "cpu.stat": CPU_STAT,
    "cpu.pressure": PRESSURE,
    "cpuset.cpus": "",
    "cpuset.cpus.effective": "0-3",
    "cpuset.mems.effective": "0",
    "io.pressure": PRESSURE,
}

V2_UNLIMITED: dict[str, str | None] = {
    "memory.max": "max",
    "memory.swap.max": "max",
    "pids.max": "max",
    "cpu.max": "max 100000",
}

# v1 mount directory -> superoptions, as on a systemd host with cpu and cpuacct combined.
V1_MOUNTS = {
    "systemd": "rw,xattr,name=systemd",
    "cpu,cpuacct": "rw,cpu,cpuacct",
    "memory": "rw,memory",
    "pids": "rw,pids",
    "cpuset": "rw,cpuset",
    "devices": "rw,devices",
    "net_cls,net_prio": "rw,net_cls,net_prio",
}

V1_PROC_CGROUP = (
    f"12:pids:/{V1_GROUP}\n"
    f"11:devices:/{V1_GROUP}\n"
    f"10:net_cls,net_prio:/{V1_GROUP}\n"
    f"4:memory:/{V1_GROUP}\n"
    f"3:cpu,cpuacct:/{V1_GROUP}\n"
    f"2:cpuset:/{V1_GROUP}\n"
    f"1:name=systemd:/{V1_GROUP}\n"
)

# v1 container files by mount directory: 512 MiB memory, 1 GiB memory+swap,
# 100 tasks, half a CPU.
V1_CONTAINER_FILES: dict[str, dict[str, str | None]] = {
    "memory": {
        "memory.limit_in_bytes": "536870912",
        "memory.memsw.limit_in_bytes": "1073741824",
        "memory.max_usage_in_bytes": "134217728",
        "memory.usage_in_bytes": "52428800",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1",
        "tasks": "4242\n4250\n4251",
    },
    "cpu,cpuacct": {
        "cpu.cfs_quota_us": "50000",
        "cpu.cfs_period_us": "100000",
        "cpu.shares": "512",
        "cpuacct.usage": "2500000",
        "tasks": "4242\n4250\n4251",
    },
    "pids": {
        "pids.max": "100",
        "pids.current": "7",
        "tasks": "4242\n4250\n4251",
    },
    "cpuset": {
        "cpuset.cpus": "0-3",
        "cpuset.effective_cpus": "0-3",
        "cpuset.mems": "0",
        "tasks": "4242\n4250\n4251",
    },
    "systemd": {"tasks": "4242\n4250\n4251"},
    "devices": {"tasks": "4242\n4250\n4251"},
    "net_cls,net_prio": {"tasks": "4242\n4250\n4251"},
}

# A v1 root cgroup: no pids.max or pids.current, and the limits show the no-limit value.
V1_ROOT_FILES: dict[str, dict[str, str | None]] = {
    "memory": {
        "memory.limit_in_bytes": V1_NO_LIMIT,
        "memory.memsw.limit_in_bytes": V1_NO_LIMIT,
        "memory.max_usage_in_bytes": "2696130560",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0",
        "tasks": "1\n2\n3\n4\n5",
    },
    "cpu,cpuacct": {
        "cpu.cfs_quota_us": "-1",
        "cpu.cfs_period_us": "100000",
        "cpu.shares": "1024",
        "cpuacct.usage": "1846449349578",
        "tasks": "1\n2\n3\n4\n5",
    },
    "pids": {"cgroup.procs": "1\n2\n3", "tasks": "1\n2\n3\n4\n5"},
    "cpuset": {"cpuset.cpus": "0-3", "cpuset.effective_cpus": "0-3", "tasks": "1\n2\n3\n4\n5"},
    "systemd": {"tasks": "1\n2\n3\n4\n5"},
    "devices": {"tasks": "1\n2\n3\n4\n5"},
    "net_cls,net_prio": {"tasks": "1\n2\n3\n4\n5"},
}

# The hybrid host's v1 mounts, in the shape of a real hybrid host.
HYBRID_MOUNTS = [
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "name=systemd",
]

HYBRID_PROC_CGROUP = (
    f"9:name=systemd:/{V1_GROUP}\n"
    f"8:pids:/{V1_GROUP}\n"
    f"7:blkio:/{V1_GROUP}\n"
    f"6:freezer:/{V1_GROUP}\n"
    f"5:devices:/{V1_GROUP}\n"
    f"4:memory:/{V1_GROUP}\n"
    f"3:cpuset:/{V1_GROUP}\n"
    f"2:cpuacct:/{V1_GROUP}\n"
    f"1:cpu:/{V1_GROUP}\n"
    "0::/\n"
)

# The limit and counter facts. read() always returns cg.layout and cg.paths as well.
VALUE_FACTS = [
    "cg.memory.limit",
    "cg.memory.memsw_limit",
    "cg.memory.oom_kills",
    "cg.memory.peak",
    "cg.pids.max",
    "cg.pids.current",
    "cg.cpu.quota",
    "cg.cpu.usage_ns",
    "cg.cpu.weight",
    "cg.cpuset.cpus",
]


def escape(path: Path) -> str:
    """Escape a path as mountinfo does: a space becomes \\040."""
    return str(path).replace(" ", "\\040")


def write_files(directory: Path, files: dict[str, str | None]) -> Path:
    """Create a cgroup directory with one file per entry, leaving out entries that are None."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        if text is not None:
            (directory / name).write_text(text + "\n")
    return directory


def cgroup_base(tmp_path: Path) -> Path:
    return tmp_path / "sys" / "fs" / "cgroup"


SYSTEM_MOUNTS = [
    "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro",
    "23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw",
    "24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw",
    "25 22 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=8123456k,mode=755",
]


def v2_mountinfo(base: Path, root: str = "/") -> str:
    cgroup2 = (
        f"30 24 0:26 {root} {escape(base)} rw,nosuid,nodev,noexec,relatime shared:9"
        " - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot"
    )
    return "\n".join([*SYSTEM_MOUNTS, cgroup2]) + "\n"


def v1_mountinfo(base: Path, root: str = "/") -> str:
    lines = [
        *SYSTEM_MOUNTS,
        f"26 24 0:23 / {escape(base)} ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755",
    ]
    for number, (directory, superoptions) in enumerate(V1_MOUNTS.items()):
        lines.append(
            f"{30 + number} 26 0:{30 + number} {root} {escape(base / directory)}"
            f" rw,nosuid,nodev,noexec,relatime shared:{10 + number}"
            f" - cgroup cgroup {superoptions}"
        )
    return "\n".join(lines) + "\n"


def hybrid_mountinfo(base: Path) -> str:
    lines = [
        *SYSTEM_MOUNTS,
        f"31 24 0:28 / {escape(base)} rw,relatime - tmpfs tmpfs rw,mode=755",
    ]
    for number, controller in enumerate(HYBRID_MOUNTS):
        directory = controller.removeprefix("name=")
        lines.append(
            f"{32 + number} 31 0:{29 + number} / {escape(base / directory)} rw,relatime"
            f" - cgroup cgroup rw,{controller}"
        )
    lines.append(f"41 31 0:38 / {escape(base / 'unified')} rw,relatime - cgroup2 cgroup2 rw")
    return "\n".join(lines) + "\n"


def v2_host(tmp_path: Path, **overrides: str | None) -> CgroupDirs:
    """Build a v2 host with a container scope, where overrides replace or drop container files."""
    base = cgroup_base(tmp_path)
    write_files(base, V2_ROOT_FILES)
    write_files(
        base / "system.slice",
        {"cgroup.controllers": ALL_V2_CONTROLLERS, "cgroup.subtree_control": ALL_V2_CONTROLLERS},
    )
    write_files(base / V2_SCOPE, {**V2_CONTAINER_FILES, **overrides})
    return locate(f"0::/{V2_SCOPE}\n", v2_mountinfo(base))


def v2_root(tmp_path: Path) -> CgroupDirs:
    base = cgroup_base(tmp_path)
    write_files(base, V2_ROOT_FILES)
    return locate("0::/\n", v2_mountinfo(base))


def v1_host(
    tmp_path: Path, overrides: dict[str, dict[str, str | None]] | None = None
) -> CgroupDirs:
    """Build a v1 host with a container cgroup, where overrides map a mount directory to files."""
    base = cgroup_base(tmp_path)
    for directory, files in V1_CONTAINER_FILES.items():
        changed = (overrides or {}).get(directory, {})
        write_files(base / directory, V1_ROOT_FILES[directory])
        write_files(base / directory / V1_GROUP, {**files, **changed})
    return locate(V1_PROC_CGROUP, v1_mountinfo(base))


def v1_root(tmp_path: Path) -> CgroupDirs:
    base = cgroup_base(tmp_path)
    for directory, files in V1_ROOT_FILES.items():
        write_files(base / directory, files)
    proc_cgroup = V1_PROC_CGROUP.replace(f"/{V1_GROUP}", "/")
    return locate(proc_cgroup, v1_mountinfo(base))


def hybrid_host(tmp_path: Path) -> CgroupDirs:
    """Build a hybrid host: the container in v1 cgroups, the process in the unified root."""
    base = cgroup_base(tmp_path)
    by_mount = {
        "cpu": {
            key: value
            for key, value in V1_CONTAINER_FILES["cpu,cpuacct"].items()
            if not key.startswith("cpuacct.")
        },
        "cpuacct": {"cpuacct.usage": "7500000", "tasks": "4242\n4250\n4251"},
        "cpuset": V1_CONTAINER_FILES["cpuset"],
        "memory": V1_CONTAINER_FILES["memory"],
        "pids": V1_CONTAINER_FILES["pids"],
    }
    for controller in HYBRID_MOUNTS:
        directory = controller.removeprefix("name=")
        files = by_mount.get(directory, {"tasks": "4242\n4250\n4251"})
        write_files(base / directory / V1_GROUP, files)
    # The unified root enables no controller here, but every cgroup2 directory
    # has cpu.stat and, with PSI, the *.pressure files.
    write_files(
        base / "unified",
        {
            "cgroup.controllers": "",
            "cgroup.subtree_control": "",
            "cgroup.procs": "1\n4242",
            "cgroup.threads": "1\n4242",
            "cpu.stat": CPU_STAT,
            "cpu.pressure": PRESSURE,
            "memory.pressure": PRESSURE,
            "io.pressure": PRESSURE,
        },
    )
    return locate(HYBRID_PROC_CGROUP, hybrid_mountinfo(base))


# hierarchies


def test_hierarchies_v2_mount(tmp_path: Path) -> None:
    base = cgroup_base(tmp_path)

    found = hierarchies(v2_mountinfo(base))

    assert len(found) == 1
    assert found[0].version == 2
    assert found[0].mount_point == base
    assert found[0].root == "/"


def test_hierarchies_v1_mounts(tmp_path: Path) -> None:
    base = cgroup_base(tmp_path)

    found = hierarchies(v1_mountinfo(base))

    assert [h.mount_point for h in found] == [base / name for name in V1_MOUNTS]
    assert {h.version for h in found} == {1}


def test_hierarchies_v1_combined_controllers(tmp_path: Path) -> None:
    base = cgroup_base(tmp_path)

    found = {h.mount_point.name: h for h in hierarchies(v1_mountinfo(base))}

    assert {"cpu", "cpuacct"} <= found["cpu,cpuacct"].controllers
    assert "name=systemd" in found["systemd"].controllers
    assert found["memory"].controllers == {"memory"}


def test_hierarchies_escaped_mount_point(tmp_path: Path) -> None:
    base = tmp_path / "with space" / "cgroup"

    found = hierarchies(v2_mountinfo(base))

    assert found[0].mount_point == base


def test_hierarchies_skip_malformed_lines(tmp_path: Path) -> None:
    text = "garbage\n30 24 0:26 / - cgroup2\n\n" + v2_mountinfo(cgroup_base(tmp_path))

    found = hierarchies(text)

    assert len(found) == 1


# layout


@pytest.mark.parametrize(
    ("build", "expected"),
    [(v1_mountinfo, "v1"), (v2_mountinfo, "v2"), (hybrid_mountinfo, "hybrid")],
)
def test_layout_by_host(tmp_path: Path, build: Callable[[Path], str], expected: str) -> None:
    mountinfo = build(cgroup_base(tmp_path))

    assert layout(hierarchies(mountinfo)) == expected


# locate


def test_locate_v2_scope(tmp_path: Path) -> None:
    dirs = v2_host(tmp_path)

    assert dirs.layout == "v2"
    assert dirs.unified == cgroup_base(tmp_path) / V2_SCOPE
    assert dirs.v1 == {}


def test_locate_v1_controllers(tmp_path: Path) -> None:
    base = cgroup_base(tmp_path)

    dirs = v1_host(tmp_path)

    assert dirs.layout == "v1"
    assert dirs.v1["memory"] == base / "memory" / V1_GROUP
    assert dirs.v1["pids"] == base / "pids" / V1_GROUP
    assert dirs.v1["cpuset"] == base / "cpuset" / V1_GROUP
    assert dirs.v1["name=systemd"] == base / "systemd" / V1_GROUP
    assert dirs.unified is None


def test_locate_v1_combined_mount(tmp_path: Path) -> None:
    combined = cgroup_base(tmp_path) / "cpu,cpuacct" / V1_GROUP

    dirs = v1_host(tmp_path)

    assert dirs.v1["cpu"] == combined
    assert dirs.v1["cpuacct"] == combined
    assert dirs.v1["net_cls"] == dirs.v1["net_prio"]


def test_locate_v1_unmounted_unified(tmp_path: Path) -> None:
    # The kernel lists "0::" once cgroup2 is mounted in any mount namespace.
    dirs = locate(V1_PROC_CGROUP + "0::/\n", v1_mountinfo(cgroup_base(tmp_path)))

    assert dirs.unified is None


def test_locate_unmounted_controller(tmp_path: Path) -> None:
    dirs = locate("13:rdma:/\n" + V1_PROC_CGROUP, v1_mountinfo(cgroup_base(tmp_path)))

    assert "rdma" not in dirs.v1
    assert "memory" in dirs.v1


def test_locate_hybrid_dirs(tmp_path: Path) -> None:
    base = cgroup_base(tmp_path)

    dirs = hybrid_host(tmp_path)

    assert dirs.layout == "hybrid"
    assert dirs.v1["cpu"] == base / "cpu" / V1_GROUP
    assert dirs.v1["cpuacct"] == base / "cpuacct" / V1_GROUP
    assert dirs.unified == base / "unified"


def test_locate_strips_mount_root(tmp_path: Path) -> None:
    # Inside a container the host's cgroup directory is mounted on /sys/fs/cgroup/<mount>.
    base = cgroup_base(tmp_path)

    dirs = locate(V1_PROC_CGROUP, v1_mountinfo(base, root=f"/{V1_GROUP}"))

    assert dirs.v1["memory"] == base / "memory"
    assert dirs.v1["cpu"] == base / "cpu,cpuacct"


def test_locate_strips_root_child(tmp_path: Path) -> None:
    base = cgroup_base(tmp_path)
    proc_cgroup = f"0::/{V2_SCOPE}/init.scope\n"

    dirs = locate(proc_cgroup, v2_mountinfo(base, root=f"/{V2_SCOPE}"))

    assert dirs.unified == base / "init.scope"


def test_locate_root_prefix_boundary(tmp_path: Path) -> None:
    # Sibling cgroups of containers c1 and c10, whose names share a prefix.
    base = cgroup_base(tmp_path)
    mountinfo = v2_mountinfo(base, root="/lxc.payload.c1")

    dirs = locate("0::/lxc.payload.c10/init.scope\n", mountinfo)

    # lxc.payload.c10 is not below the mounted lxc.payload.c1.
    assert dirs.unified != base / "0" / "init.scope"


# read on v2


def test_read_v2_limits_set(tmp_path: Path) -> None:
    facts = read(v2_host(tmp_path))

    assert facts["cg.layout"] == "v2"
    assert facts["cg.memory.limit"] == "536870912"
    assert facts["cg.pids.max"] == "100"
    assert facts["cg.pids.current"] == "7"
    assert facts["cg.cpu.quota"] == "0.5"


def test_read_v2_limits_unset(tmp_path: Path) -> None:
    facts = read(v2_host(tmp_path, **V2_UNLIMITED))

    assert facts["cg.memory.limit"] == "max"
    assert facts["cg.memory.memsw_limit"] == "max"
    assert facts["cg.pids.max"] == "max"
    assert facts["cg.cpu.quota"] == "max"


def test_read_v2_memsw_sum(tmp_path: Path) -> None:
    facts = read(v2_host(tmp_path, **{"memory.swap.max": "268435456"}))

    assert facts["cg.memory.memsw_limit"] == str(536870912 + 268435456)


@pytest.mark.parametrize(
    ("memory_max", "swap_max"),
    [("max", "268435456"), ("536870912", "max")],
)
def test_read_v2_memsw_either_max(tmp_path: Path, memory_max: str, swap_max: str) -> None:
    dirs = v2_host(tmp_path, **{"memory.max": memory_max, "memory.swap.max": swap_max})

    facts = read(dirs)

    assert facts["cg.memory.memsw_limit"] == "max"


def test_read_v2_memsw_no_swap_file(tmp_path: Path) -> None:
    # Without swap accounting the kernel creates no memory.swap.* files.
    facts = read(v2_host(tmp_path, **{"memory.swap.max": None}))

    assert "cg.memory.memsw_limit" not in facts
    assert facts["cg.memory.limit"] == "536870912"


def test_read_v2_oom_kills(tmp_path: Path) -> None:
    facts = read(v2_host(tmp_path))

    assert facts["cg.memory.oom_kills"] == "1"


def test_read_v2_peak(tmp_path: Path) -> None:
    facts = read(v2_host(tmp_path))

    assert facts["cg.memory.peak"] == "134217728"


def test_read_v2_peak_old_kernel(tmp_path: Path) -> None:
    # memory.peak appeared in Linux 5.19.
    facts = read(v2_host(tmp_path, **{"memory.peak": None}))

    assert "cg.memory.peak" not in facts


def test_read_v2_usage_ns(tmp_path: Path) -> None:
    facts = read(v2_host(tmp_path))

    assert facts["cg.cpu.usage_ns"] == "2500000"


def test_read_v2_weight(tmp_path: Path) -> None:
    facts = read(v2_host(tmp_path, **{"cpu.weight": "39"}))

    assert facts["cg.cpu.weight"] == "39"


@pytest.mark.parametrize(
    ("cpu_max", "expected"), [("150000 100000", "1.5"), ("200000 100000", "2")]
)
def test_read_v2_quota_cpus(tmp_path: Path, cpu_max: str, expected: str) -> None:
    facts = read(v2_host(tmp_path, **{"cpu.max": cpu_max}))

    assert facts["cg.cpu.quota"] == expected


def test_read_v2_cpuset_effective(tmp_path: Path) -> None:
    facts = read(v2_host(tmp_path))

    assert facts["cg.cpuset.cpus"] == "0-3"


def test_read_v2_cpuset_configured(tmp_path: Path) -> None:
    dirs = v2_host(tmp_path, **{"cpuset.cpus": "1", "cpuset.cpus.effective": None})

    facts = read(dirs)

    assert facts["cg.cpuset.cpus"] == "1"


def test_read_v2_paths(tmp_path: Path) -> None:
    facts = read(v2_host(tmp_path))

    assert facts["cg.paths"] == [f"unified {cgroup_base(tmp_path) / V2_SCOPE}"]


def test_read_v2_root_limits(tmp_path: Path) -> None:
    facts = read(v2_root(tmp_path))

    assert facts["cg.memory.limit"] == "max"
    assert facts["cg.cpu.quota"] == "max"
    assert facts["cg.cpuset.cpus"] == "0-3"
    assert facts["cg.cpu.usage_ns"] == "2500000"


def test_read_v2_root_pids(tmp_path: Path) -> None:
    facts = read(v2_root(tmp_path))

    assert facts.get("cg.pids.max") == "max"
    assert facts.get("cg.pids.current") == "3"


def test_read_v2_controller_disabled(tmp_path: Path) -> None:
    # The parent enables only cpu and memory, so no pids.* or cpuset.* files exist.
    disabled = {
        name: None for name in V2_CONTAINER_FILES if name.split(".")[0] in ("pids", "cpuset")
    }
    dirs = v2_host(tmp_path, **{"cgroup.controllers": "cpu memory", **disabled})

    facts = read(dirs)

    assert "cg.pids.max" not in facts
    assert "cg.pids.current" not in facts
    assert "cg.cpuset.cpus" not in facts
    assert facts["cg.memory.limit"] == "536870912"


def test_read_v2_memory_disabled(tmp_path: Path) -> None:
    memory = {name: None for name in V2_CONTAINER_FILES if name.startswith("memory.")}
    overrides = {**memory, "memory.pressure": PRESSURE}
    dirs = v2_host(tmp_path, **{"cgroup.controllers": "cpu pids", **overrides})

    facts = read(dirs)

    assert "cg.memory.limit" not in facts


# read on v1


def test_read_v1_limits_set(tmp_path: Path) -> None:
    facts = read(v1_host(tmp_path))

    assert facts["cg.layout"] == "v1"
    assert facts["cg.memory.limit"] == "536870912"
    assert facts["cg.memory.memsw_limit"] == "1073741824"
    assert facts["cg.pids.max"] == "100"
    assert facts["cg.pids.current"] == "7"
    assert facts["cg.cpu.quota"] == "0.5"


def test_read_v1_limits_unset(tmp_path: Path) -> None:
    overrides: dict[str, dict[str, str | None]] = {
        "memory": {
            "memory.limit_in_bytes": V1_NO_LIMIT,
            "memory.memsw.limit_in_bytes": V1_NO_LIMIT,
        },
        "pids": {"pids.max": "max"},
        "cpu,cpuacct": {"cpu.cfs_quota_us": "-1"},
    }

    facts = read(v1_host(tmp_path, overrides))

    assert facts["cg.memory.limit"] == "max"
    assert facts["cg.memory.memsw_limit"] == "max"
    assert facts["cg.pids.max"] == "max"
    assert facts["cg.cpu.quota"] == "max"


@pytest.mark.parametrize(("quota", "expected"), [("150000", "1.5"), ("200000", "2")])
def test_read_v1_quota_cpus(tmp_path: Path, quota: str, expected: str) -> None:
    facts = read(v1_host(tmp_path, {"cpu,cpuacct": {"cpu.cfs_quota_us": quota}}))

    assert facts["cg.cpu.quota"] == expected


def test_read_v1_memsw_no_file(tmp_path: Path) -> None:
    # With swapaccount=0 the kernel creates no memory.memsw.* files.
    facts = read(v1_host(tmp_path, {"memory": {"memory.memsw.limit_in_bytes": None}}))

    assert "cg.memory.memsw_limit" not in facts
    assert facts["cg.memory.limit"] == "536870912"


def test_read_v1_oom_kills(tmp_path: Path) -> None:
    facts = read(v1_host(tmp_path))

    assert facts["cg.memory.oom_kills"] == "1"


def test_read_v1_oom_kills_old_kernel(tmp_path: Path) -> None:
    # memory.oom_control gained its oom_kill line in Linux 4.13.
    overrides = {"memory": {"memory.oom_control": "oom_kill_disable 0\nunder_oom 0"}}

    facts = read(v1_host(tmp_path, overrides))

    assert "cg.memory.oom_kills" not in facts


def test_read_v1_peak(tmp_path: Path) -> None:
    facts = read(v1_host(tmp_path))

    assert facts["cg.memory.peak"] == "134217728"


def test_read_v1_weight(tmp_path: Path) -> None:
    facts = read(v1_host(tmp_path))

    assert facts["cg.cpu.weight"] == "512"


def test_read_v1_usage_ns(tmp_path: Path) -> None:
    facts = read(v1_host(tmp_path))

    assert facts["cg.cpu.usage_ns"] == "2500000"


def test_read_v1_cpuset(tmp_path: Path) -> None:
    facts = read(v1_host(tmp_path, {"cpuset": {"cpuset.cpus": "2-3"}}))

    assert facts["cg.cpuset.cpus"] == "2-3"


def test_read_v1_paths(tmp_path: Path) -> None:
    base = cgroup_base(tmp_path)

    facts = read(v1_host(tmp_path))

    assert facts["cg.paths"] == [
        f"cpu {base / 'cpu,cpuacct' / V1_GROUP}",
        f"cpuacct {base / 'cpu,cpuacct' / V1_GROUP}",
        f"cpuset {base / 'cpuset' / V1_GROUP}",
        f"devices {base / 'devices' / V1_GROUP}",
        f"memory {base / 'memory' / V1_GROUP}",
        f"name=systemd {base / 'systemd' / V1_GROUP}",
        f"net_cls {base / 'net_cls,net_prio' / V1_GROUP}",
        f"net_prio {base / 'net_cls,net_prio' / V1_GROUP}",
        f"pids {base / 'pids' / V1_GROUP}",
    ]


def test_read_v1_root(tmp_path: Path) -> None:
    facts = read(v1_root(tmp_path))

    assert facts["cg.memory.limit"] == "max"
    assert facts["cg.memory.memsw_limit"] == "max"
    assert facts["cg.cpu.quota"] == "max"
    assert facts["cg.pids.max"] == "max"
    assert facts["cg.pids.current"] == "5"


def test_read_v1_removed_cgroup(tmp_path: Path) -> None:
    # The runtime removes a container's cgroups when it exits, maybe between
    # reading /proc/<pid>/cgroup and reading the limit files.
    dirs = v1_host(tmp_path)
    shutil.rmtree(dirs.v1["pids"])

    facts = read(dirs)

    assert "cg.pids.max" not in facts


# read on a hybrid host


def test_read_hybrid_v1_limits(tmp_path: Path) -> None:
    facts = read(hybrid_host(tmp_path))

    assert facts["cg.layout"] == "hybrid"
    assert facts["cg.memory.limit"] == "536870912"
    assert facts["cg.memory.oom_kills"] == "1"
    assert facts["cg.pids.max"] == "100"
    assert facts["cg.cpu.quota"] == "0.5"


def test_read_hybrid_cpuacct_mount(tmp_path: Path) -> None:
    facts = read(hybrid_host(tmp_path))

    assert facts["cg.cpu.usage_ns"] == "7500000"


def test_read_hybrid_paths(tmp_path: Path) -> None:
    base = cgroup_base(tmp_path)

    paths = read(hybrid_host(tmp_path))["cg.paths"]

    assert f"memory {base / 'memory' / V1_GROUP}" in paths
    assert f"name=systemd {base / 'systemd' / V1_GROUP}" in paths
    assert paths[-1] == f"unified {base / 'unified'}"


# missing files


def test_read_missing_dirs_v1(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    dirs = CgroupDirs("v1", {name: missing for name in ("memory", "cpu", "cpuacct", "cpuset")})

    facts = read(dirs)

    for name in VALUE_FACTS:
        assert name not in facts, name


def test_read_missing_dir_v2(tmp_path: Path) -> None:
    facts = read(CgroupDirs("v2", unified=tmp_path / "missing"))

    for name in VALUE_FACTS:
        assert name not in facts, name


def test_read_empty_dirs_v1(tmp_path: Path) -> None:
    empty = write_files(tmp_path / "empty", {})
    names = ("memory", "cpu", "cpuacct", "cpuset", "pids")

    facts = read(CgroupDirs("v1", {name: empty for name in names}))

    # A directory without pids.max is taken for a root cgroup, which has no limit.
    assert facts["cg.pids.max"] == "max"
    for name in VALUE_FACTS:
        if name != "cg.pids.max":
            assert name not in facts, name


def test_read_no_dirs() -> None:
    facts = read(CgroupDirs("v2"))

    assert facts == {"cg.layout": "v2", "cg.paths": []}


# process_cgroup_facts


def test_process_facts_fake_proc(tmp_path: Path) -> None:
    base = cgroup_base(tmp_path)
    write_files(base, V2_ROOT_FILES)
    write_files(base / V2_SCOPE, V2_CONTAINER_FILES)
    proc = tmp_path / "proc"
    write_files(proc / "4242", {"cgroup": f"0::/{V2_SCOPE}"})
    write_files(proc / "self", {"mountinfo": v2_mountinfo(base).rstrip("\n")})

    facts = process_cgroup_facts(4242, proc)

    assert facts["cg.layout"] == "v2"
    assert facts["cg.memory.limit"] == "536870912"
    assert facts["cg.paths"] == [f"unified {base / V2_SCOPE}"]


def test_process_facts_no_pid(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    write_files(proc / "self", {"mountinfo": v2_mountinfo(cgroup_base(tmp_path))})

    assert process_cgroup_facts(99999, proc) == {}


def test_process_facts_real_host() -> None:
    facts = process_cgroup_facts(os.getpid())

    assert facts["cg.layout"] in ("v1", "v2", "hybrid")
    assert isinstance(facts["cg.paths"], list)
    assert facts["cg.paths"] != []
