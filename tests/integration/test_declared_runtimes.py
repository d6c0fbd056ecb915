"""Rows declared outside isobench run the namespaces suite: OCI path, template, entry point."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from isobench.results import read_run
from tests.conftest import REPO, require_root, strict_runtimes
from tests.integration.test_cli import isobench

pytestmark = pytest.mark.integration

EXAMPLES = REPO / "fixtures" / "runtimes" / "examples.toml"
ADAPTER = REPO / "fixtures" / "adapters" / "unshare_adapter"
#: Checks that any row with private namespaces passes.
CORE = ("pid-ns-private", "uts-ns-private", "ipc-ns-private", "mnt-ns-private", "net-ns-private")


def _require_binary(name: str) -> None:
    if any((Path(d) / name).exists() for d in os.environ.get("PATH", "").split(":")):
        return
    message = f"{name} is not installed; run 'make setup'"
    if strict_runtimes():
        pytest.fail(message)
    pytest.skip(message)


def _outcomes(out: Path, runtime: str) -> dict[str, str]:
    """Return each check's outcome on ``runtime``, leaving out its request controls."""
    _, records = read_run(out)
    return {
        r["check"]: r["outcome"]
        for r in records
        if r["runtime"] == runtime and not r.get("control")
    }


def _entry_point_env(tmp_path: Path) -> dict[str, str]:
    """Register the example adapter as an installed distribution would: a dist-info directory
    with entry_points.txt on the path, found by importlib.metadata."""
    info = tmp_path / "site" / "isobench_unshare_adapter-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: isobench-unshare-adapter\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[isobench.runtimes]\nunshare = unshare_adapter:UnshareAdapter\n"
    )
    path = [str(tmp_path / "site"), str(ADAPTER), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in path if p)}


@pytest.mark.parametrize("runtime", ["runc-build", "bwrap-userns"])
def test_declared_row_runs_namespaces(tmp_path: Path, runtime: str) -> None:
    require_root()
    _require_binary("runc" if runtime == "runc-build" else "bwrap")
    out = tmp_path / "run"

    result = isobench(
        *("--runtimes-file", str(EXAMPLES), "run", "--runtime", runtime),
        *("--suite", "namespaces", "--out", str(out), "--no-gate"),
    )

    outcomes = _outcomes(out, runtime)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(outcomes) == 20
    assert "error" not in outcomes.values(), result.stdout
    for check in CORE:
        assert outcomes[check] == "pass", (check, outcomes[check])


def test_template_skip_names_file() -> None:
    require_root()
    _require_binary("bwrap")
    result = isobench(*("--runtimes-file", str(EXAMPLES), "runtimes", "--json"))
    rows = {row["runtime"]: row for row in json.loads(result.stdout)}
    assert rows["bwrap-userns"]["source"] == f"{EXAMPLES}:31"
    assert rows["bwrap-userns"]["family"] == "template"
    assert rows["runc-build"]["family"] == "oci"
    assert rows["runc-build"]["details"]["binary"] == "/usr/sbin/runc"


def test_template_skips_unexpressed_request(tmp_path: Path) -> None:
    require_root()
    _require_binary("bwrap")
    out = tmp_path / "run"

    isobench(
        *("--runtimes-file", str(EXAMPLES), "run", "--runtime", "bwrap-userns"),
        *("--suite", "namespaces", "-k", "user-ns", "--out", str(out), "--no-gate"),
    )

    _, records = read_run(out)
    skipped = [r for r in records if r["outcome"] == "skip"]
    assert skipped
    assert all("declares no way to express 'userns'" in r["message"] for r in skipped)


def test_runtime_that_cannot_run_here_is_told_apart() -> None:
    """crun by path, without the built-in row's mount namespace, refuses a hybrid host whose
    unified hierarchy lists a controller: 'isobench runtimes' shows crun's own message."""
    require_root()
    _require_binary("crun")
    from isobench.runtimes.oci import hybrid_unified_with_controllers

    result = isobench(*("--runtimes-file", str(EXAMPLES), "runtimes", "--json"))
    rows = {row["runtime"]: row for row in json.loads(result.stdout)}
    assert rows["crun"]["state"] == "available", rows["crun"]
    if hybrid_unified_with_controllers() is None:
        assert rows["crun-plain"]["state"] == "available", rows["crun-plain"]
        return
    assert rows["crun-plain"]["state"] == "cannot run here"
    assert rows["crun-plain"]["available"] is False
    assert "cgroups in hybrid mode not supported" in rows["crun-plain"]["reason"]
    assert rows["crun"]["details"]["how"].startswith("each crun command runs in a private")


def test_missing_runtime_is_not_installed(tmp_path: Path) -> None:
    require_root()
    path = tmp_path / "runtimes.toml"
    path.write_text('[runtime.gone]\nkind = "oci"\npath = "/nonexistent/gone-runtime"\n')
    result = isobench(*("--runtimes-file", str(path), "runtimes", "--json"))
    rows = {row["runtime"]: row for row in json.loads(result.stdout)}
    assert rows["gone"]["state"] == "not installed"
    assert "not found" in rows["gone"]["reason"]


def test_entry_point_row_runs_namespaces(tmp_path: Path) -> None:
    require_root()
    env = _entry_point_env(tmp_path)
    out = tmp_path / "run"

    listed = isobench("runtimes", "--json", env=env)
    result = isobench(
        *("run", "--runtime", "unshare", "--suite", "namespaces", "--out", str(out)),
        "--no-gate",
        env=env,
    )

    rows = {row["runtime"]: row for row in json.loads(listed.stdout)}
    outcomes = _outcomes(out, "unshare")
    assert rows["unshare"]["source"] == "entry point unshare_adapter:UnshareAdapter"
    assert rows["unshare"]["family"] == "code"
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(outcomes) == 20
    for check in CORE:
        assert outcomes[check] == "pass", (check, outcomes[check])


def test_create_start_row_runs_suites(tmp_path: Path) -> None:
    """An OCI runtime driven by create and start under isobench's shim, without exec:
    isobox, declared a second time with only those commands."""
    require_root()
    isobox = Path(sys.executable).parent / "isobox"
    runtimes_file = tmp_path / "runtimes.toml"
    runtimes_file.write_text(
        "[runtime.isobox-create]\n"
        'kind = "oci"\n'
        f'path = "{isobox}"\n'
        'lifecycle = "create-start"\n'
        "exec = false\n"
        'cannot = { "network=default" = "no network of its own" }\n'
    )
    out = tmp_path / "run"

    result = isobench(
        *("--runtimes-file", str(runtimes_file), "run", "--runtime", "isobox-create"),
        *("--suite", "namespaces", "--suite", "process", "--out", str(out), "--no-gate"),
    )

    exec_out = tmp_path / "exec"
    exec_result = isobench(
        *("--runtimes-file", str(runtimes_file), "run", "--runtime", "isobox-create"),
        *("--suite", "cgroups", "-k", "pids-exec", "--out", str(exec_out), "--no-gate"),
    )

    outcomes = _outcomes(out, "isobox-create")
    exec_outcomes = _outcomes(exec_out, "isobox-create")
    _, exec_records = read_run(exec_out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in outcomes.values(), result.stdout
    for check in (*CORE, "exit-code-3", "exit-code-255", "argv-bytes-preserved", "stdin-delivered"):
        assert outcomes[check] == "pass", (check, outcomes[check])
    assert exec_result.returncode == 0, exec_result.stdout + exec_result.stderr
    assert set(exec_outcomes.values()) == {"skip"}
    assert all("(exec)" in r["message"] for r in exec_records if not r.get("control"))
