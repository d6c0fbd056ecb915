"""Tests of isobench.probe.parse, on crafted output and on the real probe run by busybox sh."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from isobench.errors import HarnessError
from isobench.probe import END_MARKER, script_text
from isobench.probe.parse import LIST_FACTS, parse

BUSYBOX = "/bin/busybox"

WELL_FORMED = (
    "probe.version\t1\n"
    "self.pid\t1\n"
    "hostname\tisobench-uts\n"
    "net.if[]\tlo 00:00:00:00:00:00\n"
    "net.if[]\teth0 02:42:ac:11:00:02\n"
    "proc[]\t1 /isobench/probe.sh\n"
    f"{END_MARKER}\n"
)


def test_parse_scalar_facts() -> None:
    values = parse(WELL_FORMED)

    assert values["probe.version"] == "1"
    assert values["self.pid"] == "1"
    assert values["hostname"] == "isobench-uts"


def test_parse_list_items_in_order() -> None:
    values = parse(WELL_FORMED)

    assert values["net.if"] == ["lo 00:00:00:00:00:00", "eth0 02:42:ac:11:00:02"]
    assert values["proc"] == ["1 /isobench/probe.sh"]


def test_parse_list_facts_default_empty() -> None:
    values = parse(f"probe.version\t1\n{END_MARKER}\n")

    for name in LIST_FACTS:
        assert values[name] == [], name


def test_parse_end_marker_only() -> None:
    values = parse(f"{END_MARKER}\n")

    assert set(values) == set(LIST_FACTS)


def test_parse_missing_end_marker() -> None:
    with pytest.raises(HarnessError) as info:
        parse("probe.version\t1\nself.pid\t1\n")

    assert END_MARKER in str(info.value)
    assert "self.pid\t1" in str(info.value)


def test_parse_empty_output() -> None:
    with pytest.raises(HarnessError):
        parse("")


def test_parse_marker_not_prefix() -> None:
    with pytest.raises(HarnessError):
        parse(f"{END_MARKER}-not\n")


def test_parse_stops_at_marker() -> None:
    values = parse(f"self.pid\t1\n{END_MARKER}\nhostname\tlate\n")

    assert "hostname" not in values


def test_parse_tab_in_value() -> None:
    values = parse(f"mountinfo[]\ta\tb\tc\nhostname\tx\ty\n{END_MARKER}\n")

    assert values["mountinfo"] == ["a\tb\tc"]
    assert values["hostname"] == "x\ty"


def test_parse_empty_value() -> None:
    values = parse(f"id.uid\t\n{END_MARKER}\n")

    assert values["id.uid"] == ""


def test_parse_skips_lines_without_tab() -> None:
    values = parse(f"warning: something odd\nself.pid\t7\n\n{END_MARKER}\n")

    assert values == {**{name: [] for name in LIST_FACTS}, "self.pid": "7"}


def test_parse_unknown_list_fact() -> None:
    values = parse(f"extra[]\tone\nextra[]\ttwo\n{END_MARKER}\n")

    assert values["extra"] == ["one", "two"]


def test_parse_later_scalar_wins() -> None:
    values = parse(f"hostname\tfirst\nhostname\tsecond\n{END_MARKER}\n")

    assert values["hostname"] == "second"


def test_parse_trailing_hold_output() -> None:
    # With ISOBENCH_PROBE_HOLD=1 the probe waits after the marker, so any
    # line it prints later is not a fact.
    values = parse(WELL_FORMED + "stray\tline\n")

    assert "stray" not in values


# -- the real probe script ---------------------------------------------------


@pytest.fixture(scope="module")
def probe_output() -> str:
    if not os.access(BUSYBOX, os.X_OK):
        pytest.skip(f"{BUSYBOX} is not installed")
    environment = {"PATH": "/usr/bin:/bin", "ISOBENCH_PROBE_PATHS": f"/proc:{BUSYBOX}:/no/such"}
    result = subprocess.run(
        [BUSYBOX, "sh", "-c", script_text()],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_probe_parses(probe_output: str) -> None:
    assert parse(probe_output)["probe.version"] == "1"


def test_probe_ends_with_marker(probe_output: str) -> None:
    assert probe_output.splitlines()[-1] == END_MARKER


def test_probe_every_line_is_fact(probe_output: str) -> None:
    lines = probe_output.splitlines()[:-1]

    odd = [line for line in lines if "\t" not in line]

    assert odd == []


def test_probe_namespace_facts(probe_output: str) -> None:
    values = parse(probe_output)

    assert re.fullmatch(r"pid:\[\d+\]", str(values["ns.pid"]))
    assert re.fullmatch(r"net:\[\d+\]", str(values["ns.net"]))


def test_probe_namespaces_match_own(probe_output: str) -> None:
    # busybox sh runs in this process's namespaces, so the links agree.
    values = parse(probe_output)

    assert values["ns.pid"] == os.readlink("/proc/self/ns/pid")
    assert values["ns.mnt"] == os.readlink("/proc/self/ns/mnt")


def test_probe_self_pid(probe_output: str) -> None:
    self_pid = parse(probe_output)["self.pid"]

    assert isinstance(self_pid, str)
    assert self_pid.isdigit()
    assert self_pid != str(os.getpid())


def test_probe_hostname(probe_output: str) -> None:
    with open("/proc/sys/kernel/hostname", encoding="utf-8") as handle:
        expected = handle.read().strip()

    assert parse(probe_output)["hostname"] == expected


def test_probe_interfaces(probe_output: str) -> None:
    interfaces = parse(probe_output)["net.if"]

    assert isinstance(interfaces, list)
    assert any(item.split(" ", 1)[0] == "lo" for item in interfaces)


def test_probe_process_list(probe_output: str) -> None:
    processes = parse(probe_output)["proc"]

    assert isinstance(processes, list)
    assert any(item.split(" ", 1)[0] == "1" for item in processes)


def test_probe_mount_points(probe_output: str) -> None:
    assert "/" in parse(probe_output)["mount.point"]


def test_probe_ids(probe_output: str) -> None:
    values = parse(probe_output)

    assert values["id.uid"] == str(os.getuid())
    assert values["id.gid"] == str(os.getgid())


def test_probe_status_facts(probe_output: str) -> None:
    values = parse(probe_output)

    assert re.fullmatch(r"[0-9a-f]{16}", str(values["status.CapEff"]))
    assert values["status.Uid"] == str(os.getuid())


def test_probe_paths_exist(probe_output: str) -> None:
    assert parse(probe_output)["path.exists"] == ["/proc", BUSYBOX]


def test_probe_hold_waits_for_stdin() -> None:
    if not os.access(BUSYBOX, os.X_OK):
        pytest.skip(f"{BUSYBOX} is not installed")
    process = subprocess.Popen(
        [BUSYBOX, "sh", "-c", script_text()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={"PATH": "/usr/bin:/bin", "ISOBENCH_PROBE_HOLD": "1"},
    )
    try:
        assert process.stdout is not None
        lines = iter(process.stdout.readline, "")
        seen_marker = any(line.rstrip("\n") == END_MARKER for line in lines)

        assert seen_marker
        assert process.poll() is None
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)
