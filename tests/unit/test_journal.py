"""Tests of isobench.journal with harmless removal commands and journals in tmp_path."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from isobench.journal import Journal, clean_stale, container_prefix, orphaned_clients, stale_entries

GONE = "No such container"


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def dead_pid() -> int:
    """Return a PID that no process in this PID namespace has."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    for pid in range(pid_max - 1, 300, -1):
        if not Path(f"/proc/{pid}").exists():
            return pid
    raise RuntimeError("every PID is in use")


def create_record(name: str, remove: list[str], absent: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "op": "create",
        "key": f"file::{name}",
        "kind": "file",
        "name": name,
        "runtime": "",
        "remove": remove,
        "absent": list(absent),
    }


def write_journal(path: Path, pid: int | None, *records: dict[str, Any], tail: str = "") -> Path:
    """Write a journal as a run with owner ``pid`` would have left it."""
    lines = []
    if pid is not None:
        lines.append(json.dumps({"op": "open", "pid": pid, "run_dir": "", "time": 0.0}))
    lines += [json.dumps(record) for record in records]
    path.write_text("\n".join(lines) + "\n" + tail, encoding="utf-8")
    return path


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal("run-1", directory=tmp_path / "journal")


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "marker"
    path.write_text("x", encoding="utf-8")
    return path


# -- a live journal ----------------------------------------------------------


def test_journal_open_record(journal: Journal) -> None:
    (record,) = read_records(journal.path)

    assert journal.path.name == "run-1.jsonl"
    assert record["op"] == "open"
    assert record["pid"] == os.getpid()


def test_record_create_line(journal: Journal, marker: Path) -> None:
    journal.record("file", str(marker), ["rm", "-f", str(marker)], runtime="runc", absent=(GONE,))

    record = read_records(journal.path)[-1]

    assert record["op"] == "create"
    assert record["key"] == f"file:runc:{marker}"
    assert record["remove"] == ["rm", "-f", str(marker)]
    assert record["absent"] == [GONE]


def test_record_live_in_order(journal: Journal) -> None:
    first = journal.record("file", "a", ["true"])
    second = journal.record("file", "b", ["true"])

    assert journal.live() == [first, second]


def test_released_drops_entry(journal: Journal) -> None:
    entry = journal.record("file", "a", ["true"])

    journal.released(entry)

    assert journal.live() == []
    assert read_records(journal.path)[-1] == {"op": "release", "key": entry.key}


def test_remove_runs_command(journal: Journal, marker: Path) -> None:
    entry = journal.record("file", str(marker), ["rm", "-f", str(marker)])

    assert journal.remove(entry) is True
    assert not marker.exists()
    assert journal.live() == []


def test_remove_failure_kept(journal: Journal) -> None:
    entry = journal.record("file", "a", ["false"])

    assert journal.remove(entry) is False
    assert journal.live() == [entry]


def test_remove_all_newest_first(journal: Journal, tmp_path: Path) -> None:
    log = tmp_path / "order.log"
    for name in ("first", "second", "third"):
        journal.record("file", name, ["sh", "-c", f"echo {name} >> '{log}'"])

    remaining = journal.remove_all()

    assert remaining == []
    assert log.read_text(encoding="utf-8").split() == ["third", "second", "first"]


def test_remove_all_returns_failures(journal: Journal, marker: Path) -> None:
    journal.record("file", str(marker), ["rm", "-f", str(marker)])
    failing = journal.record("file", "stuck", ["false"])

    remaining = journal.remove_all()

    assert remaining == [failing]
    assert journal.live() == [failing]
    assert not marker.exists()


def test_remove_missing_binary(journal: Journal) -> None:
    entry = journal.record("file", "a", ["/nonexistent/isobench-remover"])

    assert journal.remove(entry) is False


def test_absent_marker_counts_removed(journal: Journal) -> None:
    journal.record(
        "container", "c1", ["sh", "-c", f"echo 'Error: {GONE}: c1' >&2; exit 1"], absent=(GONE,)
    )

    assert journal.remove_all() == []


def test_absent_marker_mismatch(journal: Journal) -> None:
    entry = journal.record(
        "container", "c1", ["sh", "-c", "echo 'permission denied' >&2; exit 1"], absent=(GONE,)
    )

    assert journal.remove_all() == [entry]


def test_absent_marker_stdout_ignored(journal: Journal) -> None:
    entry = journal.record(
        "container", "c1", ["sh", "-c", f"echo '{GONE}'; exit 1"], absent=(GONE,)
    )

    assert journal.remove_all() == [entry]


def test_absent_status_counts_removed(journal: Journal) -> None:
    # pkill exits with status 1 when no process matched.
    journal.record("process", "p1", ["sh", "-c", "exit 1"], absent_status=(1,))

    assert journal.remove_all() == []


def test_absent_status_other_code(journal: Journal) -> None:
    entry = journal.record("process", "p1", ["sh", "-c", "exit 2"], absent_status=(1,))

    assert journal.remove_all() == [entry]


def test_close_deletes_file(journal: Journal, marker: Path) -> None:
    journal.record("file", str(marker), ["rm", "-f", str(marker)])
    journal.remove_all()

    journal.close()

    assert not journal.path.exists()


def test_close_keeps_file_on_failure(journal: Journal) -> None:
    journal.record("file", "stuck", ["false"])
    journal.remove_all()

    journal.close()

    assert journal.path.exists()
    assert read_records(journal.path)[-1]["op"] == "create"


# -- journals left by other runs ---------------------------------------------


def test_stale_skips_live_owner(journal: Journal) -> None:
    journal.record("file", "a", ["true"])

    assert stale_entries(journal.path.parent) == {}


def test_stale_dead_owner(tmp_path: Path) -> None:
    path = write_journal(
        tmp_path / "old.jsonl", dead_pid(), create_record("a", ["true"], absent=(GONE,))
    )

    (entry,) = stale_entries(tmp_path)[path]

    assert entry.key == "file::a"
    assert entry.remove == ["true"]
    assert entry.absent == (GONE,)


def test_stale_skips_released(tmp_path: Path) -> None:
    path = write_journal(
        tmp_path / "old.jsonl",
        dead_pid(),
        create_record("a", ["true"]),
        create_record("b", ["true"]),
        {"op": "release", "key": "file::a"},
    )

    assert [entry.name for entry in stale_entries(tmp_path)[path]] == ["b"]


def test_stale_truncated_line(tmp_path: Path) -> None:
    path = write_journal(
        tmp_path / "old.jsonl",
        dead_pid(),
        create_record("a", ["true"]),
        tail='{"op": "create", "key": "file::b", "ki',
    )

    assert [entry.name for entry in stale_entries(tmp_path)[path]] == ["a"]


def test_stale_without_open_record(tmp_path: Path) -> None:
    path = write_journal(tmp_path / "old.jsonl", None, create_record("a", ["true"]))

    assert path in stale_entries(tmp_path)


def test_stale_missing_directory(tmp_path: Path) -> None:
    assert stale_entries(tmp_path / "absent") == {}


def test_stale_ignores_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a journal", encoding="utf-8")

    assert stale_entries(tmp_path) == {}


def test_clean_stale_removes(tmp_path: Path, marker: Path) -> None:
    path = write_journal(
        tmp_path / "old.jsonl", dead_pid(), create_record(str(marker), ["rm", "-f", str(marker)])
    )

    lines = clean_stale(tmp_path)

    assert lines == [f"removed file {marker}"]
    assert not marker.exists()
    assert not path.exists()


def test_clean_stale_newest_first(tmp_path: Path) -> None:
    log = tmp_path / "order.log"
    write_journal(
        tmp_path / "old.jsonl",
        dead_pid(),
        *[
            create_record(name, ["sh", "-c", f"echo {name} >> '{log}'"])
            for name in ("first", "second")
        ],
    )

    clean_stale(tmp_path)

    assert log.read_text(encoding="utf-8").split() == ["second", "first"]


def test_clean_stale_dry_run(tmp_path: Path, marker: Path) -> None:
    path = write_journal(
        tmp_path / "old.jsonl", dead_pid(), create_record(str(marker), ["rm", "-f", str(marker)])
    )

    lines = clean_stale(tmp_path, dry_run=True)

    assert lines == [f"would remove file {marker}: rm -f {marker}"]
    assert marker.exists()
    assert path.exists()


def test_clean_stale_failure_kept(tmp_path: Path) -> None:
    path = write_journal(tmp_path / "old.jsonl", dead_pid(), create_record("stuck", ["false"]))

    (line,) = clean_stale(tmp_path)

    assert line.startswith("could not remove file stuck: ")
    assert path.exists()


def test_clean_stale_absent_marker(tmp_path: Path) -> None:
    remove = ["sh", "-c", f"echo '{GONE}' >&2; exit 1"]
    path = write_journal(
        tmp_path / "old.jsonl", dead_pid(), create_record("c1", remove, absent=(GONE,))
    )

    assert clean_stale(tmp_path) == ["removed file c1"]
    assert not path.exists()


def test_clean_stale_skips_live(journal: Journal, marker: Path) -> None:
    journal.record("file", str(marker), ["rm", "-f", str(marker)])

    assert clean_stale(journal.path.parent) == []
    assert marker.exists()
    assert journal.path.exists()


def test_orphaned_clients_named_by_container(tmp_path: Path) -> None:
    """Only runtime clients with an argument that starts with the run's container prefix,
    not the shims and monitors that keep the containers."""
    commands_by_pid = {
        "101": [b"runc", b"run", b"--bundle", b"/b", b"isobench-RUN1-runc-1"],
        "102": [b"docker", b"run", b"--name", b"isobench-RUN1-docker-2", b"probe"],
        "103": [b"runc", b"run", b"isobench-RUN2-runc-1"],
        "104": [b"containerd", b"--config", b"/run/isobench/containerd/RUN1/config.toml"],
        "105": [b"/usr/bin/containerd-shim-runc-v2", b"-id", b"isobench-RUN1-containerd-3"],
        "106": [b"/usr/bin/conmon", b"-n", b"isobench-RUN1-podman-4"],
        "107": [b"/usr/bin/ctr", b"run", b"--rm", b"probe", b"isobench-RUN1-containerd-5"],
        "self": [b"python"],
    }
    for pid, argv in commands_by_pid.items():
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "cmdline").write_bytes(b"\0".join(argv) + b"\0")
    assert sorted(orphaned_clients("RUN1", tmp_path)) == [101, 102, 107]
    assert container_prefix("RUN1") == "isobench-RUN1-"
