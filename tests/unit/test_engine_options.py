"""Tests of how isobench.runtimes.engine turns a request into docker and podman options."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from isobench.model import Request
from isobench.runtimes.engine import DOCKER, PODMAN, EngineAdapter, _fitted_ulimits

ENGINES = {
    "docker": EngineAdapter(DOCKER),
    "podman": EngineAdapter(PODMAN, oci_runtime="runc"),
}


def value_of(options: list[str], flag: str) -> str | None:
    """Return the value after the only ``flag`` in ``options``, or None when it is absent."""
    positions = [index for index, option in enumerate(options) if option == flag]
    if not positions:
        return None
    assert len(positions) == 1, f"{flag} is given {len(positions)} times in {options}"
    return options[positions[0] + 1]


def values_of(options: list[str], flag: str) -> list[str]:
    return [options[index + 1] for index, option in enumerate(options) if option == flag]


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> EngineAdapter:
    return ENGINES[request.param]


# -- run options -------------------------------------------------------------


def test_default_options(engine: EngineAdapter) -> None:
    assert engine.run_options(Request()) == ["--network", "none"]


def test_hostname_option(engine: EngineAdapter) -> None:
    options = engine.run_options(Request(hostname="isobench-uts"))

    assert value_of(options, "--hostname") == "isobench-uts"


def test_env_options(engine: EngineAdapter) -> None:
    options = engine.run_options(Request(env=(("A", "1"), ("B", "two words"))))

    assert values_of(options, "--env") == ["A=1", "B=two words"]


def test_user_option(engine: EngineAdapter) -> None:
    assert value_of(engine.run_options(Request(user="1000:2000")), "--user") == "1000:2000"


@pytest.mark.parametrize("field", ["pid", "ipc", "uts"])
def test_host_namespace_option(engine: EngineAdapter, field: str) -> None:
    options = engine.run_options(Request.model_validate({field: "host"}))

    assert value_of(options, f"--{field}") == "host"


@pytest.mark.parametrize("field", ["pid", "ipc", "uts"])
def test_private_namespace_no_option(engine: EngineAdapter, field: str) -> None:
    assert value_of(engine.run_options(Request()), f"--{field}") is None


@pytest.mark.parametrize(
    ("network", "expected"), [("none", "none"), ("host", "host"), ("default", None)]
)
def test_network_option(engine: EngineAdapter, network: str, expected: str | None) -> None:
    options = engine.run_options(Request(network=network))

    assert value_of(options, "--network") == expected


@pytest.mark.parametrize("cgroupns", ["private", "host"])
def test_cgroupns_option(engine: EngineAdapter, cgroupns: str) -> None:
    options = engine.run_options(Request(cgroupns=cgroupns))

    assert value_of(options, "--cgroupns") == cgroupns


def test_cgroupns_unset(engine: EngineAdapter) -> None:
    assert value_of(engine.run_options(Request()), "--cgroupns") is None


def test_userns_private_maps() -> None:
    options = ENGINES["podman"].run_options(Request(userns="private"))

    assert value_of(options, "--uidmap") == "0:100000:65536"
    assert value_of(options, "--gidmap") == "0:100000:65536"


def test_userns_host_no_maps(engine: EngineAdapter) -> None:
    options = engine.run_options(Request())

    assert value_of(options, "--uidmap") is None
    assert value_of(options, "--gidmap") is None


def test_capability_options(engine: EngineAdapter) -> None:
    options = engine.run_options(Request(cap_drop=("ALL",), cap_add=("NET_ADMIN", "SYS_ADMIN")))

    assert values_of(options, "--cap-drop") == ["ALL"]
    assert values_of(options, "--cap-add") == ["NET_ADMIN", "SYS_ADMIN"]


# -- unsupported requests ----------------------------------------------------


def test_docker_userns_unsupported() -> None:
    reason = ENGINES["docker"].unsupported(Request(userns="private"))

    assert reason is not None
    assert "userns-remap" in reason


def test_podman_userns_supported() -> None:
    assert ENGINES["podman"].unsupported(Request(userns="private")) is None


def test_defaults_supported(engine: EngineAdapter) -> None:
    assert engine.unsupported(Request()) is None


@pytest.mark.parametrize("network", ["default", "host"])
def test_docker_runsc_network_unsupported(network: str) -> None:
    reason = EngineAdapter(DOCKER, oci_runtime="runsc").unsupported(Request(network=network))

    assert reason is not None
    assert "docker+runsc" in reason


def test_docker_runsc_no_network() -> None:
    assert EngineAdapter(DOCKER, oci_runtime="runsc").unsupported(Request()) is None


@pytest.mark.parametrize("network", ["default", "host"])
def test_engine_network_supported(engine: EngineAdapter, network: str) -> None:
    assert engine.unsupported(Request(network=network)) is None


def test_network_of_the_check(engine: EngineAdapter) -> None:
    options = engine.run_options(Request(network="default", network_name="isobench-n1"))

    assert value_of(options, "--network") == "isobench-n1"


def test_publish_options(engine: EngineAdapter) -> None:
    request = Request.model_validate(
        {
            "network": "default",
            "publish": [
                {"host_port": 18080, "container_port": 80},
                {
                    "host_ip": "127.0.0.2",
                    "host_port": 5353,
                    "container_port": 53,
                    "protocol": "udp",
                },
            ],
        }
    )

    assert values_of(engine.run_options(request), "--publish") == [
        "127.0.0.1:18080:80/tcp",
        "127.0.0.2:5353:53/udp",
    ]


def test_name_file_options(engine: EngineAdapter) -> None:
    request = Request.model_validate(
        {
            "add_hosts": [{"name": "db.test", "address": "10.0.0.2"}],
            "dns": ["127.0.0.53", "127.0.0.54"],
            "dns_search": ["example.test"],
        }
    )
    options = engine.run_options(request)

    assert values_of(options, "--add-host") == ["db.test:10.0.0.2"]
    assert values_of(options, "--dns") == ["127.0.0.53", "127.0.0.54"]
    assert values_of(options, "--dns-search") == ["example.test"]


@pytest.mark.parametrize(
    "fields",
    [
        {"publish": [{"host_port": 1, "container_port": 1}]},
        {"network_name": "isobench-n1"},
    ],
)
def test_attachments_need_default_network(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="network=default, not network=none"):
        Request.model_validate(fields)


@pytest.mark.parametrize(
    "fields",
    [
        {
            "network": "default",
            "publish": [{"host_ip": "10.0.0.1", "host_port": 1, "container_port": 1}],
        },
        {"dns": ["8.8.8.8.8"]},
        {"dns_search": ["-bad.test"]},
        {"add_hosts": [{"name": "db.test", "address": "10.0.0.256"}]},
    ],
)
def test_network_values_checked(fields: dict[str, object]) -> None:
    """Published ports bind loopback addresses only, and the names and addresses are valid."""
    with pytest.raises(ValueError):
        Request.model_validate(fields)


# -- names and runtime flags -------------------------------------------------


@pytest.mark.parametrize(
    ("adapter", "name"),
    [
        (EngineAdapter(DOCKER), "docker"),
        (EngineAdapter(PODMAN, oci_runtime="runc"), "podman"),
        (EngineAdapter(DOCKER, oci_runtime="runsc"), "docker+runsc"),
        (EngineAdapter(PODMAN, oci_runtime="runsc"), "podman+runsc"),
    ],
)
def test_adapter_name(adapter: EngineAdapter, name: str) -> None:
    assert adapter.name == name


def test_docker_runtime_flags() -> None:
    assert EngineAdapter(DOCKER)._runtime_flags(Request()) == []


def test_docker_runsc_runtime_flag() -> None:
    assert EngineAdapter(DOCKER, oci_runtime="runsc")._runtime_flags(Request()) == [
        "--runtime",
        "runsc",
    ]


def test_podman_runtime_flags() -> None:
    flags = EngineAdapter(PODMAN, oci_runtime="runc")._runtime_flags(Request())

    assert value_of(flags, "--runtime") == "runc"
    assert len(values_of(flags, "--ulimit")) == 2


def test_podman_runsc_network_flag() -> None:
    flags = EngineAdapter(PODMAN, oci_runtime="runsc")._runtime_flags(Request())

    assert value_of(flags, "--runtime-flag") == "network=none"


# -- ulimits -----------------------------------------------------------------


def ulimit_names(options: list[str]) -> list[str]:
    return [value.split("=", 1)[0] for value in values_of(options, "--ulimit")]


def test_fitted_ulimits_both() -> None:
    assert ulimit_names(_fitted_ulimits(set())) == ["nofile", "nproc"]


def test_fitted_ulimits_within_hard() -> None:
    _, nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    (nofile, nproc) = values_of(_fitted_ulimits(set()), "--ulimit")

    soft, hard = nofile.removeprefix("nofile=").split(":")
    assert int(soft) <= int(hard) == nofile_hard
    assert nproc.startswith("nproc=")


def fake_limits(monkeypatch: pytest.MonkeyPatch, nofile_hard: int, nproc_hard: int) -> None:
    hard = {resource.RLIMIT_NOFILE: nofile_hard, resource.RLIMIT_NPROC: nproc_hard}
    monkeypatch.setattr(resource, "getrlimit", lambda which: (0, hard[which]))


def pid_max() -> int:
    return int(Path("/proc/sys/kernel/pid_max").read_text())


def test_fitted_ulimits_high_hard(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_limits(monkeypatch, 1048576, 4194304)
    nproc = min(4194304, pid_max())

    assert values_of(_fitted_ulimits(set()), "--ulimit") == [
        "nofile=1024:1048576",
        f"nproc={nproc}:{nproc}",
    ]


def test_fitted_ulimits_low_hard(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_limits(monkeypatch, 512, 100)

    assert values_of(_fitted_ulimits(set()), "--ulimit") == ["nofile=512:512", "nproc=100:100"]


def test_fitted_ulimits_nproc_unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_limits(monkeypatch, 4096, resource.RLIM_INFINITY)

    assert values_of(_fitted_ulimits(set()), "--ulimit")[-1] == f"nproc={pid_max()}:{pid_max()}"


def test_oci_runtime_version_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine row with another OCI runtime records that runtime's version, from the
    path the engine registered for it."""
    runtime = tmp_path / "my-runsc"
    runtime.write_text("#!/bin/sh\necho 'my-runsc version 1.2.3'\necho 'spec: 1.0.2'\n")
    client = tmp_path / "docker"
    client.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        '  version) echo \'{"Client": {"Version": "9.0"}, "Server": {"Version": "9.1"}}\' ;;\n'
        f'  info) echo \'{{"runsc": {{"path": "{runtime}"}}}}\' ;;\n'
        "esac\n"
    )
    for script in (runtime, client):
        script.chmod(0o755)
    monkeypatch.setenv("ISOBENCH_DOCKER", str(client))

    info = EngineAdapter(DOCKER, oci_runtime="runsc").availability()

    assert info.available, info.reason
    assert info.details["oci_runtime_version"] == "my-runsc version 1.2.3"
    assert info.version == "9.1 with my-runsc version 1.2.3"
