"""Tests of isobench.probe.derive: derived facts and the container/host comparison."""

from __future__ import annotations

import pytest

from isobench.probe import END_MARKER
from isobench.probe.derive import DERIVED_FACTS, HOST_FACTS, PROBE_FACTS, derive, relative_facts
from isobench.probe.parse import parse

INTERFACES = ["eth0 02:42:ac:11:00:02", "lo 00:00:00:00:00:00", "veth1 aa:bb:cc:dd:ee:ff"]


# -- interfaces and processes ------------------------------------------------


def test_interface_names() -> None:
    assert derive({"net.if": INTERFACES})["net.if.names"] == ["eth0", "lo", "veth1"]


def test_external_excludes_loopback() -> None:
    external = derive({"net.if": INTERFACES})["net.if.external"]

    assert external == ["eth0 02:42:ac:11:00:02", "veth1 aa:bb:cc:dd:ee:ff"]


def test_external_keeps_lo_prefix() -> None:
    # Only the interface named exactly "lo" is the loopback.
    external = derive({"net.if": ["lo 00:00:00:00:00:00", "lo0 aa:aa:aa:aa:aa:aa"]})

    assert external["net.if.external"] == ["lo0 aa:aa:aa:aa:aa:aa"]


def test_external_loopback_only() -> None:
    assert derive({"net.if": ["lo 00:00:00:00:00:00"]})["net.if.external"] == []


def test_interface_without_address() -> None:
    # Without /sys/class/net the probe prints interface names alone.
    derived = derive({"net.if": ["lo", "eth0"]})

    assert derived["net.if.names"] == ["lo", "eth0"]
    assert derived["net.if.external"] == ["eth0"]


def test_interfaces_missing() -> None:
    derived = derive({})

    assert derived["net.if.names"] == []
    assert derived["net.if.external"] == []


def test_single_interface_string() -> None:
    assert derive({"net.if": "eth0 02:42:ac:11:00:02"})["net.if.names"] == ["eth0"]


def test_process_cmdlines() -> None:
    derived = derive({"proc": ["1 /isobench/probe.sh", "7 sleep 3600", "9 [kthreadd]"]})

    assert derived["proc.cmdlines"] == ["/isobench/probe.sh", "sleep 3600", "[kthreadd]"]


def test_process_cmdlines_absent() -> None:
    assert "proc.cmdlines" not in derive({"proc": []})


# -- uid map -----------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "0 0 4294967295",
        "         0          0 4294967295",
        "\t0\t0\t4294967295\t",
        "0  0  4294967295",
    ],
)
def test_uid_map_identity_yes(line: str) -> None:
    assert derive({"uid_map": [line]})["uid_map.identity"] == "yes"


@pytest.mark.parametrize(
    "lines",
    [
        ["         0     100000      65536"],
        ["0 0 65536"],
        ["0 1000 1"],
        ["0 0 4294967295", "4294967295 0 1"],
    ],
)
def test_uid_map_identity_no(lines: list[str]) -> None:
    assert derive({"uid_map": lines})["uid_map.identity"] == "no"


def test_uid_map_identity_string() -> None:
    assert derive({"uid_map": "0 0 4294967295"})["uid_map.identity"] == "yes"


def test_uid_map_absent() -> None:
    assert "uid_map.identity" not in derive({})


def test_uid_map_unread_no_verdict() -> None:
    # parse() turns a uid_map the probe could not read into [], and 'no' is
    # what the user-ns-mapped check expects, so it would pass without evidence.
    values = parse(f"probe.version\t1\n{END_MARKER}\n")

    assert "uid_map.identity" not in derive(values)


# -- cgroup path -------------------------------------------------------------


def test_own_path_v1_memory() -> None:
    values = {
        "cgroup": ["4:memory:/docker/abc", "0::/"],
        "cgroup.memory.path": "/docker/abc",
        "cgroup.unified.path": "/",
    }

    assert derive(values)["cgroup.own_path"] == "/docker/abc"


def test_own_path_v2_unified() -> None:
    values = {
        "cgroup": ["0::/system.slice/docker-abc.scope"],
        "cgroup.unified.path": "/system.slice/docker-abc.scope",
    }

    assert derive(values)["cgroup.own_path"] == "/system.slice/docker-abc.scope"


def test_own_path_private_namespace() -> None:
    assert derive({"cgroup.unified.path": "/"})["cgroup.own_path"] == "/"


def test_own_path_empty_cgroup_file() -> None:
    # An empty /proc/self/cgroup (gVisor) has no path to show: the fact is "".
    assert derive({"cgroup": []})["cgroup.own_path"] == ""


def test_own_path_absent_unread() -> None:
    assert "cgroup.own_path" not in derive({})


# -- comparison with the host ------------------------------------------------


def test_cgroupns_private() -> None:
    container = {"ns.cgroup": "cgroup:[4026532500]"}
    host = {"ns.cgroup": "cgroup:[4026531835]"}

    assert relative_facts(container, host)["cgroupns.state"] == "private"


def test_cgroupns_shared() -> None:
    container = {"ns.cgroup": "cgroup:[4026531835]"}
    host = {"ns.cgroup": "cgroup:[4026531835]"}

    assert relative_facts(container, host)["cgroupns.state"] == "shared with host"


def test_cgroupns_container_unknown() -> None:
    assert relative_facts({}, {"ns.cgroup": "cgroup:[4026531835]"}) == {}


def test_cgroupns_host_unknown() -> None:
    assert relative_facts({"ns.cgroup": "cgroup:[4026531835]"}, {}) == {}


# -- fact tables -------------------------------------------------------------


def test_derived_names_documented() -> None:
    values = {
        "proc": ["1 sh"],
        "net.if": INTERFACES,
        "uid_map": ["0 0 4294967295"],
        "cgroup.unified.path": "/",
    }

    produced = set(derive(values)) | set(relative_facts({"ns.cgroup": "a"}, {"ns.cgroup": "b"}))

    assert produced <= set(DERIVED_FACTS)


def test_derived_probe_names_disjoint() -> None:
    assert set(DERIVED_FACTS).isdisjoint(PROBE_FACTS)


def test_host_namespace_facts() -> None:
    assert {"ns.pid", "ns.net", "ns.cgroup", "hostname", "net.if.external"} <= set(HOST_FACTS)
