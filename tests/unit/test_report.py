"""Tests of isobench.report on run directories written into tmp_path."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from isobench.bench import stats
from isobench.bench.stats import SAMPLES_FILE
from isobench.errors import UsageError
from isobench.model import CAPABILITIES
from isobench.report import frames, render
from isobench.report.render import POSTURE_FILE, SETS_LEGEND, VALUES_LEGEND
from isobench.results import OUTCOMES, RESULTS_FILE, RUN_FILE, Record

SUITE_FILE = "suites/core.yaml"
LONG_MESSAGE = "\n".join(f"message line {number}" for number in range(100))
SCRIPT = "<script>alert('x')</script>"

RUNTIMES: dict[str, dict[str, Any]] = {
    "runc": {"available": True, "version": "1.1.12", "reason": "", "hint": "", "details": {}},
    "docker": {"available": True, "version": "24.0.7", "reason": "", "hint": "", "details": {}},
    "runsc": {
        "available": False,
        "version": "",
        "reason": "runsc not found in PATH",
        "hint": "Install the runsc package",
        "details": {},
    },
}


def make_records() -> list[Record]:
    """Return records with all six outcomes on runc and docker, plus one runtime not in run.json."""
    return [
        Record("core", "pid-ns", "runc", "pass", file=SUITE_FILE, line=3, title="Private PIDs"),
        Record(
            "core",
            "pid-ns",
            "docker",
            "fail",
            message=LONG_MESSAGE,
            file=SUITE_FILE,
            line=3,
            expected="pid 1 is the container's init",
            observed=SCRIPT,
            commands=["docker run --rm probe", "echo '```'"],
        ),
        Record(
            "core", "memory", "runc", "skip", message="needs cgroup v2", file=SUITE_FILE, line=9
        ),
        Record(
            "core", "memory", "docker", "skip", message="needs cgroup v2", file=SUITE_FILE, line=9
        ),
        Record(
            "core",
            "net-ns",
            "runc",
            "error",
            message="command timed out after 30 s",
            file=SUITE_FILE,
            line=15,
            commands=["runc run net"],
        ),
        Record("core", "net-ns", "docker", "xfail", message="declared deviation", line=15),
        Record("extra", "userns", "docker", "xpass", file="suites/extra.yaml", line=4),
        Record("extra", "userns", "host", "pass", file="suites/extra.yaml", line=4),
    ]


def write_run(
    path: Path,
    records: list[Record] | None = None,
    status: str = "complete",
    results: bool = True,
) -> Path:
    """Write run.json and, unless ``results`` is false, results.jsonl into ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "run_id": "20250101T000000Z-abc123",
        "status": status,
        "started": "2025-01-01T00:00:00+00:00",
        "ended": "2025-01-01T00:02:00+00:00",
        "argv": ["isobench", "run", "--all"],
        "environment": {
            "hostname": "ci-host",
            "kernel": "6.1.0-28-amd64",
            "os": "Linux-6.1.0-28-amd64-x86_64-with-glibc2.36",
            "cgroup_mode": "v2",
            "cpu_count": 2,
            "load_avg": [0.5, 0.4, 0.3],
            "python": "3.11.7",
            "isobench_version": "0.1.0",
        },
        "suites": [{"name": "core", "path": SUITE_FILE, "checks": 3}],
        "runtimes": RUNTIMES,
        "counts": {},
    }
    (path / RUN_FILE).write_text(json.dumps(meta), encoding="utf-8")
    if results:
        lines = [record.to_json() + "\n" for record in records or []]
        (path / RESULTS_FILE).write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run", make_records())


def summary_of(run_dir: Path) -> str:
    return render(run_dir)["summary.md"].read_text(encoding="utf-8")


def html_of(run_dir: Path) -> str:
    return render(run_dir)["index.html"].read_text(encoding="utf-8")


def test_render_writes_five_files(run_dir: Path) -> None:
    paths = render(run_dir)

    assert sorted(paths) == ["index.html", "junit.xml", "matrix.csv", "results.csv", "summary.md"]
    for name, path in paths.items():
        assert path == run_dir / name
        assert path.is_file(), name


def test_render_out_dir(run_dir: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "report" / "nested"

    paths = render(run_dir, out_dir)

    assert all(path.parent == out_dir for path in paths.values())
    assert (out_dir / "summary.md").is_file()
    assert not (run_dir / "summary.md").exists()


def test_summary_header(run_dir: Path) -> None:
    summary = summary_of(run_dir)

    assert "- Status: complete" in summary
    assert "- Kernel: 6.1.0-28-amd64" in summary
    assert "- cgroup mode: v2" in summary
    assert "- CPUs: 2" in summary
    assert "partial" not in summary


def test_summary_matrix_rows(run_dir: Path) -> None:
    summary = summary_of(run_dir)

    assert "| check | `runc` | `docker` | `runsc` | `host` |" in summary
    assert "| `core/pid-ns` | pass | FAIL | - | - |" in summary
    assert "| `core/memory` | skip | skip | - | - |" in summary
    assert "| `core/net-ns` | ERROR | xfail | - | - |" in summary
    assert "| `extra/userns` | - | XPASS | - | pass |" in summary


def test_summary_totals(run_dir: Path) -> None:
    summary = summary_of(run_dir)

    assert "| runtime | pass | fail | error | skip | xfail | xpass | total |" in summary
    assert "| `runc` | 1 | 0 | 1 | 1 | 0 | 0 | 3 |" in summary
    assert "| `docker` | 0 | 1 | 0 | 1 | 1 | 1 | 4 |" in summary


def test_summary_failure_locations(run_dir: Path) -> None:
    summary = summary_of(run_dir)
    failures = summary.split("## Failures and errors (3)")[1].split("\n## ")[0]

    assert "### 1. FAIL: `core/pid-ns` on `docker`" in failures
    assert "- Location: `suites/core.yaml:3`" in failures
    assert "### 2. ERROR: `core/net-ns` on `runc`" in failures
    assert "- Location: `suites/core.yaml:15`" in failures
    assert "### 3. XPASS: `extra/userns` on `docker`" in failures
    assert "- Location: `suites/extra.yaml:4`" in failures
    assert "xfail" not in failures


def test_summary_failure_details(run_dir: Path) -> None:
    summary = summary_of(run_dir)

    assert "```text\npid 1 is the container's init\n```" in summary
    assert f"```text\n{SCRIPT}\n```" in summary
    assert "```sh\nrunc run net\n```" in summary


def test_summary_fence_outlasts_backticks(run_dir: Path) -> None:
    summary = summary_of(run_dir)

    assert "````sh\ndocker run --rm probe\necho '```'\n````" in summary


def test_summary_long_message_clipped(run_dir: Path) -> None:
    summary = summary_of(run_dir)

    assert "message line 9\n" in summary
    assert "message line 10\n" not in summary
    assert "[90 more lines]" in summary


def test_summary_caps_failures(tmp_path: Path) -> None:
    records = [Record("core", f"check-{number}", "runc", "fail") for number in range(60)]
    summary = summary_of(write_run(tmp_path / "run", records))

    assert "### 50. FAIL" in summary
    assert "### 51. FAIL" not in summary
    assert "10 more in results.jsonl" in summary


def test_summary_size_bounded(tmp_path: Path) -> None:
    large = [
        Record(
            "large",
            f"check-{number}",
            "docker",
            "fail",
            message="m" * 20_000,
            expected="e" * 20_000,
            observed="o" * 20_000,
            commands=["c" * 2_000] * 20,
        )
        for number in range(60)
    ]
    small = [Record("small", f"check-{number}", "runc", "pass") for number in range(600)]
    summary = summary_of(write_run(tmp_path / "run", large + small))

    assert len(summary.encode("utf-8")) < 512 * 1024
    assert "160 more checks in matrix.csv" in summary
    assert "more in results.jsonl" in summary


def test_summary_skips_grouped(run_dir: Path) -> None:
    summary = summary_of(run_dir)

    assert "## Skipped (2)" in summary
    assert "| `runc` | needs cgroup v2 | 1 |" in summary
    assert "| `docker` | needs cgroup v2 | 1 |" in summary


def test_summary_unavailable_runtime(run_dir: Path) -> None:
    summary = summary_of(run_dir)

    assert "- `runsc`: runsc not found in PATH. Hint: Install the runsc package" in summary


def test_summary_escapes_markdown(tmp_path: Path) -> None:
    records = [Record("core", "a", "runc", "skip", message="<b>bold</b> | pipe")]
    summary = summary_of(write_run(tmp_path / "run", records))

    assert "| `runc` | \\<b\\>bold\\</b\\> \\| pipe | 1 |" in summary


@pytest.mark.parametrize("status", ["interrupted", "running", "failed"])
def test_summary_partial_run(tmp_path: Path, status: str) -> None:
    summary = summary_of(write_run(tmp_path / "run", make_records(), status=status))
    first_lines = summary.splitlines()[:3]

    assert any("results are partial" in line for line in first_lines)


def test_summary_interrupted_note(tmp_path: Path) -> None:
    summary = summary_of(write_run(tmp_path / "run", make_records(), status="interrupted"))

    assert "> **Warning: This run was interrupted; results are partial.**" in summary


def test_html_interrupted_banner(tmp_path: Path) -> None:
    html = html_of(write_run(tmp_path / "run", make_records(), status="interrupted"))

    assert '<div class="banner warning" role="alert">This run was interrupted' in html


def test_html_escapes_script(run_dir: Path) -> None:
    html = html_of(run_dir)

    assert "<script" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


def test_html_self_contained(run_dir: Path) -> None:
    html = html_of(run_dir)

    assert "http://" not in html
    assert "https://" not in html
    assert "<link" not in html


def test_html_plot_is_png(run_dir: Path) -> None:
    html = html_of(run_dir)
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)

    assert match is not None
    assert base64.b64decode(match.group(1)).startswith(b"\x89PNG\r\n\x1a\n")


def test_html_matrix_classes(run_dir: Path) -> None:
    html = html_of(run_dir)
    row = re.search(r"<tr><th title=\"Private PIDs\"><code>core/pid-ns</code></th>.*</tr>", html)

    assert row is not None
    assert '<td class="cell outcome-pass">pass</td>' in row.group(0)
    assert '<td class="cell outcome-fail">FAIL</td>' in row.group(0)
    assert '<td class="cell outcome-none">-</td>' in row.group(0)


def test_html_failure_details(run_dir: Path) -> None:
    html = html_of(run_dir)

    assert html.count("<details") == 3
    assert "<pre>docker run --rm probe\necho &#39;```&#39;</pre>" in html
    assert "<code>suites/core.yaml:15</code>" in html


def test_html_unavailable_runtime(run_dir: Path) -> None:
    html = html_of(run_dir)

    assert "<code>runsc</code>: runsc not found in PATH<br>Hint: Install the runsc package" in html


def test_empty_results_render(tmp_path: Path) -> None:
    paths = render(write_run(tmp_path / "run", []))
    summary = paths["summary.md"].read_text(encoding="utf-8")
    html = paths["index.html"].read_text(encoding="utf-8")

    assert all(path.is_file() for path in paths.values())
    assert "No results: results.jsonl contains no records." in summary
    assert "## Matrix" not in summary
    assert "No results: results.jsonl contains no records." in html
    assert "data:image/png" not in html


def test_missing_results_render(tmp_path: Path) -> None:
    summary = summary_of(write_run(tmp_path / "run", results=False))

    assert "No results: results.jsonl is missing from this run directory." in summary


def test_empty_results_csv(tmp_path: Path) -> None:
    paths = render(write_run(tmp_path / "run", []))
    results = pd.read_csv(paths["results.csv"])

    assert list(results.columns) == list(frames.COLUMNS)
    assert results.empty


def test_missing_run_json_raises(tmp_path: Path) -> None:
    (tmp_path / RESULTS_FILE).write_text("", encoding="utf-8")

    with pytest.raises(UsageError, match="not a run directory") as caught:
        render(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a run directory"):
        render(tmp_path / "absent")


def test_invalid_run_json_raises(tmp_path: Path) -> None:
    (tmp_path / RUN_FILE).write_text("{not json", encoding="utf-8")

    with pytest.raises(UsageError, match="failed to read the run metadata"):
        render(tmp_path)


def test_results_csv_columns(run_dir: Path) -> None:
    results = pd.read_csv(render(run_dir)["results.csv"], keep_default_na=False)

    assert list(results.columns) == list(frames.COLUMNS)
    assert len(results) == len(make_records())
    assert results["check_key"].tolist()[:2] == ["core/pid-ns", "core/pid-ns"]


def test_results_csv_commands_json(run_dir: Path) -> None:
    results = pd.read_csv(render(run_dir)["results.csv"], keep_default_na=False)

    assert json.loads(results["commands"][1]) == ["docker run --rm probe", "echo '```'"]
    assert json.loads(results["notes"][1]) == []


def test_matrix_csv_round_trip(run_dir: Path) -> None:
    matrix = pd.read_csv(render(run_dir)["matrix.csv"], index_col="check", keep_default_na=False)

    assert list(matrix.columns) == ["runc", "docker", "runsc", "host"]
    assert matrix.loc["core/pid-ns", "docker"] == "fail"
    assert matrix.loc["core/pid-ns", "host"] == ""


def test_outcomes_columns() -> None:
    df = frames.outcomes(make_records())

    assert list(df.columns) == list(frames.COLUMNS)
    assert len(df) == len(make_records())
    assert df["check_key"].tolist()[0] == "core/pid-ns"


def test_outcomes_fills_defaults() -> None:
    df = frames.outcomes([{"suite": "s", "check": "c", "runtime": "runc", "line": "7"}])

    assert df.loc[0, "outcome"] == ""
    assert df.loc[0, "line"] == 7
    assert df.loc[0, "commands"] == []
    assert df.loc[0, "duration_s"] == 0.0


def test_outcomes_empty() -> None:
    df = frames.outcomes([])

    assert list(df.columns) == list(frames.COLUMNS)
    assert df.empty


def test_matrix_shape_and_order() -> None:
    df = frames.outcomes(make_records())

    table = frames.matrix(df, list(RUNTIMES))

    assert table.shape == (4, 4)
    assert list(table.index) == ["core/pid-ns", "core/memory", "core/net-ns", "extra/userns"]
    assert list(table.columns) == ["runc", "docker", "runsc", "host"]


def test_matrix_cells() -> None:
    table = frames.matrix(frames.outcomes(make_records()), list(RUNTIMES))

    assert table.loc["core/net-ns", "runc"] == "error"
    assert table.loc["core/net-ns", "docker"] == "xfail"
    assert table.loc["extra/userns", "runc"] == frames.NO_RECORD


def test_matrix_without_runtime_order() -> None:
    table = frames.matrix(frames.outcomes(make_records()))

    assert list(table.columns) == ["runc", "docker", "host"]


def test_matrix_control_row() -> None:
    records = [
        Record("core", "a", "runc", "pass"),
        Record("core", "a", "runc", "fail", control="no pid namespace"),
    ]

    table = frames.matrix(frames.outcomes(records))

    assert list(table.index) == ["core/a", "core/a [control: no pid namespace]"]
    assert table.loc["core/a [control: no pid namespace]", "runc"] == "fail"


def test_matrix_last_record_wins() -> None:
    records = [Record("core", "a", "runc", "error"), Record("core", "a", "runc", "pass")]

    table = frames.matrix(frames.outcomes(records))

    assert table.shape == (1, 1)
    assert table.loc["core/a", "runc"] == "pass"


def test_matrix_empty() -> None:
    table = frames.matrix(frames.outcomes([]), ["runc"])

    assert table.shape == (0, 1)


def test_totals_counts() -> None:
    table = frames.totals(frames.outcomes(make_records()), list(RUNTIMES))

    assert list(table.columns) == list(OUTCOMES)
    assert list(table.index) == ["runc", "docker", "runsc", "host"]
    assert list(table.loc["runc"]) == [1, 0, 1, 1, 0, 0]
    assert list(table.loc["docker"]) == [0, 1, 0, 1, 1, 1]
    assert list(table.loc["runsc"]) == [0, 0, 0, 0, 0, 0]
    assert list(table.loc["host"]) == [1, 0, 0, 0, 0, 0]


def test_totals_all_outcomes_present() -> None:
    table = frames.totals(frames.outcomes([Record("core", "a", "runc", "pass")]))

    assert list(table.columns) == list(OUTCOMES)
    assert table.loc["runc", "xpass"] == 0


def test_totals_unknown_outcome() -> None:
    table = frames.totals(frames.outcomes([Record("core", "a", "runc", "crashed")]))

    assert list(table.columns) == [*OUTCOMES, "crashed"]
    assert table.loc["runc", "crashed"] == 1


def test_cut_off_last_line_ignored(run_dir: Path) -> None:
    with (run_dir / RESULTS_FILE).open("a", encoding="utf-8") as handle:
        handle.write('{"suite": "core", "check": "cut"')

    summary = summary_of(run_dir)

    assert "core/cut" not in summary
    assert "| `core/pid-ns` | pass | FAIL | - | - |" in summary


def control_records() -> list[Record]:
    return [
        Record(
            suite="core",
            check="a",
            runtime="host",
            outcome="fail",
            file=SUITE_FILE,
            line=5,
            message="host broke a",
            expected_to_fail=True,
        ),
        Record(
            suite="core",
            check="b",
            runtime="host",
            outcome="pass",
            file=SUITE_FILE,
            line=9,
            expected_to_fail=True,
        ),
        Record(
            suite="core",
            check="a",
            runtime="runc",
            outcome="fail",
            file=SUITE_FILE,
            line=5,
            message="runc broke a",
        ),
    ]


def test_control_failures_not_listed(tmp_path: Path) -> None:
    summary = summary_of(write_run(tmp_path / "run", control_records()))

    assert "runc broke a" in summary
    assert "host broke a" not in summary
    assert "1 of 2 checks that name it as their control failed there" in summary


def test_control_pass_flagged(tmp_path: Path) -> None:
    summary = summary_of(write_run(tmp_path / "run", control_records()))

    assert "cannot detect a missing guarantee: `core/b` on `host`" in summary


# posture.jsonl

DOCKER_CAPS = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
NONROOT_REQUEST = "cap_add=('NET_BIND_SERVICE',), cap_drop=('ALL',), no_new_privs=True, user=1000"


def posture_record(
    runtime: str,
    request: str = "defaults",
    eff: list[str] | None = None,
    bnd: list[str] | None = None,
    **values: Any,
) -> dict[str, Any]:
    """Return a posture record with ``eff`` as its effective and permitted sets and ``bnd`` as
    its bounding set, both ``DOCKER_CAPS`` by default, and empty inheritable and ambient sets."""
    effective = list(DOCKER_CAPS if eff is None else eff)
    record: dict[str, Any] = {
        "runtime": runtime,
        "request": request,
        "caps": {
            "eff": effective,
            "prm": effective,
            "bnd": list(DOCKER_CAPS if bnd is None else bnd),
            "inh": [],
            "amb": [],
        },
    }
    record.update(values)
    return record


def posture_records() -> list[dict[str, Any]]:
    return [
        posture_record(
            "docker",
            seccomp="2",
            no_new_privs="0",
            rlimits={"nofile": "1024 1048576", "nproc": "unlimited unlimited"},
            devices=["/dev/full", "/dev/null"],
            masked_visible=[],
            readonly_writable=[],
        ),
        posture_record(
            "runc",
            eff=["CAP_CHOWN"],
            bnd=[*DOCKER_CAPS, "CAP_SYS_ADMIN"],
            seccomp="0",
            no_new_privs="1",
            rlimits={"nofile": "1024 4096"},
            devices=["/dev/null"],
            masked_visible=["/proc/kcore"],
            readonly_writable=["/proc/sys"],
        ),
        posture_record("docker", NONROOT_REQUEST, eff=[], bnd=["CAP_NET_BIND_SERVICE"]),
        posture_record("runc", NONROOT_REQUEST, eff=[], bnd=[]),
    ]


def write_posture(
    run_dir: Path, records: list[dict[str, Any]], lines: tuple[str, ...] = ()
) -> Path:
    """Write posture.jsonl with one line per record, followed by ``lines`` as they are."""
    text = "".join(json.dumps(record) + "\n" for record in records)
    text += "".join(line + "\n" for line in lines)
    (run_dir / POSTURE_FILE).write_text(text, encoding="utf-8")
    return run_dir


def posture_section(summary: str) -> str:
    return summary.split("## Security posture", 1)[1]


def test_posture_frames_tidy() -> None:
    posture = frames.posture(posture_records())

    assert list(posture.capabilities.columns) == ["runtime", "request", "set", "capability"]
    assert list(posture.values.columns) == ["runtime", "request", "name", "value"]
    assert len(posture.containers) == 4
    docker_eff = posture.capabilities[
        (posture.capabilities["runtime"] == "docker")
        & (posture.capabilities["request"] == "defaults")
        & (posture.capabilities["set"] == "eff")
    ]
    assert docker_eff["capability"].tolist() == DOCKER_CAPS


def test_capability_table_letters() -> None:
    posture = frames.posture(posture_records())

    table = frames.capability_table(posture, "defaults", list(RUNTIMES))

    assert list(table.columns) == ["runc", "docker"]
    assert list(table.index) == list(CAPABILITIES)
    assert table.loc["CAP_CHOWN", "docker"] == "EPB"
    assert table.loc["CAP_CHOWN", "runc"] == "EPB"
    assert table.loc["CAP_KILL", "runc"] == "B"
    assert table.loc["CAP_SYS_ADMIN", "runc"] == "B"
    assert table.loc["CAP_SYS_ADMIN", "docker"] == ""
    assert table.loc["CAP_SYS_MODULE", "docker"] == ""


def test_capability_table_all_five_sets() -> None:
    caps = {name: ["CAP_NET_RAW"] for name in frames.CAPABILITY_SETS}
    posture = frames.posture([{"runtime": "runc", "request": "defaults", "caps": caps}])

    table = frames.capability_table(posture, "defaults")

    assert table.loc["CAP_NET_RAW", "runc"] == "EPBIA"


def test_capability_table_sets_not_recorded() -> None:
    posture = frames.posture([{"runtime": "runc", "request": "defaults"}])

    table = frames.capability_table(posture, "defaults")

    assert table.loc["CAP_CHOWN", "runc"] == frames.SETS_NOT_RECORDED


def test_capability_table_unknown_capability_last() -> None:
    record = posture_record("runc", eff=["CAP_CHOWN", "CAP_41"])

    table = frames.capability_table(frames.posture([record]), "defaults")

    assert list(table.index)[-1] == "CAP_41"
    assert len(table.index) == len(CAPABILITIES) + 1
    assert table.loc["CAP_41", "runc"] == "EP"


def test_posture_last_record_wins() -> None:
    records = [
        posture_record("runc", eff=["CAP_SYS_ADMIN"], seccomp="0"),
        posture_record("runc", eff=["CAP_CHOWN"], seccomp="2"),
    ]

    posture = frames.posture(records)
    table = frames.capability_table(posture, "defaults")
    values = frames.value_table(posture, "defaults")

    assert len(posture.containers) == 1
    assert table.loc["CAP_SYS_ADMIN", "runc"] == ""
    assert table.loc["CAP_CHOWN", "runc"] == "EPB"
    assert values.loc["seccomp", "runc"] == "2"


def test_value_table_rows_and_missing() -> None:
    posture = frames.posture(posture_records())

    table = frames.value_table(posture, "defaults", list(RUNTIMES))

    assert list(table.index) == [
        "seccomp",
        "no_new_privs",
        "rlimit.nofile",
        "rlimit.nproc",
        "devices",
        "masked_visible",
        "readonly_writable",
    ]
    assert list(table.columns) == ["runc", "docker"]
    assert table.loc["rlimit.nproc", "runc"] is None
    assert table.loc["devices", "docker"] == "/dev/full, /dev/null"
    assert table.loc["masked_visible", "docker"] == ""
    assert table.loc["masked_visible", "runc"] == "/proc/kcore"


def test_value_table_wrong_types_absent() -> None:
    record = {"runtime": "runc", "request": "defaults", "seccomp": ["2"], "devices": "/dev/null"}

    table = frames.value_table(frames.posture([record]), "defaults")

    assert table.empty
    assert list(table.columns) == ["runc"]


def test_posture_requests_defaults_first() -> None:
    records = [posture_record("runc", NONROOT_REQUEST), posture_record("runc")]

    assert frames.posture_requests(frames.posture(records)) == ["defaults", NONROOT_REQUEST]


def test_summary_posture_letters(run_dir: Path) -> None:
    section = posture_section(summary_of(write_posture(run_dir, posture_records())))

    assert "### Capabilities (defaults)" in section
    assert "| capability | `runc` | `docker` |" in section
    assert "| `CAP_CHOWN` | EPB | EPB |" in section
    assert "| `CAP_KILL` | B | EPB |" in section
    assert "| `CAP_SYS_ADMIN` | B | - |" in section
    assert SETS_LEGEND in section


def test_summary_posture_collapses_absent_capabilities(run_dir: Path) -> None:
    section = posture_section(summary_of(write_posture(run_dir, posture_records())))
    defaults = section.split("### Capabilities (defaults)")[1].split("\n### ")[0]
    listed = re.findall(r"^\| `(CAP_\w+)` \|", defaults, flags=re.MULTILINE)
    collapsed_line = re.search(
        r"^None of the runtimes has these in any set: (.*)\.$", defaults, re.M
    )

    assert listed == ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"]
    assert collapsed_line is not None
    collapsed = re.findall(r"`(CAP_\w+)`", collapsed_line.group(1))
    assert "CAP_SYS_MODULE" in collapsed
    assert "CAP_CHOWN" not in collapsed
    assert sorted(listed + collapsed) == sorted(CAPABILITIES)
    assert collapsed == [name for name in CAPABILITIES if name not in listed]


def test_summary_posture_request_table(run_dir: Path) -> None:
    section = posture_section(summary_of(write_posture(run_dir, posture_records())))
    heading = f"### Capabilities under `{NONROOT_REQUEST}`"
    table = section.split(heading)[1].split("\n### ")[0]

    assert heading in section
    assert "| capability | `runc` | `docker` |" in table
    assert "| `CAP_NET_BIND_SERVICE` | - | B |" in table
    assert "CAP_CHOWN" not in table
    assert "None of the runtimes" not in table


def test_summary_posture_request_without_capabilities(run_dir: Path) -> None:
    records = [posture_record("runc"), posture_record("runc", NONROOT_REQUEST, eff=[], bnd=[])]

    section = posture_section(summary_of(write_posture(run_dir, records)))

    assert "No runtime has a capability under this request." in section


def test_summary_posture_values(run_dir: Path) -> None:
    section = posture_section(summary_of(write_posture(run_dir, posture_records())))

    assert "### Other values (defaults)" in section
    assert "| value | `runc` | `docker` |" in section
    assert "| seccomp mode | 0 (disabled) | 2 (filter) |" in section
    assert "| no\\_new\\_privs | 1 | 0 |" in section
    assert "| rlimit nofile | 1024 4096 | 1024 1048576 |" in section
    assert "| rlimit nproc | - | unlimited unlimited |" in section
    assert "| devices | /dev/null | /dev/full, /dev/null |" in section
    assert "| masked paths still visible | /proc/kcore | none |" in section
    assert "| read-only paths writable | /proc/sys | none |" in section
    assert VALUES_LEGEND in section


def test_summary_posture_section_last(run_dir: Path) -> None:
    summary = summary_of(write_posture(run_dir, posture_records()))

    assert summary.index("## Skipped") < summary.index("## Security posture")


def test_summary_posture_caps_requests(run_dir: Path) -> None:
    records = [posture_record("runc", f"user={uid}") for uid in range(25)]

    section = posture_section(summary_of(write_posture(run_dir, records)))

    assert "### Capabilities under `user=19`" in section
    assert "user=20" not in section
    assert "5 more requests in posture.csv and index.html." in section
    assert "contains no record of the default request" in section
    assert SETS_LEGEND in section


def test_posture_missing_file(run_dir: Path) -> None:
    paths = render(run_dir)
    summary = paths["summary.md"].read_text(encoding="utf-8")
    html = paths["index.html"].read_text(encoding="utf-8")

    assert "posture.csv" not in paths
    assert not (run_dir / "posture.csv").exists()
    assert "Security posture" not in summary
    assert "Security posture" not in html


def test_posture_empty_file(run_dir: Path) -> None:
    paths = render(write_posture(run_dir, []))
    summary = paths["summary.md"].read_text(encoding="utf-8")
    posture = pd.read_csv(paths["posture.csv"])

    assert "> **posture.jsonl contains no records.**" in summary
    assert list(posture.columns) == ["runtime", "request", "set", "capability"]
    assert posture.empty


def test_posture_malformed_line(run_dir: Path) -> None:
    write_posture(run_dir, posture_records()[:1], lines=('{"runtime": "runc"', "[1, 2]", "{}"))
    path = run_dir / POSTURE_FILE

    paths = render(run_dir)
    summary = paths["summary.md"].read_text(encoding="utf-8")
    section = posture_section(summary)
    html = paths["index.html"].read_text(encoding="utf-8")

    assert "posture.jsonl:2: invalid JSON (Expecting ',' delimiter at column 19)" in section
    assert "posture.jsonl:3: expected a JSON object, found an array" in section
    assert "posture.jsonl:4: the runtime is missing" in section
    assert f"{path}:2: invalid JSON" in html
    assert "| `CAP_CHOWN` | EPB |" in section
    assert "| `core/pid-ns` | pass | FAIL | - | - |" in summary


def test_posture_malformed_line_logged(run_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_posture(run_dir, [], lines=("not json",))

    render(run_dir)

    assert "lines left out of the posture tables: 1" in caplog.text
    assert f"{run_dir / POSTURE_FILE}:1: invalid JSON" in caplog.text


def test_posture_unreadable_file(run_dir: Path) -> None:
    (run_dir / POSTURE_FILE).write_bytes(b"\xff\xfe not utf-8\n")

    section = posture_section(summary_of(run_dir))

    assert "failed to read the posture records" in section


def test_posture_csv_content(run_dir: Path) -> None:
    paths = render(write_posture(run_dir, posture_records()))
    posture = pd.read_csv(paths["posture.csv"], keep_default_na=False)
    rows = set(posture.itertuples(index=False, name=None))

    assert paths["posture.csv"] == run_dir / "posture.csv"
    assert list(posture.columns) == ["runtime", "request", "set", "capability"]
    assert len(posture) == 9 + 6 + 1
    assert ("docker", "defaults", "eff", "CAP_CHOWN") in rows
    assert ("runc", "defaults", "bnd", "CAP_SYS_ADMIN") in rows
    assert ("runc", "defaults", "eff", "CAP_KILL") not in rows
    assert ("docker", NONROOT_REQUEST, "bnd", "CAP_NET_BIND_SERVICE") in rows
    assert not any(
        runtime == "runc" and request == NONROOT_REQUEST for runtime, request, *_ in rows
    )


def test_html_posture_section(run_dir: Path) -> None:
    html = html_of(write_posture(run_dir, posture_records()))
    section = html.split("<h2>Security posture</h2>", 1)[1]

    assert "<h3>Capabilities (defaults)</h3>" in section
    row = re.search(r"<tr><th><code>CAP_KILL</code></th>.*</tr>", section)
    assert row is not None
    assert row.group(0).endswith('<td class="sets">B</td><td class="sets">EPB</td></tr>')
    assert '<td class="sets outcome-none">-</td>' in section
    assert "<code>CAP_SYS_MODULE</code>" in section
    assert "cap_add=(&#39;NET_BIND_SERVICE&#39;,)" in section
    assert "<tr><th>seccomp mode</th><td>0 (disabled)</td><td>2 (filter)</td></tr>" in section


# samples.jsonl


def bench_sample(
    value: float,
    runtime: str,
    benchmark: str,
    metric: str,
    unit: str,
    warmup: bool = False,
    **params: Any,
) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "runtime": runtime,
        "metric": metric,
        "unit": unit,
        "value": value,
        "round": 0,
        "warmup": warmup,
        "params": params,
    }


def startup_samples() -> list[dict[str, Any]]:
    """Return docker create in network none (0.1, 0.2 and 0.3 s), runc create in network
    default (one sample after one warm-up), and the native true floor (10, 20 and 30 ms)."""
    records = []
    for value in (0.1, 0.2, 0.3):
        records.append(bench_sample(value, "docker", "startup", "create", "s", network="none"))
        records.append(bench_sample(value / 10, "native", "startup", "true", "s", network="none"))
    records.append(
        bench_sample(9.0, "runc", "startup", "create", "s", warmup=True, network="default")
    )
    records.append(bench_sample(0.5, "runc", "startup", "create", "s", network="default"))
    return records


def other_samples() -> list[dict[str, Any]]:
    """Return one or two samples of each of the concurrency, io, cpu and memory benchmarks."""
    return [
        bench_sample(0.8, "docker", "concurrency", "latency", "s", concurrency=8),
        bench_sample(0.2, "docker", "concurrency", "latency", "s", concurrency=2),
        bench_sample(10.0, "docker", "concurrency", "throughput", "containers/s", concurrency=2),
        bench_sample(1000.0, "native", "io", "seqread", "MiB/s", target="rootfs"),
        bench_sample(800.0, "docker", "io", "seqread", "MiB/s", target="rootfs"),
        bench_sample(12962.0, "docker", "io", "randread", "IOPS", target="tmpfs"),
        bench_sample(2.0, "native", "cpu", "workload", "s"),
        bench_sample(2.5, "runsc", "cpu", "workload", "s"),
        bench_sample(51848.0, "runc", "memory", "pss_per_container", "KiB", containers=10),
        bench_sample(518480.0, "runc", "memory", "pss_total", "KiB", containers=10),
    ]


def write_samples(
    run_dir: Path, records: list[dict[str, Any]], lines: tuple[str, ...] = ()
) -> Path:
    """Write samples.jsonl with one line per record, followed by ``lines`` as they are."""
    text = "".join(json.dumps(record) + "\n" for record in records)
    text += "".join(line + "\n" for line in lines)
    (run_dir / SAMPLES_FILE).write_text(text, encoding="utf-8")
    return run_dir


def benchmarks_section(summary: str) -> str:
    return summary.split("## Benchmarks", 1)[1]


def part(section: str, title: str) -> str:
    return section.split(f"### {title}\n", 1)[1].split("\n### ", 1)[0]


def test_benchmarks_missing_samples(run_dir: Path) -> None:
    paths = render(run_dir)
    summary = paths["summary.md"].read_text(encoding="utf-8")
    html = paths["index.html"].read_text(encoding="utf-8")

    assert "benchmarks.csv" not in paths
    assert not (run_dir / "benchmarks.csv").exists()
    assert "Benchmarks" not in summary
    assert "Benchmarks" not in html


def test_benchmarks_section_last(run_dir: Path) -> None:
    write_posture(run_dir, posture_records())
    summary = summary_of(write_samples(run_dir, startup_samples()))

    assert summary.index("## Security posture") < summary.index("## Benchmarks")


def test_benchmarks_intro_counts(run_dir: Path) -> None:
    section = benchmarks_section(summary_of(write_samples(run_dir, startup_samples())))

    assert "Statistics of 7 samples. Warm-up samples left out of the statistics: 1." in section
    assert "percentile method, 9999 resamples, fixed seed" in section


def test_startup_table_rows(run_dir: Path) -> None:
    section = benchmarks_section(summary_of(write_samples(run_dir, startup_samples())))
    startup = part(section, "Startup")

    assert "| runtime | network | phase | unit | median | p95 | p99 | 95 % CI | n |" in startup
    assert "| `runc` | default | `create` | s | 0.5 | 0.5 | 0.5 | - | 1 |" in startup
    assert "| `docker` | none | `create` | s | 0.2 | 0.29 | 0.298 | 0.1 to 0.3 | 3 |" in startup


def test_startup_native_floor_last(run_dir: Path) -> None:
    section = benchmarks_section(summary_of(write_samples(run_dir, startup_samples())))
    startup = part(section, "Startup")
    runtimes = re.findall(r"^\| `([\w+]+)` \|", startup, flags=re.MULTILINE)

    assert runtimes == ["runc", "docker", "native"]
    assert "| `native` | none | `true` | s | 0.02 | 0.029 | 0.0298 | 0.01 to 0.03 | 3 |" in startup
    assert "The native rows are the floor without a container" in startup


def test_startup_network_modes_stated(run_dir: Path) -> None:
    section = benchmarks_section(summary_of(write_samples(run_dir, startup_samples())))

    assert "Network modes: default, none. The network column gives the mode of each row." in (
        part(section, "Startup")
    )


def test_startup_single_network_mode(run_dir: Path) -> None:
    records = [r for r in startup_samples() if r["params"]["network"] == "none"]

    section = benchmarks_section(summary_of(write_samples(run_dir, records)))

    assert "Network mode of the containers: none." in part(section, "Startup")


def test_startup_warmup_only_row(run_dir: Path) -> None:
    records = [bench_sample(0.4, "runc", "startup", "exit", "s", warmup=True, network="none")]

    section = benchmarks_section(summary_of(write_samples(run_dir, records)))

    assert "| `runc` | none | `exit` | s | - | - | - | - | 0 |" in section


def test_concurrency_table_rows(run_dir: Path) -> None:
    section = benchmarks_section(summary_of(write_samples(run_dir, other_samples())))
    concurrency = part(section, "Concurrency")

    assert (
        "| runtime | concurrency | latency median (s) | latency p95 (s) | latency 95 % CI | n "
        "| throughput median (containers/s) | n |"
    ) in concurrency
    assert "| `docker` | 2 | 0.2 | 0.2 | - | 1 | 10 | 1 |" in concurrency
    assert "| `docker` | 8 | 0.8 | 0.8 | - | 1 | - | - |" in concurrency
    assert concurrency.index("| `docker` | 2 |") < concurrency.index("| `docker` | 8 |")


def test_io_table_ratio(run_dir: Path) -> None:
    section = benchmarks_section(summary_of(write_samples(run_dir, other_samples())))
    io_part = part(section, "I/O")

    assert "| target | job | runtime | unit | median | native median | ratio | n |" in io_part
    assert "| rootfs | `seqread` | `docker` | MiB/s | 800 | 1000 | 0.80 | 1 |" in io_part
    assert "| tmpfs | `randread` | `docker` | IOPS | 12962 | - | - | 1 |" in io_part
    assert "a ratio below 1 is worse than native" in io_part
    assert "`native`" not in io_part


def test_cpu_table_ratio(run_dir: Path) -> None:
    section = benchmarks_section(summary_of(write_samples(run_dir, other_samples())))
    cpu = part(section, "CPU")

    assert "| `runsc` | `workload` | s | 2.5 | 2 | 1.25 | 1 |" in cpu
    assert "a ratio above 1 is worse than native" in cpu


def test_memory_table_rows(run_dir: Path) -> None:
    section = benchmarks_section(summary_of(write_samples(run_dir, other_samples())))
    memory = part(section, "Memory")

    assert "| runtime | containers | PSS per container median (KiB) | 95 % CI | n |" in memory
    assert "| `runc` | 10 | 51848 | - | 1 | 518480 |" in memory


def test_benchmarks_only_present_parts(run_dir: Path) -> None:
    records = [r for r in other_samples() if r["benchmark"] == "cpu"]

    section = benchmarks_section(summary_of(write_samples(run_dir, records)))
    headings = re.findall(r"^### (.+)$", section, flags=re.MULTILINE)

    assert headings == ["CPU"]


def test_benchmarks_all_parts_in_order(run_dir: Path) -> None:
    section = benchmarks_section(
        summary_of(write_samples(run_dir, other_samples() + startup_samples()))
    )
    headings = re.findall(r"^### (.+)$", section, flags=re.MULTILINE)

    assert headings == ["Startup", "Concurrency", "I/O", "CPU", "Memory"]


def test_benchmarks_other_benchmark_noted(run_dir: Path) -> None:
    records = [bench_sample(1.0, "runc", "dns", "lookup", "s")]

    section = benchmarks_section(summary_of(write_samples(run_dir, records)))

    assert "benchmarks without a table here (dns) are only in benchmarks.csv" in section
    assert "###" not in section


def test_benchmarks_empty_samples(run_dir: Path) -> None:
    paths = render(write_samples(run_dir, []))
    section = benchmarks_section(paths["summary.md"].read_text(encoding="utf-8"))
    csv = pd.read_csv(paths["benchmarks.csv"])

    assert "> **samples.jsonl contains no samples.**" in section
    assert "###" not in section
    assert csv.empty
    assert list(csv.columns)[:4] == ["benchmark", "runtime", "metric", "unit"]


def test_benchmarks_malformed_line(run_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_samples(run_dir, startup_samples(), lines=("not json", "{}"))
    path = run_dir / SAMPLES_FILE

    paths = render(run_dir)
    summary = paths["summary.md"].read_text(encoding="utf-8")
    section = benchmarks_section(summary)
    html = paths["index.html"].read_text(encoding="utf-8")

    assert "samples.jsonl:9: invalid JSON (Expecting value at column 1)" in section
    assert "The benchmark tables are left out." in section
    assert "###" not in section
    assert f"{path}:9: invalid JSON" in html
    assert f"{path}:9: invalid JSON" in caplog.text
    assert "| `core/pid-ns` | pass | FAIL | - | - |" in summary


def test_benchmarks_invalid_sample(run_dir: Path) -> None:
    record = {**startup_samples()[0], "value": "fast"}

    section = benchmarks_section(summary_of(write_samples(run_dir, [record])))

    assert "samples.jsonl:1: invalid sample: 'value' must be a finite number" in section


def test_benchmarks_summary_rows_capped(run_dir: Path) -> None:
    records = [
        bench_sample(0.1, "runc", "startup", f"phase-{number}", "s", network="none")
        for number in range(205)
    ]

    section = benchmarks_section(summary_of(write_samples(run_dir, records)))

    assert "`phase-199`" in section
    assert "`phase-200`" not in section
    assert "5 more rows in benchmarks.csv and index.html." in section


def test_benchmarks_csv_tidy(run_dir: Path) -> None:
    paths = render(write_samples(run_dir, startup_samples() + other_samples()))
    csv = pd.read_csv(paths["benchmarks.csv"])
    rows = csv.set_index(["benchmark", "runtime", "metric"])

    assert paths["benchmarks.csv"] == run_dir / "benchmarks.csv"
    assert len(csv) == 13
    assert list(csv.columns)[4:8] == [
        "params.network",
        "params.concurrency",
        "params.target",
        "params.containers",
    ]
    assert rows.loc[("startup", "docker", "create"), "median"] == pytest.approx(0.2)
    assert rows.loc[("startup", "runc", "create"), "warmup_count"] == 1
    assert rows.loc[("io", "docker", "seqread"), "ratio_to_native"] == pytest.approx(0.8)
    assert rows.loc[("io", "docker", "seqread"), "worse_when"] == "lower"
    assert pd.isna(rows.loc[("cpu", "runsc", "workload"), "params.network"])
    assert pd.isna(rows.loc[("cpu", "runsc", "workload"), "median_ci_low"])


def test_benchmarks_csv_out_dir(run_dir: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "report"

    paths = render(write_samples(run_dir, startup_samples()), out_dir)

    assert paths["benchmarks.csv"] == out_dir / "benchmarks.csv"
    assert not (run_dir / "benchmarks.csv").exists()


def test_html_benchmarks_section(run_dir: Path) -> None:
    html = html_of(write_samples(run_dir, startup_samples() + other_samples()))
    section = html.split("<h2>Benchmarks</h2>", 1)[1]

    assert '<h3 id="benchmarks-startup">Startup</h3>' in section
    assert '<h3 id="benchmarks-memory">Memory</h3>' in section
    assert (
        "<tr><td><code>docker</code></td><td>none</td><td><code>create</code></td><td>s</td>"
        '<td class="count">0.2</td>'
    ) in section
    assert '<td class="count">0.1 to 0.3</td>' in section


def test_html_startup_plot(run_dir: Path) -> None:
    html = html_of(write_samples(run_dir, startup_samples()))
    section = html.split("<h2>Benchmarks</h2>", 1)[1]
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', section)

    assert match is not None
    assert base64.b64decode(match.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    assert section.index("data:image/png") < section.index('<table class="benchmarks">')


def test_html_no_startup_plot_without_startup(run_dir: Path) -> None:
    html = html_of(write_samples(run_dir, other_samples()))
    section = html.split("<h2>Benchmarks</h2>", 1)[1]

    assert "data:image/png" not in section


def test_html_no_startup_plot_for_warmups_only(run_dir: Path) -> None:
    records = [bench_sample(0.4, "runc", "startup", "exit", "s", warmup=True, network="none")]

    html = html_of(write_samples(run_dir, records))

    assert "data:image/png" not in html.split("<h2>Benchmarks</h2>", 1)[1]


def test_html_benchmarks_escapes(run_dir: Path) -> None:
    records = [bench_sample(1.0, SCRIPT, "cpu", "workload", "s")]

    html = html_of(write_samples(run_dir, records))

    assert "<script" not in html
    assert "<code>&lt;script&gt;" in html


def benchmark_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    return frames.benchmark_summaries(
        summary.to_dict() for summary in stats.summarize_samples(records)
    )


def test_benchmark_summaries_columns() -> None:
    df = benchmark_frame(startup_samples() + other_samples())

    assert list(df.columns) == [
        "benchmark",
        "runtime",
        "metric",
        "unit",
        "params.network",
        "params.concurrency",
        "params.target",
        "params.containers",
        *frames.SUMMARY_VALUE_COLUMNS,
    ]
    assert df["params.concurrency"].tolist()[3:6] == [8, 2, 2]
    assert df["params.concurrency"][0] is None


def test_benchmark_summaries_empty() -> None:
    df = frames.benchmark_summaries([])

    assert df.empty
    assert list(df.columns) == [*frames.SUMMARY_KEY_COLUMNS, *frames.SUMMARY_VALUE_COLUMNS]


def test_startup_table_order() -> None:
    records = [
        bench_sample(0.1, "native", "startup", "unshare", "s", network="none"),
        bench_sample(0.1, "docker", "startup", "run_rm", "s", network="none"),
        bench_sample(0.1, "docker", "startup", "create", "s", network="none"),
        bench_sample(0.1, "native", "startup", "true", "s", network="none"),
        bench_sample(0.1, "runc", "startup", "create", "s", network="none"),
    ]

    table = frames.startup_table(benchmark_frame(records), ["runc", "docker"])

    assert list(zip(table["runtime"], table["phase"], strict=True)) == [
        ("runc", "create"),
        ("docker", "create"),
        ("docker", "run_rm"),
        ("native", "true"),
        ("native", "unshare"),
    ]


def test_concurrency_table_numeric_order() -> None:
    records = [
        bench_sample(0.1, "docker", "concurrency", "latency", "s", concurrency=8),
        bench_sample(0.1, "docker", "concurrency", "latency", "s", concurrency=10),
        bench_sample(0.1, "docker", "concurrency", "latency", "s", concurrency=2),
    ]

    table = frames.concurrency_table(benchmark_frame(records))

    assert table["concurrency"].tolist() == [2, 8, 10]
    assert table["throughput_median"].isna().all()


def test_io_table_order_and_ratio() -> None:
    records = [
        bench_sample(5.0, "runc", "io", "fsync", "IOPS", target="tmpfs"),
        bench_sample(10.0, "native", "io", "fsync", "IOPS", target="tmpfs"),
        bench_sample(50.0, "runc", "io", "seqwrite", "MiB/s", target="bind"),
        bench_sample(60.0, "runc", "io", "seqread", "MiB/s", target="bind"),
    ]

    table = frames.io_table(benchmark_frame(records))

    assert list(zip(table["target"], table["job"], strict=True)) == [
        ("bind", "seqread"),
        ("bind", "seqwrite"),
        ("tmpfs", "fsync"),
    ]
    assert table["ratio_to_native"].tolist()[2] == 0.5
    assert table["native_median"].tolist()[2] == 10.0


def test_memory_table_pairs_metrics() -> None:
    records = [
        bench_sample(1000.0, "runc", "memory", "pss_total", "KiB", containers=50),
        bench_sample(20.0, "runc", "memory", "pss_per_container", "KiB", containers=50),
        bench_sample(30.0, "runc", "memory", "pss_per_container", "KiB", containers=1),
    ]

    table = frames.memory_table(benchmark_frame(records))

    assert table["containers"].tolist() == [1, 50]
    assert table["pss_per_container_median"].tolist() == [30.0, 20.0]
    assert table["pss_total_median"].isna().tolist() == [True, False]
