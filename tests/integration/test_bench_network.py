"""The network benchmark on docker: samples of every path, native figures, nothing left."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from isobench.remnants import remnants
from isobench.results import read_run
from tests.conftest import require_runtime
from tests.integration.test_cli import isobench

pytestmark = pytest.mark.integration

METRICS = {"latency_p50", "latency_p99", "throughput"}
CONTAINER_PATHS = {"peer", "published", "host"}


@pytest.fixture(scope="module")
def network_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_runtime("docker")
    out = tmp_path_factory.mktemp("bench-network") / "run"
    result = isobench(
        *("run", "--bench", "-k", "network", "--runtime", "docker"),
        *("--rounds", "3", "--warmup", "1", "--out", str(out)),
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def samples(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def summaries(run_dir: Path) -> list[dict[str, Any]]:
    document = json.loads((run_dir / "benchmarks.json").read_text())
    return [s for s in document["summaries"] if s["benchmark"] == "network"]


def test_network_samples_every_path(network_run: Path) -> None:
    measured = [s for s in samples(network_run) if not s["warmup"]]
    found = {(s["runtime"], s["params"]["path"], s["metric"]) for s in measured}

    for path in CONTAINER_PATHS:
        for metric in METRICS:
            assert ("docker", path, metric) in found, (path, metric)
    assert all(s["value"] > 0 for s in measured)


def test_network_native_measured(network_run: Path) -> None:
    native = [s for s in samples(network_run) if s["runtime"] == "native"]

    assert {s["metric"] for s in native} == METRICS
    assert {s["params"]["path"] for s in native} == {"loopback"}
    assert sum(1 for s in native if s["warmup"]) == 3
    assert sum(1 for s in native if not s["warmup"]) == 9


def test_network_ratios_to_native(network_run: Path) -> None:
    docker = [s for s in summaries(network_run) if s["runtime"] == "docker"]

    assert len(docker) == len(CONTAINER_PATHS) * len(METRICS)
    for summary in docker:
        assert summary["native_median"] is not None and summary["native_median"] > 0
        assert summary["ratio_to_native"] is not None and summary["ratio_to_native"] > 0
        assert summary["n"] == 3


def test_network_in_report(network_run: Path) -> None:
    summary = (network_run / "summary.md").read_text()

    assert "### Network" in summary
    assert "| peer | `latency_p50` | `docker` | us |" in summary


def test_network_leaves_nothing(network_run: Path) -> None:
    meta, _ = read_run(network_run)
    found = remnants(meta["run_id"])

    assert meta["status"] == "complete"
    assert {kind: items for kind, items in found.items() if items} == {}
