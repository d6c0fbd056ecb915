"""Tests of how the compose and swarm rows turn a request into a Compose file and service
options, what they declare they cannot express, and how they read a container's inspect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from isobench.errors import HarnessError
from isobench.journal import Journal
from isobench.model import Request
from isobench.runtimes import capabilities
from isobench.runtimes.base import Context, Launched, ProbeImage
from isobench.runtimes.compose import (
    SERVICE,
    ComposeAdapter,
    compose_file,
    compose_unsupported,
    escape,
    not_applied,
    project_name,
    service_definition,
)
from isobench.runtimes.swarm import (
    NETWORK_NONE,
    STACK_NETWORK,
    STDIN_REJECTED,
    StackAdapter,
    SwarmAdapter,
    open_stdin,
    service_options,
    stack_service,
    stack_unsupported,
    swarm_unsupported,
)

MIB = 1024 * 1024
IMAGE = "localhost/isobench-probe:abc"


def service_of(request: Request, **kwargs: Any) -> dict[str, Any]:
    return service_definition(request, IMAGE, ["/bin/sh", "-c", "true"], {}, run_id="R", **kwargs)


def values_of(options: list[str], flag: str) -> list[str]:
    return [options[index + 1] for index, option in enumerate(options) if option == flag]


# -- the Compose file ----------------------------------------------------------


def test_default_service() -> None:
    service = service_of(Request())

    assert service == {
        "image": IMAGE,
        "command": ["/bin/sh", "-c", "true"],
        "labels": {"isobench.run": "R"},
        "network_mode": "none",
    }


def test_file_parses_back() -> None:
    service = service_of(Request(memory=64 * MIB))

    document = yaml.safe_load(compose_file(service))

    assert document["services"][SERVICE] == service
    assert document["version"] == "3.8"


def test_external_network_declared() -> None:
    service = service_of(Request(network="default", network_name="isobench-net"))

    document = yaml.safe_load(compose_file(service))

    assert document["networks"] == {"isobench-net": {"external": True}}


def test_dollar_is_escaped() -> None:
    service = service_definition(
        Request(env=(("A", "$HOME"),)), IMAGE, ["echo", "${X}"], {"B": "$$"}, run_id="R"
    )

    assert service["command"] == ["echo", "$${X}"]
    assert service["environment"] == {"A": "$$HOME", "B": "$$$$"}


def test_escape_leaves_other_text() -> None:
    assert escape("a b\n'\"żółw") == "a b\n'\"żółw"


def test_environment_keeps_request_then_extra() -> None:
    service = service_definition(
        Request(env=(("A", "1"), ("B", "two words"))), IMAGE, ["true"], {"C": "3"}, run_id="R"
    )

    assert list(service["environment"].items()) == [("A", "1"), ("B", "two words"), ("C", "3")]


@pytest.mark.parametrize(
    ("fields", "key", "value"),
    [
        ({"hostname": "box"}, "hostname", "box"),
        ({"user": "1000:2000"}, "user", "1000:2000"),
        ({"workdir": "/tmp"}, "working_dir", "/tmp"),
        ({"pid": "host"}, "pid", "host"),
        ({"ipc": "host"}, "ipc", "host"),
        ({"network": "host"}, "network_mode", "host"),
        ({"cap_add": ("NET_ADMIN",)}, "cap_add", ["NET_ADMIN"]),
        ({"cap_drop": ("ALL",)}, "cap_drop", ["ALL"]),
        ({"seccomp": "unconfined"}, "security_opt", ["seccomp=unconfined"]),
        ({"no_new_privs": True}, "security_opt", ["no-new-privileges"]),
        ({"privileged": True}, "privileged", True),
        ({"read_only": True}, "read_only", True),
        ({"tmpfs": ({"target": "/scratch", "size": 8 * MIB},)}, "tmpfs", ["/scratch:size=8388608"]),
        ({"devices": ("/dev/fuse",)}, "devices", ["/dev/fuse"]),
        (
            {"ulimits": ({"name": "nofile", "soft": 512, "hard": 1024},)},
            "ulimits",
            {"nofile": {"soft": 512, "hard": 1024}},
        ),
        ({"init": True}, "init", True),
        (
            {"add_hosts": ({"name": "db.test", "address": "10.0.0.2"},)},
            "extra_hosts",
            ["db.test:10.0.0.2"],
        ),
        ({"dns": ("10.0.0.53",)}, "dns", ["10.0.0.53"]),
        ({"dns_search": ("example.test",)}, "dns_search", ["example.test"]),
        (
            {"network": "default", "publish": ({"host_port": 8080, "container_port": 80},)},
            "ports",
            ["127.0.0.1:8080:80/tcp"],
        ),
        ({"network": "default", "network_name": "isobench-net"}, "networks", ["isobench-net"]),
        ({"memory_swap": 64 * MIB, "memory": 64 * MIB}, "memswap_limit", 64 * MIB),
        ({"pids_limit": 64}, "pids_limit", 64),
        ({"cpuset_cpus": "0"}, "cpuset", "0"),
        ({"cpu_shares": 512}, "cpu_shares", 512),
    ],
)
def test_service_key(fields: dict[str, Any], key: str, value: object) -> None:
    assert service_of(Request(**fields))[key] == value


def test_default_network_is_the_project_network() -> None:
    assert "network_mode" not in service_of(Request(network="default"))


def test_both_security_options() -> None:
    service = service_of(Request(seccomp="unconfined", no_new_privs=True))

    assert service["security_opt"] == ["seccomp=unconfined", "no-new-privileges"]


def test_no_new_privs_false_sets_nothing() -> None:
    assert "security_opt" not in service_of(Request(no_new_privs=False))


def test_bind_mounts() -> None:
    request = Request(
        mounts=(
            {"source": "/srv/a", "target": "/a", "read_only": True},
            {"source": "/srv/b", "target": "/b"},
        )
    )

    assert service_of(request)["volumes"] == [
        {"type": "bind", "source": "/srv/a", "target": "/a", "read_only": True},
        {"type": "bind", "source": "/srv/b", "target": "/b", "read_only": False},
    ]


def test_limits_under_deploy() -> None:
    service = service_of(Request(memory=64 * MIB, cpus=0.5))

    assert service["deploy"] == {"resources": {"limits": {"memory": "67108864b", "cpus": "0.5"}}}


def test_io_limits_name_the_device() -> None:
    request = Request(device_write_bps=MIB, device_read_bps=2 * MIB)

    service = service_of(request, device="/dev/vda")

    assert service["blkio_config"] == {
        "device_write_bps": [{"path": "/dev/vda", "rate": MIB}],
        "device_read_bps": [{"path": "/dev/vda", "rate": 2 * MIB}],
    }


def test_io_limits_need_the_device() -> None:
    with pytest.raises(Exception, match="block device"):
        service_of(Request(device_write_bps=MIB))


def test_every_field_changes_the_file_or_is_declared() -> None:
    """Each matrix sample either changes the service or is declared unsupported."""
    default = service_of(Request())
    for field, samples in capabilities.SAMPLES.items():
        for label, values in samples:
            request = Request(**values)
            if compose_unsupported(request) is not None or field == "image":
                continue
            if values == {"no_new_privs": False}:
                # docker's default already: no option, as for the docker row.
                continue
            extra = {"device": "/dev/vda"} if "bps" in field else {}
            assert service_of(request, **extra) != default, f"{field} ({label}) changes nothing"


@pytest.mark.parametrize(
    ("name", "project"),
    [
        (
            "isobench-20261205T090838Z-dad520-compose-1",
            "isobench-20261205t090838z-dad520-compose-1",
        ),
        ("a.b c", "abc"),
    ],
)
def test_project_name(name: str, project: str) -> None:
    assert project_name(name) == project


# -- what Compose and swarm cannot express -----------------------------------------


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"uts": "host"}, "'uts'"),
        ({"cgroupns": "private"}, "'cgroup'"),
        ({"cgroupns": "host"}, "'cgroup'"),
        ({"userns": "private"}, "userns-remap"),
        ({"masked_paths": "unconfined"}, "systempaths"),
        ({"env": (("A=B", "c"),)}, "'='"),
    ],
)
def test_compose_cannot(fields: dict[str, Any], words: str) -> None:
    reason = compose_unsupported(Request(**fields))

    assert reason is not None
    assert words in reason


def test_compose_privileged_unmasks() -> None:
    assert compose_unsupported(Request(privileged=True, masked_paths="unconfined")) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"pid": "host"},
        {"ipc": "host"},
        {"uts": "host"},
        {"cgroupns": "host"},
        {"userns": "private"},
        {"seccomp": "unconfined"},
        {"no_new_privs": True},
        {"privileged": True},
        {"masked_paths": "unconfined"},
        {"devices": ("/dev/fuse",)},
        {"memory": 64 * MIB, "memory_swap": 64 * MIB},
        {"cpuset_cpus": "0"},
        {"cpu_shares": 512},
        {"device_write_bps": MIB},
        {"device_read_bps": MIB},
    ],
)
def test_swarm_cannot(fields: dict[str, Any]) -> None:
    assert swarm_unsupported(Request(network="default", **fields)) is not None


@pytest.mark.parametrize(
    "fields",
    [{"network_name": "isobench-net"}, {"publish": ({"host_port": 8080, "container_port": 80},)}],
)
def test_swarm_cannot_attach(fields: dict[str, Any]) -> None:
    assert swarm_unsupported(Request(network="default", **fields)) is not None


def test_swarm_runs_network_none() -> None:
    assert swarm_unsupported(Request()) is None


@pytest.mark.parametrize("network", ["default", "host"])
def test_swarm_networks(network: str) -> None:
    assert swarm_unsupported(Request(network=network)) is None  # type: ignore[arg-type]


def test_swarm_no_new_privs_false() -> None:
    assert swarm_unsupported(Request(network="default", no_new_privs=False)) is None


def test_matrix_cells() -> None:
    compose = capabilities.expressed(ComposeAdapter())
    swarm = capabilities.expressed(SwarmAdapter())

    assert capabilities.cell(compose["memory"]) == capabilities.YES
    assert capabilities.cell(compose["uts"]) == capabilities.PARTLY
    assert capabilities.cell(compose["cgroupns"]) == capabilities.NO
    assert capabilities.cell(swarm["hostname"]) == capabilities.YES
    assert capabilities.cell(swarm["memory"]) == capabilities.YES
    assert capabilities.cell(swarm["pids_limit"]) == capabilities.YES
    assert capabilities.cell(swarm["network"]) == capabilities.PARTLY
    assert swarm["network"]["network=none (default)"] == NETWORK_NONE
    assert capabilities.cell(swarm["cpu_shares"]) == capabilities.NO
    assert capabilities.cell(swarm["pid"]) == capabilities.PARTLY


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"pid": "host"}, "Ignoring unsupported options: pid"),
        ({"ipc": "host"}, "Ignoring unsupported options: ipc"),
        ({"uts": "host"}, "Additional property uts is not allowed"),
        ({"cgroupns": "host"}, "Additional property cgroup is not allowed"),
        ({"privileged": True}, "Ignoring unsupported options: privileged"),
        ({"devices": ("/dev/fuse",)}, "Ignoring unsupported options: devices"),
        ({"seccomp": "unconfined"}, "security_opt"),
        ({"no_new_privs": True}, "security_opt"),
        ({"pids_limit": 40}, "Additional property pids_limit is not allowed"),
        ({"memory": 64 * MIB, "memory_swap": 64 * MIB}, "memswap_limit"),
        ({"cpuset_cpus": "0"}, "cpuset"),
        ({"cpu_shares": 512}, "cpu_shares"),
        ({"device_write_bps": MIB}, "blkio_config"),
        ({"publish": ({"host_port": 8080, "container_port": 80},)}, "0.0.0.0"),
    ],
)
def test_stack_cannot(fields: dict[str, Any], words: str) -> None:
    reason = stack_unsupported(Request(network="default", **fields))

    assert reason is not None
    assert words in reason


def test_stack_ignores_network_mode_host() -> None:
    assert stack_unsupported(Request(network="host")) == STACK_NETWORK


def test_stack_runs_network_none() -> None:
    assert stack_unsupported(Request()) is None


def test_stack_expresses_limits_under_deploy() -> None:
    assert stack_unsupported(Request(network="default", memory=64 * MIB, cpus=0.5)) is None


def test_stack_service() -> None:
    service = service_of(Request(memory=64 * MIB))

    stacked = stack_service(service, "R", "isobench-R-stack-none")

    assert "network_mode" not in stacked
    assert stacked["networks"] == ["isobench-R-stack-none"]
    assert stacked["stdin_open"] is True
    assert stacked["deploy"] == {
        "resources": {"limits": {"memory": "67108864b"}},
        "replicas": 1,
        "restart_policy": {"condition": "none"},
        "labels": {"isobench.run": "R"},
    }
    assert service["network_mode"] == "none"


def test_stack_file_declares_internal_network() -> None:
    stacked = stack_service(service_of(Request()), "R", "isobench-R-stack-none")

    document = yaml.safe_load(compose_file(stacked))

    assert document["networks"] == {"isobench-R-stack-none": {"external": True}}


def test_stack_default_network_needs_nothing() -> None:
    stacked = stack_service(service_of(Request(network="default")), "R")

    assert "networks" not in stacked


def test_stack_network_none_needs_internal_network() -> None:
    with pytest.raises(HarnessError):
        stack_service(service_of(Request()), "R")


def test_stack_matrix_cells() -> None:
    stack = capabilities.expressed(StackAdapter())

    assert capabilities.cell(stack["memory"]) == capabilities.YES
    assert capabilities.cell(stack["tmpfs"]) == capabilities.YES
    assert capabilities.cell(stack["pids_limit"]) == capabilities.NO
    assert capabilities.cell(stack["network"]) == capabilities.PARTLY
    assert stack["network"]["network=none (default)"] == NETWORK_NONE
    assert stack["network"]["network=host"] == STACK_NETWORK


# -- service options -----------------------------------------------------------------


def test_service_options_default() -> None:
    assert service_options(Request(network="default"), {}) == []


def test_service_options_network_none() -> None:
    options = service_options(Request(), {}, "isobench-R-swarm-none")

    assert values_of(options, "--network") == ["isobench-R-swarm-none"]


def test_service_options_network_none_needs_network() -> None:
    with pytest.raises(HarnessError):
        service_options(Request(), {})


def test_service_options_every_field() -> None:
    request = Request(
        hostname="box",
        env=(("A", "two words"),),
        user="1000:2000",
        workdir="/tmp",
        network="host",
        cap_add=("NET_ADMIN",),
        cap_drop=("ALL",),
        read_only=True,
        mounts=({"source": "/srv", "target": "/data", "read_only": True},),
        tmpfs=({"target": "/scratch", "size": 8 * MIB},),
        ulimits=({"name": "nofile", "soft": 512, "hard": 1024},),
        init=True,
        add_hosts=({"name": "db.test", "address": "10.0.0.2"},),
        dns=("10.0.0.53",),
        dns_search=("example.test",),
        memory=64 * MIB,
        pids_limit=64,
        cpus=0.5,
    )

    options = service_options(request, {"B": "1"})

    assert values_of(options, "--hostname") == ["box"]
    assert values_of(options, "--env") == ["A=two words", "B=1"]
    assert values_of(options, "--user") == ["1000:2000"]
    assert values_of(options, "--workdir") == ["/tmp"]
    assert values_of(options, "--network") == ["host"]
    assert values_of(options, "--cap-add") == ["NET_ADMIN"]
    assert values_of(options, "--cap-drop") == ["ALL"]
    assert "--read-only" in options
    assert values_of(options, "--mount") == [
        "type=bind,source=/srv,target=/data,readonly",
        "type=tmpfs,target=/scratch,tmpfs-size=8388608",
    ]
    assert values_of(options, "--ulimit") == ["nofile=512:1024"]
    assert "--init" in options
    assert values_of(options, "--host") == ["db.test:10.0.0.2"]
    assert values_of(options, "--dns") == ["10.0.0.53"]
    assert values_of(options, "--dns-search") == ["example.test"]
    assert values_of(options, "--limit-memory") == [str(64 * MIB)]
    assert values_of(options, "--limit-pids") == ["64"]
    assert values_of(options, "--limit-cpu") == ["0.5"]


def test_open_stdin_spec() -> None:
    service = {
        "ID": "x",
        "Spec": {
            "Name": "s",
            "TaskTemplate": {"ContainerSpec": {"Image": IMAGE}},
            "Mode": {"Replicated": {"Replicas": 0}},
        },
    }

    spec = open_stdin(service)

    assert spec["TaskTemplate"]["ContainerSpec"]["OpenStdin"] is True
    assert spec["Mode"] == {"Replicated": {"Replicas": 1}}
    assert "OpenStdin" not in service["Spec"]["TaskTemplate"]["ContainerSpec"]


# -- exit statuses -------------------------------------------------------------------


def test_compose_failure() -> None:
    stderr = "Creating p_probe_run ... error\nERROR: for probe  Cannot create container\n"

    assert ComposeAdapter().runtime_failure(1, stderr) == (
        "compose itself failed: ERROR: for probe  Cannot create container"
    )


def test_command_exit_one_is_not_a_compose_failure() -> None:
    assert ComposeAdapter().runtime_failure(1, "Creating p_probe_run ... done\n") is None


def test_swarm_failure() -> None:
    stderr = "swarm: the task of service s rejected: no suitable node\n"

    assert SwarmAdapter().runtime_failure(125, stderr) == (
        "the task of service s rejected: no suitable node"
    )
    assert SwarmAdapter().runtime_failure(3, stderr) is None


# -- accepted and not applied --------------------------------------------------------


def inspect_of(host: dict[str, Any], config: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"HostConfig": {"NetworkMode": "none", **host}, "Config": config or {}, "Mounts": []}


def test_applied_limits_give_no_lines() -> None:
    request = Request(memory=64 * MIB, pids_limit=40, cpus=0.5, cap_drop=("ALL",))
    host = {"Memory": 64 * MIB, "PidsLimit": 40, "NanoCpus": 500_000_000, "CapDrop": ["ALL"]}

    assert not_applied(request, inspect_of(host)) == []


def test_dropped_limits_are_named() -> None:
    request = Request(memory=64 * MIB, pids_limit=40, cpus=0.5)
    host = {"Memory": 0, "PidsLimit": None, "NanoCpus": 0}

    lines = not_applied(request, inspect_of(host))

    assert any(line.startswith("memory: requested 67108864") for line in lines)
    assert any(line.startswith("pids_limit: requested 40") for line in lines)
    assert any(line.startswith("cpus: requested 0.5") for line in lines)


def test_cpu_quota_counts_as_cpus() -> None:
    host = {"NanoCpus": 0, "CpuQuota": 50000, "CpuPeriod": 100000}

    assert not_applied(Request(cpus=0.5), inspect_of(host)) == []


def test_dropped_security_fields_are_named() -> None:
    request = Request(cap_add=("net_admin",), seccomp="unconfined", no_new_privs=True, init=True)

    lines = not_applied(request, inspect_of({"CapAdd": None, "SecurityOpt": None}))

    assert "cap_add: ['CAP_NET_ADMIN'] not in HostConfig.CapAdd" in lines
    assert any(line.startswith("seccomp:") for line in lines)
    assert any(line.startswith("no_new_privs:") for line in lines)
    assert any(line.startswith("init:") for line in lines)


def test_capability_spelling_is_normalized() -> None:
    request = Request(cap_add=("NET_ADMIN",))

    assert not_applied(request, inspect_of({"CapAdd": ["CAP_NET_ADMIN"]})) == []


def test_mounts_compared() -> None:
    request = Request(
        mounts=({"source": "/srv", "target": "/data", "read_only": True},),
        tmpfs=({"target": "/scratch", "size": 8 * MIB},),
    )
    inspected = {
        "HostConfig": {"NetworkMode": "none", "Tmpfs": {"/scratch": "size=8388608"}},
        "Config": {},
        "Mounts": [{"Type": "bind", "Destination": "/data", "RW": True}],
    }

    assert not_applied(request, inspected) == ["mounts: no read-only bind mount on /data"]


def test_config_fields_compared() -> None:
    request = Request(hostname="box", user="1000", workdir="/tmp", env=(("A", "1"),))
    config = {"Hostname": "abc", "User": "", "WorkingDir": "/tmp", "Env": ["A=2"]}

    lines = not_applied(request, inspect_of({}, config))

    assert [line.split(":", 1)[0] for line in lines] == ["hostname", "user", "env"]


def test_name_resolution_compared() -> None:
    request = Request(
        add_hosts=({"name": "db.test", "address": "10.0.0.2"},),
        dns=("10.0.0.53",),
        dns_search=("example.test",),
    )
    host = {"ExtraHosts": ["db.test:10.0.0.2"], "Dns": [], "DnsSearch": ["example.test"]}

    assert not_applied(request, inspect_of(host)) == [
        "dns: requested ['10.0.0.53'], HostConfig.Dns is []"
    ]


def test_published_port_compared() -> None:
    request = Request(network="default", publish=({"host_port": 8080, "container_port": 80},))
    bound = {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}

    assert not_applied(request, inspect_of({"PortBindings": bound})) == []
    assert len(not_applied(request, inspect_of({"PortBindings": {}}))) == 1


def test_namespaces_compared() -> None:
    request = Request(pid="host", ipc="host", network="host")
    host = {"PidMode": "host", "IpcMode": "private", "NetworkMode": "host"}

    assert not_applied(request, inspect_of(host)) == [
        "ipc: requested 'host', HostConfig.IpcMode is 'private'"
    ]


# -- launch, with a fake Compose ---------------------------------------------------


class FakeEngine:
    """The parts of the docker row that the compose row's launch uses."""

    binary = "/usr/bin/docker"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.imported: list[str] = []

    def _ensure_image(self, image: ProbeImage) -> None:
        self.imported.append(image.reference)

    def client_directory(self, ctx: Context) -> Path:
        return self.directory


def test_launch_writes_file_and_journals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "fake-compose"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$(dirname "$0")/argv"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("ISOBENCH_COMPOSE", str(fake))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    adapter = ComposeAdapter()
    engine = FakeEngine(tmp_path / "client")
    adapter.engine = engine  # type: ignore[assignment]
    journal = Journal("RUN", directory=tmp_path / "journal")
    ctx = Context("RUN", journal, image=ProbeImage(tmp_path, "abc"))

    launched = adapter.launch(ctx, Request(pids_limit=40), ["/bin/sh", "-c", "true"], {"K": "v"})
    launched.process.wait(10)

    project = project_name(launched.name)
    path = tmp_path / "client" / project / "compose.yaml"
    service = yaml.safe_load(path.read_text())["services"][SERVICE]
    assert service["pids_limit"] == 40
    assert service["environment"] == {"K": "v"}
    assert engine.imported == ["localhost/isobench-probe:abc"]
    argv = (fake.parent / "argv").read_text().split("\n")
    assert argv[:4] == ["--project-name", project, "--file", str(path)]
    assert argv[4:9] == ["run", "-T", "--no-deps", "--name", launched.name]
    kinds = [entry.kind for entry in launched.entries]
    assert kinds == ["network", "container", "project"]
    assert launched.entries[-1].remove[-5:] == [
        "down",
        "--volumes",
        "--remove-orphans",
        "--timeout",
        "1",
    ]
    records = [json.loads(line) for line in journal.path.read_text().splitlines()]
    assert [r["kind"] for r in records if r["op"] == "create"] == kinds


def test_not_applied_lines_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    from isobench.runtimes import compose

    inspected = [inspect_of({"Memory": 0})]

    class Result:
        stdout = json.dumps(inspected)

    monkeypatch.setattr(compose.commands, "run", lambda *a, **k: Result())
    adapter = ComposeAdapter()
    launched = Launched(name="c", process=None, argv=[])  # type: ignore[arg-type]

    dropped: dict[str, str] = {}
    request = Request(memory=64 * MIB)
    compose.record_not_applied(adapter.engine, request, launched, "c", "compose", dropped)
    compose.record_not_applied(adapter.engine, request, launched, "c", "compose", dropped)

    notes = [line for line in launched.commands if line.startswith("# not applied")]
    assert notes == ["# not applied by compose: memory: requested 67108864, HostConfig.Memory is 0"]
    assert dropped == {"memory": "memory: requested 67108864, HostConfig.Memory is 0"}


@pytest.mark.parametrize(
    ("compose", "client"),
    [
        (["/usr/bin/docker-compose"], ["/usr/bin/docker-compose", "--host", "unix:///x.sock"]),
        (
            ["/usr/bin/docker", "compose"],
            ["/usr/bin/docker", "--host", "unix:///x.sock", "compose"],
        ),
    ],
)
def test_client_names_the_engine(
    compose: list[str], client: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///x.sock")
    adapter = ComposeAdapter()
    adapter._compose = compose

    assert adapter._client() == client


def test_none_network_journaled_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from isobench.runtimes import swarm

    journal = Journal("RUN", directory=tmp_path / "journal")
    ctx = Context("RUN", journal, image=ProbeImage(tmp_path, "abc"))
    created: list[list[str]] = []
    journaled_before: list[list[str]] = []

    def run(argv: list[str], **_: object) -> None:
        lines = journal.path.read_text().splitlines()
        journaled_before.append([json.loads(line).get("name", "") for line in lines])
        created.append(argv)

    monkeypatch.setattr(swarm.commands, "run", run)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    adapter = SwarmAdapter()

    first = adapter.none_network(ctx)
    second = adapter.none_network(ctx)

    assert first == second == "isobench-RUN-swarm-none"
    assert len(created) == 1
    assert first in journaled_before[0]
    assert created[0][2:7] == ["create", "--driver", "overlay", "--internal", "--attachable"]
    assert created[0][-3:] == ["--label", "isobench.run=RUN", first]
    records = [json.loads(line) for line in journal.path.read_text().splitlines()]
    removals = [record["remove"] for record in records if record.get("name") == first]
    assert removals == [[adapter.engine.binary, "network", "rm", first]]


def test_network_none_not_reported_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    from isobench.runtimes import compose

    class Result:
        stdout = json.dumps([inspect_of({"NetworkMode": "isobench-R-swarm-none"})])

    monkeypatch.setattr(compose.commands, "run", lambda *a, **k: Result())
    adapter = SwarmAdapter()
    launched = Launched(name="s", process=None, argv=[])  # type: ignore[arg-type]
    launched.state["container"] = "c"
    adapter._requests["s"] = Request()

    adapter._compare(launched)

    assert not [line for line in launched.commands if line.startswith("# not applied")]
    assert f"# network 'none': {NETWORK_NONE}" in launched.commands


# -- the relay, against a fake docker client ------------------------------------------

FAKE_DOCKER = """#!/bin/sh
here=$(dirname "$0")
case "$1" in
  ps) echo c0ffee ;;
  logs) echo line-one; echo line-two; echo line-three >&2 ;;
  wait) while [ ! -e "$here/attached" ] && [ ! -e "$here/ended" ]; do sleep 0.05; done; echo 7 ;;
  attach) cat > "$here/stdin"; touch "$here/attached" ;;
esac
"""


def run_relay(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "docker"
    fake.write_text(FAKE_DOCKER)
    fake.chmod(0o755)
    relay = [sys.executable, "-m", "isobench.runtimes.swarm", "relay"]
    return subprocess.run(
        [*relay, "--service", "s", "--docker", str(fake)],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_relay_keeps_exit_status(tmp_path: Path) -> None:
    relayed = run_relay(tmp_path, "")

    assert relayed.returncode == 7, relayed.stderr
    assert relayed.stdout == "line-one\nline-two\n"
    assert relayed.stderr == "line-three\n"
    assert (tmp_path / "stdin").read_text() == "\n"


def test_relay_rejects_input_text(tmp_path: Path) -> None:
    relayed = run_relay(tmp_path, "some input\n")

    assert relayed.returncode == 125
    assert f"swarm: {STDIN_REJECTED}" in relayed.stderr
    assert SwarmAdapter().runtime_failure(relayed.returncode, relayed.stderr) == STDIN_REJECTED
    assert not (tmp_path / "stdin").exists()


def test_relay_exit_with_stdin_open(tmp_path: Path) -> None:
    """The command ends while the relay's stdin is still open, as when a check stops it."""
    fake = tmp_path / "docker"
    fake.write_text(FAKE_DOCKER)
    fake.chmod(0o755)
    (tmp_path / "ended").touch()
    relay = [sys.executable, "-m", "isobench.runtimes.swarm", "relay"]
    process = subprocess.Popen(
        [*relay, "--service", "s", "--docker", str(fake)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    try:
        status = process.wait(60)
        stderr = process.stderr.read() if process.stderr else b""
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.kill()

    assert status == 7, stderr.decode(errors="replace")
