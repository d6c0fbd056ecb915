"""Tests of the network benchmark without containers: parsing, commands, routes, summaries."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from isobench import runtimes
from isobench.bench import network, stats
from isobench.bench.samples import SAMPLES_FILE
from isobench.errors import HarnessError
from isobench.model import Publish, Request, RunResult
from isobench.report import frames
from isobench.report.render import render
from isobench.results import RESULTS_FILE, RUN_FILE
from isobench.runtimes.base import Adapter, Availability, Context, Execution, Launched

ESC = "\x1b"
# The report of sockperf 3.7 ping-pong --full-rtt on this host's loopback, colour escapes
# included.
SOCKPERF_REPORT = f"""sockperf: {ESC}[2;35m== version #3.7-no.git == {ESC}[0m
sockperf[CLIENT] send on:sockperf: using recvfrom() to block on socket(s)

[ 0] IP = 127.0.0.1       PORT = 23456 # TCP
sockperf: Warmup stage (sending a few dummy messages)...
sockperf: Starting test...
sockperf: Test end (interrupted by timer)
sockperf: Test ended
sockperf: [Total Run] RunTime=1.001 sec; Warm up time=400 msec; SentMessages=94032; \
ReceivedMessages=94031
sockperf: ========= Printing statistics for Server No: 0
sockperf: [Valid Duration] RunTime=0.549 sec; SentMessages=52555; ReceivedMessages=52555
sockperf: {ESC}[2;35m====> avg-rtt=10.403 (std-dev=80.887){ESC}[0m
sockperf: # dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0
sockperf: Summary: Round trip is 10.403 usec
sockperf: {ESC}[2;35mTotal 52555 observations{ESC}[0m; each percentile contains 525.55 observations
sockperf: ---> <MAX> observation = 4897.761
sockperf: ---> percentile 99.999 = 4536.990
sockperf: ---> percentile 99.990 = 4103.721
sockperf: ---> percentile 99.900 =  553.609
sockperf: ---> percentile 99.000 =   45.823
sockperf: ---> percentile 90.000 =   13.113
sockperf: ---> percentile 75.000 =    6.552
sockperf: ---> percentile 50.000 =    6.118
sockperf: ---> percentile 25.000 =    5.970
sockperf: ---> <MIN> observation =    5.652
"""
SOCKPERF_REFUSED = f"""sockperf: {ESC}[2;35m== version #3.7-no.git == {ESC}[0m
sockperf: ERROR: Can`t connect socket (errno=111 Connection refused)
"""
# iperf3 3.12 --json, trimmed to the fields that matter and one of the start fields.
IPERF3_JSON = json.dumps(
    {
        "start": {"version": "iperf 3.12"},
        "intervals": [],
        "end": {
            "sum_sent": {"seconds": 1.000331, "bits_per_second": 15681506381.38776},
            "sum_received": {"seconds": 1.003166, "bits_per_second": 15630918017.556416},
        },
    }
)
IPERF3_REFUSED = json.dumps(
    {
        "start": {"connected": [], "version": "iperf 3.12"},
        "intervals": [],
        "end": {},
        "error": "unable to connect to server: Connection refused",
    }
)


class FakeRow(Adapter):
    """A container row that runs nothing: only the route and the request checks need it."""

    name = "fakerow"
    family = "engine"

    def availability(self) -> Availability:
        return Availability(True)

    def launch(
        self, ctx: Context, request: Request, argv: Sequence[str], env: dict[str, str]
    ) -> Launched:
        raise AssertionError("the unit tests start no container")


PORTS = network.Ports(latency=40001, throughput=40002)


# -- parsing ------------------------------------------------------------------------------


def test_sockperf_percentiles_parsed() -> None:
    latency = network.parse_sockperf(SOCKPERF_REPORT)

    assert latency.p50_us == pytest.approx(6.118)
    assert latency.p99_us == pytest.approx(45.823)
    assert latency.observations == 52555


def test_sockperf_refused_is_error() -> None:
    with pytest.raises(HarnessError, match="Connection refused"):
        network.parse_sockperf(SOCKPERF_REFUSED)


def test_sockperf_one_way_rejected() -> None:
    one_way = SOCKPERF_REPORT.replace("Round trip is", "Latency is")

    with pytest.raises(HarnessError, match="--full-rtt"):
        network.parse_sockperf(one_way)


def test_sockperf_empty_is_error() -> None:
    with pytest.raises(HarnessError, match="no output"):
        network.parse_sockperf("")


def test_iperf3_rate_parsed() -> None:
    assert network.parse_iperf3(IPERF3_JSON) == pytest.approx(15.630918017556416)


def test_iperf3_error_reported() -> None:
    with pytest.raises(HarnessError, match="unable to connect to server"):
        network.parse_iperf3(IPERF3_REFUSED)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no JSON"),
        ("iperf3: error - unable to connect", "no JSON"),
        ("[]", "not an object"),
        (json.dumps({"end": {"sum_sent": {"bits_per_second": 1.0}}}), "did not finish"),
    ],
)
def test_iperf3_invalid_output(text: str, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        network.parse_iperf3(text)


# -- commands -----------------------------------------------------------------------------


def test_client_argv_runs_both_tools() -> None:
    argv = network.client_argv("172.17.0.2", PORTS, 1)
    script = argv[2]

    assert argv[:2] == ["/bin/sh", "-c"]
    assert (
        "taskset -c 1 sockperf ping-pong --tcp -i 172.17.0.2 -p 40001 -t 1 -m 64 --full-rtt >&2"
    ) in script
    assert "exec taskset -c 1 iperf3 --client 172.17.0.2 --port 40002 --time 1 --json" in script
    assert script.index("sockperf") < script.index("iperf3")


def test_server_argv_binds_address() -> None:
    script = network.server_argv("127.0.0.1", PORTS, "isobench-serving", 0)[2]

    assert "taskset -c 0 sockperf server --tcp -i 127.0.0.1 -p 40001" in script
    assert "taskset -c 0 iperf3 --server --bind 127.0.0.1 --port 40002" in script
    assert "echo isobench-serving; read -r _; kill $a $b" in script


def test_pinned_cpu_allowed() -> None:
    assert network.pinned_cpu() in os.sched_getaffinity(0)


# -- routes -------------------------------------------------------------------------------


def test_route_peer_two_containers() -> None:
    row = FakeRow()
    route = network.plan("peer", row, runtimes.get("host"), PORTS)

    assert route.server is row
    assert route.client is row
    assert route.server_request == Request(image="bench", network="default")
    assert route.client_request == route.server_request
    assert route.bind == network.ANY_ADDRESS
    assert route.target is None


def test_route_published_on_loopback() -> None:
    host = runtimes.get("host")
    route = network.plan("published", FakeRow(), host, PORTS)

    assert route.client is host
    assert route.target == "127.0.0.1"
    assert route.server_request.publish == (
        Publish(host_ip="127.0.0.1", host_port=40001, container_port=40001),
        Publish(host_ip="127.0.0.1", host_port=40002, container_port=40002),
    )


def test_route_host_network_client() -> None:
    row = FakeRow()
    host = runtimes.get("host")
    route = network.plan("host", row, host, PORTS)

    assert route.server is host
    assert route.bind == "127.0.0.1"
    assert route.client is row
    assert route.client_request.network == "host"
    assert route.target == "127.0.0.1"


def test_route_native_on_host() -> None:
    host = runtimes.get("host")
    route = network.native_route(host)

    assert route.path == network.NATIVE_PATH
    assert (route.server, route.client) == (host, host)
    assert (route.bind, route.target) == ("127.0.0.1", "127.0.0.1")


def test_route_unknown_path() -> None:
    with pytest.raises(ValueError, match="bridge"):
        network.plan("bridge", FakeRow(), runtimes.get("host"), PORTS)


def test_routes_unsupported_on_oci_rows() -> None:
    runc = runtimes.get("runc")
    host = runtimes.get("host")

    for path in ("peer", "published"):
        route = network.plan(path, runc, host, PORTS)
        assert runc.unsupported(route.server_request) is not None, path


# -- one round ----------------------------------------------------------------------------


def fake_execute(result: RunResult, calls: list[list[str]]) -> Any:
    def execute(adapter: Adapter, ctx: Context, request: Request, argv: Any, **_: Any) -> Any:
        calls.append(list(argv))
        return Execution(result)

    return execute


def test_measure_gives_three_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    result = RunResult(0, IPERF3_JSON, SOCKPERF_REPORT, 3.0)
    monkeypatch.setattr(network, "execute", fake_execute(result, calls))

    figures = network.measure(FakeRow(), None, Request(), "127.0.0.1", PORTS, 0)  # type: ignore[arg-type]

    assert figures == pytest.approx(
        {"latency_p50": 6.118, "latency_p99": 45.823, "throughput": 15.630918017556416}
    )
    assert set(figures) == set(network.METRICS)
    assert calls == [network.client_argv("127.0.0.1", PORTS, 0)]


def test_measure_exit_status_error(monkeypatch: pytest.MonkeyPatch) -> None:
    result = RunResult(127, "", "sh: sockperf: not found", 0.1)
    monkeypatch.setattr(network, "execute", fake_execute(result, []))

    with pytest.raises(HarnessError, match="exit status 127: sh: sockperf: not found"):
        network.measure(FakeRow(), None, Request(), "127.0.0.1", PORTS, 0)  # type: ignore[arg-type]


# -- summaries and report -----------------------------------------------------------------


def network_sample(value: float, runtime: str, metric: str, path: str) -> dict[str, Any]:
    return {
        "benchmark": "network",
        "runtime": runtime,
        "metric": metric,
        "unit": network.METRICS[metric],
        "value": value,
        "round": 0,
        "warmup": False,
        "params": {"path": path},
    }


def network_samples() -> list[dict[str, Any]]:
    """Return native loopback figures and docker figures on two paths."""
    return [
        network_sample(10.0, "native", "latency_p50", "loopback"),
        network_sample(40.0, "native", "latency_p99", "loopback"),
        network_sample(20.0, "native", "throughput", "loopback"),
        network_sample(25.0, "docker", "latency_p50", "peer"),
        network_sample(100.0, "docker", "latency_p99", "peer"),
        network_sample(10.0, "docker", "throughput", "peer"),
        network_sample(15.0, "docker", "latency_p50", "host"),
        network_sample(5.0, "docker", "throughput", "published"),
    ]


def summaries_by_key() -> dict[tuple[str, str, str], stats.BenchmarkSummary]:
    found = stats.summarize_samples(network_samples())
    return {(s.runtime, s.metric, str(s.params["path"])): s for s in found}


def test_native_params_match_path() -> None:
    assert stats.NATIVE_PARAMS["network"] == {"path": network.NATIVE_PATH}


def test_summary_ratio_to_loopback() -> None:
    found = summaries_by_key()

    peer_p50 = found[("docker", "latency_p50", "peer")]
    assert peer_p50.native_median == 10.0
    assert peer_p50.ratio_to_native == pytest.approx(2.5)
    assert peer_p50.worse_when == "higher"
    throughput = found[("docker", "throughput", "published")]
    assert throughput.ratio_to_native == pytest.approx(0.25)
    assert throughput.worse_when == "lower"


def test_summary_native_has_no_ratio() -> None:
    native = summaries_by_key()[("native", "latency_p99", "loopback")]

    assert native.native_median is None
    assert native.ratio_to_native is None


def test_network_table_order() -> None:
    summaries = stats.summarize_samples(network_samples())
    df = frames.benchmark_summaries(summary.to_dict() for summary in summaries)

    table = frames.network_table(df, ["docker"])

    assert list(table.columns) == list(frames.NETWORK_COLUMNS)
    keys = list(zip(table["path"], table["metric"], table["runtime"], strict=True))
    assert keys[:3] == [
        ("loopback", "latency_p50", "native"),
        ("loopback", "latency_p99", "native"),
        ("loopback", "throughput", "native"),
    ]
    assert keys[3:] == [
        ("peer", "latency_p50", "docker"),
        ("peer", "latency_p99", "docker"),
        ("peer", "throughput", "docker"),
        ("published", "throughput", "docker"),
        ("host", "latency_p50", "docker"),
    ]


def write_bench_run(path: Path) -> Path:
    path.mkdir(parents=True)
    meta = {
        "run_id": "20260101T000000Z-net123",
        "status": "complete",
        "argv": ["isobench", "run", "--bench", "-k", "network"],
        "environment": {"hostname": "ci-host", "cpu_count": 2},
        "runtimes": {"docker": {"available": True, "version": "20.10.24"}},
        "counts": {},
    }
    (path / RUN_FILE).write_text(json.dumps(meta), encoding="utf-8")
    (path / RESULTS_FILE).write_text("", encoding="utf-8")
    lines = "".join(json.dumps(record) + "\n" for record in network_samples())
    (path / SAMPLES_FILE).write_text(lines, encoding="utf-8")
    return path


def test_report_network_part(tmp_path: Path) -> None:
    run_dir = write_bench_run(tmp_path / "run")

    summary = render(run_dir)["summary.md"].read_text(encoding="utf-8")
    part = summary.split("### Network\n", 1)[1].split("\n### ", 1)[0]

    assert "| path | metric | runtime | unit | median | native median | ratio | n |" in part
    assert "| peer | `latency_p50` | `docker` | us | 25 | 10 | 2.50 | 1 |" in part
    assert "| published | `throughput` | `docker` | Gbit/s | 5 | 20 | 0.25 | 1 |" in part
    assert "| loopback | `latency_p99` | `native` | us | 40 | - | - | 1 |" in part
    assert "a ratio above 1 is worse than native" in part
    assert "a ratio below 1 is worse than native" in part


def test_report_network_csv_and_html(tmp_path: Path) -> None:
    run_dir = write_bench_run(tmp_path / "run")

    paths = render(run_dir)

    assert 'id="benchmarks-network"' in paths["index.html"].read_text(encoding="utf-8")
    csv = paths["benchmarks.csv"].read_text(encoding="utf-8")
    assert "network,docker,latency_p50,us,peer" in csv
    assert "only in" not in paths["summary.md"].read_text(encoding="utf-8")
