"""The run directory: ``run.json`` (environment and status) and ``results.jsonl``.

``results.jsonl`` contains one JSON object a line, one line per outcome, and is
flushed after every line, so an interrupted run keeps what it finished.
The field names below are a stable contract that reports and other tools read.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import isobench
from isobench import hosts
from isobench.errors import UsageError
from isobench.probe import host as host_probe
from isobench.probe.host import cgroup_mode

RUN_FILE = "run.json"
RESULTS_FILE = "results.jsonl"
OUTCOMES = ("pass", "fail", "error", "skip", "xfail", "xpass")
#: The runtime row without isolation: every isolation check is expected to fail there.
CONTROL_RUNTIME = "host"


@dataclass
class Record:
    """One outcome of one check on one runtime."""

    suite: str
    check: str
    runtime: str
    outcome: str
    message: str = ""
    title: str = ""
    duration_s: float = 0.0
    file: str = ""
    line: int = 0
    commands: list[str] = field(default_factory=list)
    expected: str = ""
    observed: str = ""
    request: str = ""
    fact: str = ""
    notes: list[str] = field(default_factory=list)
    control: str = ""
    #: The runtime is a declared negative control of the check, so it should fail here.
    expected_to_fail: bool = False
    #: The label of the host that the record comes from. Set by ``isobench merge``,
    #: empty in a run that was not merged.
    host: str = ""
    #: In a merged run, the runtime as the source run named it. ``runtime`` is then
    #: "RUNTIME @ HOST" when the merged run has more than one host.
    source_runtime: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def cgroup_version(mode: str | None = None) -> str:
    """Return '2' on a unified host and '1' otherwise, as engines count a hybrid host."""
    return "2" if (mode or cgroup_mode()) == "v2" else "1"


def environment() -> dict[str, Any]:
    """Describe the host that a run checks, as read on that host."""
    return {
        **hosts.current().call(host_probe, "system"),
        "isobench_version": isobench.__version__,
    }


class RunDirectory:
    """Writes one run's directory."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        if path.exists() and not path.is_dir():
            raise UsageError(f"{path} is not a directory; pass a directory to --out")
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.meta: dict[str, Any] = {}
        self.counts = dict.fromkeys(OUTCOMES, 0)

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS_FILE

    def start(
        self,
        argv: list[str],
        suites: list[dict[str, Any]],
        host: dict[str, str] | None = None,
        host_environment: dict[str, Any] | None = None,
    ) -> None:
        """Write run.json for a new run. ``host`` names the machine it checks (spec and
        label). ``host_environment``, for a host that could not be reached, replaces
        the environment read there."""
        if self.results_path.exists() and self.results_path.stat().st_size > 0:
            raise UsageError(
                f"{self.path} already contains a run ({RESULTS_FILE}); "
                "pass a new --out directory or remove that one"
            )

        self.meta = {
            "run_id": self.run_id,
            "status": "running",
            "started": datetime.now(UTC).isoformat(),
            "ended": None,
            "argv": argv,
            "host": host or {"spec": hosts.LOCAL_SPEC, "label": hosts.LOCAL.label},
            "environment": host_environment if host_environment is not None else environment(),
            "suites": suites,
            "runtimes": {},
            "counts": self.counts,
        }
        self._write_meta()
        self.results_path.touch()

    def set_runtime(self, name: str, info: dict[str, Any]) -> None:
        with self._lock:
            self.meta.setdefault("runtimes", {})[name] = info
        self._write_meta()

    def append(self, record: Record) -> None:
        line = record.to_json()
        with self._lock, self.results_path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            self.counts[record.outcome] = self.counts.get(record.outcome, 0) + 1

    def finish(self, status: str) -> None:
        self.meta["status"] = status
        self.meta["ended"] = datetime.now(UTC).isoformat()
        self.meta["counts"] = self.counts
        self._write_meta()

    def _write_meta(self) -> None:
        with self._lock:
            temporary = self.path / (RUN_FILE + ".tmp")
            # Key order is kept: the runtimes appear in the order of the run.
            temporary.write_text(json.dumps(self.meta, indent=2) + "\n")
            temporary.replace(self.path / RUN_FILE)


def read_run(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read a run directory's metadata and records; a cut-off last line is ignored."""
    meta = json.loads((path / RUN_FILE).read_text()) if (path / RUN_FILE).exists() else {}
    records = []
    results = path / RESULTS_FILE
    if results.exists():
        for line in results.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return meta, records


def read_run_directory(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read a run directory for a report; raise UsageError when it is not one."""
    run_file = run_dir / RUN_FILE
    if not run_file.is_file():
        raise UsageError(
            f"{run_dir}: not a run directory because {RUN_FILE} is missing. "
            "Pass the directory that 'isobench run --out' wrote."
        )
    try:
        meta, records = read_run(run_dir)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{run_file}: failed to read the run metadata: {exc}") from exc
    if not isinstance(meta, dict):
        raise UsageError(f"{run_file}: invalid run metadata: expected a JSON object")
    return meta, [record for record in records if isinstance(record, dict)]


def elapsed(start: float) -> float:
    return round(time.monotonic() - start, 3)
