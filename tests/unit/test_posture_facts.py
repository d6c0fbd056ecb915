"""Tests of the security posture facts: resource limits, device nodes, masked paths, the
container's parent and zombie children read from /proc, the host's MAC module, and the
static image."""

from __future__ import annotations

import os
import resource
import stat
from pathlib import Path

import pytest

from isobench.errors import UsageError
from isobench.images import STATIC_BINARY, build_static_image, content_tag, find_busybox
from isobench.model import RLIMITS
from isobench.probe import END_MARKER
from isobench.probe.derive import (
    DERIVED_FACTS,
    LIMIT_NAMES,
    PROCESS_FACTS,
    FactValues,
    derive,
    parse_limits,
    relative_facts,
)
from isobench.probe.host import _family, mac_module
from isobench.probe.parse import parse


def limits_line(label: str, soft: str, hard: str, units: str = "") -> str:
    """Format one line of /proc/<pid>/limits in the kernel's fixed-width columns."""
    return f"{label:<25} {soft:<20} {hard:<20} {units:<10}"


LIMITS_HEADER = limits_line("Limit", "Soft Limit", "Hard Limit", "Units")
LIMITS = [
    limits_line("Max cpu time", "unlimited", "unlimited", "seconds"),
    limits_line("Max file size", "unlimited", "unlimited", "bytes"),
    limits_line("Max data size", "unlimited", "unlimited", "bytes"),
    limits_line("Max stack size", "8388608", "unlimited", "bytes"),
    limits_line("Max core file size", "0", "unlimited", "bytes"),
    limits_line("Max resident set", "unlimited", "unlimited", "bytes"),
    limits_line("Max processes", "63704", "63704", "processes"),
    limits_line("Max open files", "1024", "1048576", "files"),
    limits_line("Max locked memory", "8388608", "8388608", "bytes"),
    limits_line("Max address space", "unlimited", "unlimited", "bytes"),
    limits_line("Max file locks", "unlimited", "unlimited", "locks"),
    limits_line("Max pending signals", "63704", "63704", "signals"),
    limits_line("Max msgqueue size", "819200", "819200", "bytes"),
    limits_line("Max nice priority", "0", "0"),
    limits_line("Max realtime priority", "0", "0"),
    limits_line("Max realtime timeout", "unlimited", "unlimited", "us"),
]


# -- parse_limits ------------------------------------------------------------


def test_parse_limits_every_label() -> None:
    facts = parse_limits(LIMITS)

    assert set(facts) == {f"rlimit.{name}" for name in LIMIT_NAMES.values()}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("nofile", "1024 1048576"),
        ("stack", "8388608 unlimited"),
        ("core", "0 unlimited"),
        ("nproc", "63704 63704"),
        ("nice", "0 0"),
        ("rtprio", "0 0"),
        ("rttime", "unlimited unlimited"),
        ("as", "unlimited unlimited"),
    ],
)
def test_parse_limits_value(name: str, expected: str) -> None:
    assert parse_limits(LIMITS)[f"rlimit.{name}"] == expected


def test_limits_format_matches_kernel() -> None:
    header = Path("/proc/self/limits").read_text().splitlines()[0]

    assert header == LIMITS_HEADER


def test_parse_limits_ignores_header() -> None:
    assert parse_limits([LIMITS_HEADER]) == {}


def test_parse_limits_stripped_lines() -> None:
    # The probe reads each line with 'read -r', which drops the trailing spaces.
    stripped = [line.strip() for line in LIMITS]

    assert parse_limits(stripped) == parse_limits(LIMITS)


def test_parse_limits_realtime_labels_distinct() -> None:
    facts = parse_limits(
        [
            limits_line("Max realtime priority", "5", "10"),
            limits_line("Max realtime timeout", "200", "300", "us"),
        ]
    )

    assert facts == {"rlimit.rtprio": "5 10", "rlimit.rttime": "200 300"}


def test_parse_limits_missing_hard_value() -> None:
    assert parse_limits(["Max open files            1024"]) == {}


def test_parse_limits_unknown_label() -> None:
    assert parse_limits([limits_line("Max open sockets", "1", "2")]) == {}


def test_parse_limits_empty() -> None:
    assert parse_limits([]) == {}


def test_parse_limits_own_process() -> None:
    lines = Path("/proc/self/limits").read_text().splitlines()[1:]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def shown(value: int) -> str:
        return "unlimited" if value == resource.RLIM_INFINITY else str(value)

    assert parse_limits(lines)["rlimit.nofile"] == f"{shown(soft)} {shown(hard)}"


def test_derive_rlimits_from_limits() -> None:
    derived = derive({"limits": LIMITS})

    assert derived["rlimit.nofile"] == "1024 1048576"
    assert derived["rlimit.core"] == "0 unlimited"


def test_derive_no_limits_no_rlimits() -> None:
    assert not [name for name in derive({}) if name.startswith("rlimit.")]


def test_every_request_ulimit_has_fact() -> None:
    # A suite can check each limit that a request may set.
    assert set(RLIMITS) <= set(LIMIT_NAMES.values())


def test_request_ulimit_oci_names() -> None:
    for name, oci_name in RLIMITS.items():
        assert oci_name == f"RLIMIT_{name.upper()}"


@pytest.mark.parametrize(
    "name", ["rlimit.nofile", "rlimit.inherited", "dev.nodes", "masked.unmasked"]
)
def test_posture_fact_documented(name: str) -> None:
    assert DERIVED_FACTS[name]


def test_process_facts_are_derived() -> None:
    assert set(PROCESS_FACTS) <= set(DERIVED_FACTS)
    assert "hostside.zombies" in PROCESS_FACTS


# -- rlimit.inherited --------------------------------------------------------


def parent_limits(nofile: tuple[str, str]) -> list[str]:
    """Return the parent's /proc/<pid>/limits without its header, with this nofile limit."""
    return [
        limits_line("Max processes", "63704", "63704", "processes"),
        limits_line("Max open files", *nofile, "files"),
    ]


def test_inherited_nofile_listed() -> None:
    container: FactValues = {
        "rlimit.nofile": "1048576 1048576",
        "hostside.parent.limits": parent_limits(("1048576", "1048576")),
    }

    assert relative_facts(container, {})["rlimit.inherited"] == ["nofile"]


def test_set_nofile_not_inherited() -> None:
    container: FactValues = {
        "rlimit.nofile": "1024 1048576",
        "hostside.parent.limits": parent_limits(("1048576", "1048576")),
    }

    assert relative_facts(container, {})["rlimit.inherited"] == []


def test_equal_hard_different_soft_not_inherited() -> None:
    container: FactValues = {
        "rlimit.nofile": "1024 4096",
        "hostside.parent.limits": parent_limits(("2048", "4096")),
    }

    assert relative_facts(container, {})["rlimit.inherited"] == []


def test_inherited_only_nofile_compared() -> None:
    # Equal nproc limits are expected (podman fits them to the host), so only nofile counts.
    container: FactValues = {
        "rlimit.nproc": "63704 63704",
        "rlimit.nofile": "1024 1024",
        "hostside.parent.limits": parent_limits(("4096", "4096")),
    }

    assert relative_facts(container, {})["rlimit.inherited"] == []


def test_inherited_absent_without_parent() -> None:
    assert "rlimit.inherited" not in relative_facts({"rlimit.nofile": "1024 1024"}, {})


def test_inherited_absent_empty_parent_limits() -> None:
    container: FactValues = {"rlimit.nofile": "1024 1024", "hostside.parent.limits": []}

    assert "rlimit.inherited" not in relative_facts(container, {})


def test_inherited_empty_without_own_limit() -> None:
    container: FactValues = {"hostside.parent.limits": parent_limits(("1024", "1024"))}

    assert relative_facts(container, {})["rlimit.inherited"] == []


# -- dev.nodes ---------------------------------------------------------------


def test_dev_nodes_sorted_union() -> None:
    derived = derive(
        {"dev.char": ["/dev/zero", "/dev/null", "/dev/pts/ptmx"], "dev.block": ["/dev/loop0"]}
    )

    assert derived["dev.nodes"] == ["/dev/loop0", "/dev/null", "/dev/pts/ptmx", "/dev/zero"]


def test_dev_nodes_char_only() -> None:
    assert derive({"dev.char": ["/dev/tty", "/dev/full"]})["dev.nodes"] == ["/dev/full", "/dev/tty"]


def test_dev_nodes_block_only() -> None:
    assert derive({"dev.block": ["/dev/sda"]})["dev.nodes"] == ["/dev/sda"]


def test_dev_nodes_single_string() -> None:
    assert derive({"dev.char": "/dev/null"})["dev.nodes"] == ["/dev/null"]


def test_dev_nodes_absent_unread() -> None:
    assert "dev.nodes" not in derive({"hostname": "box"})


# -- masked.unmasked ---------------------------------------------------------

CONTAINER_MOUNTS = [
    "600 500 0:50 / / rw,relatime - overlay overlay rw",
    "601 600 0:51 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw",
    "602 600 0:52 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755",
    "603 600 0:53 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro",
]
#: runc masks a file by binding the container's /dev/null over it.
KCORE_MASK = "610 601 0:52 /null /proc/kcore rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755"
#: runc masks a directory with an empty read-only tmpfs.
ACPI_MASK = "611 601 0:60 / /proc/acpi ro,relatime - tmpfs tmpfs ro"


def unmasked(present: list[str], extra_mounts: list[str]) -> list[str] | str:
    derived = derive({"mountinfo": [*CONTAINER_MOUNTS, *extra_mounts], "masked.present": present})
    return derived["masked.unmasked"]


def test_file_bound_to_dev_null_masked() -> None:
    assert unmasked(["/proc/kcore"], [KCORE_MASK]) == []


def test_file_without_mount_unmasked() -> None:
    # Only /proc covers it: a mount above the path does not mask it.
    assert unmasked(["/proc/kcore"], []) == ["/proc/kcore"]


def test_directory_tmpfs_masked() -> None:
    assert unmasked(["/proc/acpi"], [ACPI_MASK]) == []


def test_mount_below_path_not_mask() -> None:
    # A mount inside /sys/firmware leaves the rest of the directory visible.
    efivars = "612 603 0:61 / /sys/firmware/efi/efivars rw - efivarfs efivarfs rw"

    assert unmasked(["/sys/firmware"], [efivars]) == ["/sys/firmware"]


def test_mount_with_name_prefix_not_mask() -> None:
    # /proc/timer is not a parent of /proc/timer_list, only a string prefix.
    timer = "613 601 0:52 /null /proc/timer rw - tmpfs tmpfs rw"

    assert unmasked(["/proc/timer_list"], [timer]) == ["/proc/timer_list"]


def test_mask_of_other_path_not_mask() -> None:
    assert unmasked(["/proc/keys"], [KCORE_MASK]) == ["/proc/keys"]


def test_unmasked_keeps_probe_order() -> None:
    present = ["/proc/keys", "/proc/kcore", "/proc/acpi", "/sys/firmware"]

    assert unmasked(present, [KCORE_MASK, ACPI_MASK]) == ["/proc/keys", "/sys/firmware"]


def test_unmasked_empty_when_none_present() -> None:
    assert derive({"mountinfo": CONTAINER_MOUNTS})["masked.unmasked"] == []


def test_unmasked_absent_without_mountinfo() -> None:
    assert "masked.unmasked" not in derive({"masked.present": ["/proc/kcore"]})


def test_unmasked_from_probe_output() -> None:
    lines = [
        "probe.version\t1",
        *(f"mountinfo[]\t{line}" for line in [*CONTAINER_MOUNTS, KCORE_MASK]),
        "masked.present[]\t/proc/kcore",
        "masked.present[]\t/proc/keys",
        "dev.char[]\t/dev/null",
        "dev.char[]\t/dev/full",
        *(f"limits[]\t{line.strip()}" for line in LIMITS),
        END_MARKER,
    ]

    derived = derive(parse("\n".join(lines) + "\n"))

    assert derived["masked.unmasked"] == ["/proc/keys"]
    assert derived["dev.nodes"] == ["/dev/full", "/dev/null"]
    assert derived["rlimit.nofile"] == "1024 1048576"


# -- the parent and children of a container's first process ------------------


def write_process(
    proc: Path,
    pid: int,
    parent: int,
    state: str = "S",
    comm: str = "sh",
    cmdline: bytes | None = None,
    limits: list[str] | None = None,
) -> None:
    """Write /proc/<pid>/stat (and cmdline, limits when given) into a fake /proc tree."""
    directory = proc / str(pid)
    directory.mkdir(parents=True)
    (directory / "stat").write_text(f"{pid} ({comm}) {state} {parent} {pid} {pid} 0 -1 4194560\n")
    if cmdline is not None:
        (directory / "cmdline").write_bytes(cmdline)
    if limits is not None:
        (directory / "limits").write_text("\n".join([LIMITS_HEADER, *limits]) + "\n")


CONTAINER_PID = 300
SHIM_PID = 200


@pytest.fixture
def fake_proc(tmp_path: Path) -> Path:
    """A /proc tree with a shim (200), its container's first process (300) and two zombies."""
    proc = tmp_path / "proc"
    write_process(
        proc,
        SHIM_PID,
        1,
        comm="containerd-shim",
        cmdline=b"/usr/bin/containerd-shim-runc-v2\0-namespace\0moby\0",
        limits=LIMITS,
    )
    write_process(proc, CONTAINER_PID, SHIM_PID)
    write_process(proc, 301, CONTAINER_PID, state="Z", comm="sleep")
    write_process(proc, 302, CONTAINER_PID, state="Z", comm="true")
    (proc / "self").mkdir()
    (proc / "sys").mkdir()
    return proc


def test_family_parent_cmdline(fake_proc: Path) -> None:
    facts = _family(CONTAINER_PID, fake_proc)

    assert facts["hostside.parent"] == "/usr/bin/containerd-shim-runc-v2 -namespace moby"


def test_family_parent_limits(fake_proc: Path) -> None:
    facts = _family(CONTAINER_PID, fake_proc)

    assert facts["hostside.parent.limits"] == LIMITS


def test_family_counts_zombies(fake_proc: Path) -> None:
    assert _family(CONTAINER_PID, fake_proc)["hostside.zombies"] == "2"


def test_family_running_child_not_zombie(fake_proc: Path) -> None:
    write_process(fake_proc, 303, CONTAINER_PID, state="S", comm="sleep")

    assert _family(CONTAINER_PID, fake_proc)["hostside.zombies"] == "2"


def test_family_other_parents_zombie(fake_proc: Path) -> None:
    write_process(fake_proc, 304, SHIM_PID, state="Z", comm="sh")
    write_process(fake_proc, 305, 3000, state="Z", comm="sh")

    assert _family(CONTAINER_PID, fake_proc)["hostside.zombies"] == "2"


def test_family_pid_prefix_not_parent(fake_proc: Path) -> None:
    # A child of PID 3000 is not a child of PID 300.
    write_process(fake_proc, 306, 3000, state="Z")

    assert _family(CONTAINER_PID, fake_proc)["hostside.zombies"] == "2"


def test_family_command_name_with_parens(fake_proc: Path) -> None:
    # The command name may contain ") Z 300 (", which must not be read as state and ppid.
    write_process(fake_proc, 307, 1, state="S", comm="x) Z 300 (y")

    assert _family(CONTAINER_PID, fake_proc)["hostside.zombies"] == "2"


def test_family_zombie_with_spaced_name(fake_proc: Path) -> None:
    write_process(fake_proc, 308, CONTAINER_PID, state="Z", comm="my worker (2)")

    assert _family(CONTAINER_PID, fake_proc)["hostside.zombies"] == "3"


def test_family_vanished_process_skipped(fake_proc: Path) -> None:
    # A process that exits while /proc is listed leaves a directory without stat.
    (fake_proc / "309").mkdir()

    assert _family(CONTAINER_PID, fake_proc)["hostside.zombies"] == "2"


def test_family_no_zombies(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    write_process(proc, SHIM_PID, 1, cmdline=b"conmon\0", limits=LIMITS)
    write_process(proc, CONTAINER_PID, SHIM_PID)

    assert _family(CONTAINER_PID, proc)["hostside.zombies"] == "0"


def test_family_gone_process(fake_proc: Path) -> None:
    facts = _family(999, fake_proc)

    assert "hostside.parent" not in facts
    assert "hostside.parent.limits" not in facts
    assert facts["hostside.zombies"] == "0"


def test_family_parent_without_limits(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    write_process(proc, SHIM_PID, 1, cmdline=b"conmon\0--cid\0abc\0")
    write_process(proc, CONTAINER_PID, SHIM_PID)

    facts = _family(CONTAINER_PID, proc)

    assert facts["hostside.parent"] == "conmon --cid abc"
    assert "hostside.parent.limits" not in facts


def test_family_parent_limits_to_inherited(fake_proc: Path) -> None:
    container: FactValues = {"rlimit.nofile": "1024 1048576", **_family(CONTAINER_PID, fake_proc)}

    assert relative_facts(container, {})["rlimit.inherited"] == ["nofile"]


def test_family_real_proc() -> None:
    facts = _family(os.getpid(), Path("/proc"))

    assert facts["hostside.parent"] == (
        Path(f"/proc/{os.getppid()}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    )
    assert parse_limits(list(facts["hostside.parent.limits"]))
    assert int(str(facts["hostside.zombies"])) >= 0


# -- the host's mandatory access control module ------------------------------


def fake_sys(tmp_path: Path, apparmor: str | None = None, selinux: bool = False) -> Path:
    """Return a fake /sys with AppArmor's 'enabled' parameter and selinuxfs's enforce file."""
    sys = tmp_path / "sys"
    sys.mkdir()
    if apparmor is not None:
        parameters = sys / "module" / "apparmor" / "parameters"
        parameters.mkdir(parents=True)
        (parameters / "enabled").write_text(apparmor)
    if selinux:
        (sys / "fs" / "selinux").mkdir(parents=True)
        (sys / "fs" / "selinux" / "enforce").write_text("1")
    return sys


def test_mac_apparmor_enabled(tmp_path: Path) -> None:
    assert mac_module(fake_sys(tmp_path, apparmor="Y\n")) == "apparmor"


def test_mac_apparmor_disabled(tmp_path: Path) -> None:
    assert mac_module(fake_sys(tmp_path, apparmor="N\n")) == ""


def test_mac_selinux(tmp_path: Path) -> None:
    assert mac_module(fake_sys(tmp_path, selinux=True)) == "selinux"


def test_mac_apparmor_disabled_selinux(tmp_path: Path) -> None:
    assert mac_module(fake_sys(tmp_path, apparmor="N", selinux=True)) == "selinux"


def test_mac_apparmor_before_selinux(tmp_path: Path) -> None:
    assert mac_module(fake_sys(tmp_path, apparmor="Y", selinux=True)) == "apparmor"


def test_mac_none(tmp_path: Path) -> None:
    assert mac_module(fake_sys(tmp_path)) == ""


def test_mac_missing_sys(tmp_path: Path) -> None:
    assert mac_module(tmp_path / "absent") == ""


# -- the static image --------------------------------------------------------


@pytest.fixture
def busybox() -> Path:
    """Return the host's busybox, or skip where there is none."""
    try:
        return find_busybox()
    except UsageError as exc:
        pytest.skip(str(exc))


def test_static_image_only_busybox(tmp_path: Path, busybox: Path) -> None:
    image = build_static_image(tmp_path)

    files = sorted(str(path.relative_to(image.rootfs)) for path in image.rootfs.rglob("*"))
    assert files == [STATIC_BINARY.lstrip("/")]


def test_static_image_copies_busybox(tmp_path: Path, busybox: Path) -> None:
    image = build_static_image(tmp_path)

    binary = image.rootfs / STATIC_BINARY.lstrip("/")
    assert binary.read_bytes() == busybox.read_bytes()
    assert binary.stat().st_mode & stat.S_IXUSR


def test_static_image_kind_and_reference(tmp_path: Path, busybox: Path) -> None:
    image = build_static_image(tmp_path)

    assert image.kind == "static"
    assert image.tag == content_tag(busybox)
    assert image.reference == f"localhost/isobench-static:{image.tag}"


def test_static_image_no_shell(tmp_path: Path, busybox: Path) -> None:
    assert build_static_image(tmp_path).has_shell is False


def test_static_image_directory(tmp_path: Path, busybox: Path) -> None:
    image = build_static_image(tmp_path)

    assert image.rootfs == tmp_path / f"static-{image.tag}" / "rootfs"
    assert (tmp_path / f"static-{image.tag}" / "complete").read_text() == f"{image.tag}\n"
    assert not (tmp_path / f"static-{image.tag}.partial").exists()


def test_static_image_reused(tmp_path: Path, busybox: Path) -> None:
    first = build_static_image(tmp_path)
    sentinel = first.rootfs / "kept"
    sentinel.write_text("")

    second = build_static_image(tmp_path)

    assert second == first
    assert sentinel.exists()


def test_static_image_incomplete_rebuilt(tmp_path: Path, busybox: Path) -> None:
    tag = content_tag(busybox)
    leftover = tmp_path / f"static-{tag}" / "rootfs"
    leftover.mkdir(parents=True)
    (leftover / "stale").write_text("")
    (tmp_path / f"static-{tag}.partial" / "rootfs").mkdir(parents=True)

    image = build_static_image(tmp_path)

    assert sorted(path.name for path in image.rootfs.iterdir()) == ["busybox"]
    assert not (tmp_path / f"static-{tag}.partial").exists()


def test_static_image_dynamic_busybox_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On most distributions /bin/sh (dash or bash) is dynamically linked. The test skips
    # where it is not.
    dynamic = Path("/bin/sh").resolve()
    if b"ld-linux" not in dynamic.read_bytes()[:65536]:
        pytest.skip(f"{dynamic} is not dynamically linked here")
    monkeypatch.setenv("ISOBENCH_BUSYBOX", str(dynamic))

    with pytest.raises(UsageError, match="dynamically linked"):
        build_static_image(tmp_path)

    assert list(tmp_path.iterdir()) == []
