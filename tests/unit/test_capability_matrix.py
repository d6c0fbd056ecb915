"""The request-field matrix, the runtime states, and the rows added beside the engines:
crun behind a mount namespace, bwrap from the built-in template file, podman+runsc."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from isobench import runtimes
from isobench.model import Request
from isobench.report import render
from isobench.results import RUN_FILE
from isobench.runtimes import capabilities
from isobench.runtimes.base import Availability, Context
from isobench.runtimes.bwrap import BwrapAdapter
from isobench.runtimes.oci import CRUN, RUNC, OciAdapter, hybrid_unified_with_controllers
from isobench.runtimes.sandbox import children
from isobench.runtimes.template import TemplateAdapter
from tests.unit.test_report import make_records, write_run

# -- samples and cells -------------------------------------------------------


def test_every_request_field_has_samples() -> None:
    assert set(capabilities.SAMPLES) == set(Request.model_fields)


def test_every_sample_leaves_the_default() -> None:
    for field, samples in capabilities.SAMPLES.items():
        for label, values in samples:
            request = Request(**values)
            assert getattr(request, field) != getattr(Request(), field), label


def test_cells() -> None:
    assert capabilities.cell({"a": "", "b": ""}) == "yes"
    assert capabilities.cell({"a": "why", "b": ""}) == "partly"
    assert capabilities.cell({"a": "why", "b": "why not"}) == "no"


def test_runc_cannot_join_a_network() -> None:
    matrix = capabilities.expressed(OciAdapter(RUNC))
    assert capabilities.cell(matrix["network"]) == "partly"
    assert "CNI" in matrix["network"]["network=default"]
    assert matrix["network"]["network=host"] == ""
    assert capabilities.cell(matrix["memory"]) == "yes"
    assert capabilities.cell(matrix["init"]) == "no"


def test_host_row_applies_nothing() -> None:
    matrix = capabilities.expressed(runtimes.get("host"))
    assert {capabilities.cell(answers) for answers in matrix.values()} == {"ignored"}
    assert "negative control" in matrix["pid"]["pid=host"]


def test_bwrap_declares_what_it_lacks() -> None:
    matrix = capabilities.expressed(runtimes.get("bwrap"))
    assert capabilities.cell(matrix["memory"]) == "no"
    assert "declares no way to express 'memory'" in matrix["memory"]["memory 64 MiB"]
    assert capabilities.cell(matrix["cap_drop"]) == "yes"
    assert capabilities.cell(matrix["cgroupns"]) == "yes"
    assert capabilities.cell(matrix["network"]) == "partly"


def test_podman_runsc_row_reasons() -> None:
    adapter = runtimes.get("podman+runsc")
    assert adapter.unsupported(Request()) is None
    assert "user namespace" in (adapter.unsupported(Request(userns="private")) or "")
    assert "--network=none" in (adapter.unsupported(Request(network="default")) or "")


# -- availability states -----------------------------------------------------


def test_availability_states() -> None:
    assert Availability(True).state == "available"
    assert Availability(False, installed=False).state == "not installed"
    assert Availability(False).state == "cannot run here"


def test_missing_oci_binary_is_not_installed(tmp_path: Path) -> None:
    info = OciAdapter(CRUN, binary=str(tmp_path / "crun")).availability()
    assert info.state == "not installed"
    assert "apt-get install crun" in info.hint


# -- crun on a hybrid host ---------------------------------------------------

V1_LINE = "30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"


def _unified_line(point: Path) -> str:
    return f"29 25 0:25 / {point} rw - cgroup2 cgroup2 rw\n"


def test_unified_hidden_only_with_controllers(tmp_path: Path) -> None:
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("hugetlb\n")
    hybrid = V1_LINE + _unified_line(unified)
    assert hybrid_unified_with_controllers(hybrid) == unified
    (unified / "cgroup.controllers").write_text("\n")
    assert hybrid_unified_with_controllers(hybrid) is None
    assert hybrid_unified_with_controllers(V1_LINE) is None
    assert hybrid_unified_with_controllers(_unified_line(unified)) is None


def test_crun_commands_run_without_the_unified_hierarchy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    adapter = OciAdapter(CRUN)
    monkeypatch.setattr(adapter, "unified_to_hide", lambda: Path("/sys/fs/cgroup/unified"))
    ctx = Context("r1", journal=None)  # type: ignore[arg-type]
    argv = adapter.global_argv(ctx)
    assert argv[:5] == ["unshare", "--mount", "--propagation", "private", "--"]
    # The path and the runtime's arguments reach sh as positional parameters, never as code.
    assert argv[5:8] == ["sh", "-c", 'umount "$0" && exec "$@"']
    assert argv[8] == "/sys/fs/cgroup/unified"
    assert argv[9:] == ["crun", "--root", "/run/isobench/crun"]


def test_runc_is_never_wrapped() -> None:
    assert OciAdapter(RUNC).unified_to_hide() is None


# -- bwrap -------------------------------------------------------------------


def test_bwrap_is_built_in_from_the_template_file() -> None:
    adapter = runtimes.get("bwrap")
    assert isinstance(adapter, BwrapAdapter)
    assert isinstance(adapter, TemplateAdapter)
    assert runtimes.sources()["bwrap"] == "built-in"
    assert "builtin.toml" in adapter.source


def test_bwrap_capabilities_get_their_prefix() -> None:
    adapter = runtimes.get("bwrap")
    assert isinstance(adapter, TemplateAdapter)
    request = Request(cap_drop=("ALL",), cap_add=("net_admin", "CAP_SYS_ADMIN"))
    options = list(adapter._options(request, {}, {}))
    assert options[options.index("--cap-add") + 1] == "CAP_NET_ADMIN"
    assert "CAP_SYS_ADMIN" in options
    assert options[options.index("--cap-drop") + 1] == "ALL"


def test_bwrap_read_only_comes_last() -> None:
    adapter = runtimes.get("bwrap")
    assert isinstance(adapter, TemplateAdapter)
    request = Request(read_only=True, tmpfs=({"target": "/scratch", "size": 1024},))
    options = list(adapter._options(request, {}, {}))
    assert options[-2:] == ["--remount-ro", "/"]
    assert options.index("--tmpfs") < options.index("--remount-ro")


def test_children_read_from_every_task(tmp_path: Path) -> None:
    for task, text in (("10", "11 12\n"), ("13", "14\n"), ("15", "")):
        (tmp_path / "10" / "task" / task).mkdir(parents=True)
        (tmp_path / "10" / "task" / task / "children").write_text(text)
    assert sorted(children(10, tmp_path)) == [11, 12, 14]
    assert children(99, tmp_path) == []


# -- the report --------------------------------------------------------------


def _with_matrix(tmp_path: Path) -> Path:
    path = write_run(tmp_path / "run", make_records())
    meta = json.loads((path / RUN_FILE).read_text())
    meta["runtimes"]["runc"]["family"] = "oci"
    meta["runtimes"]["runc"]["details"] = {"how": "in a private mount namespace"}
    meta["runtimes"]["runc"]["requests"] = capabilities.expressed(OciAdapter(RUNC))
    meta["runtimes"]["docker"]["requests"] = capabilities.expressed(runtimes.get("host"))
    (path / RUN_FILE).write_text(json.dumps(meta))
    return path


def test_summary_has_the_request_matrix(tmp_path: Path) -> None:
    summary = render(_with_matrix(tmp_path))["summary.md"].read_text()
    section = summary.split("## What each runtime can express", 1)[1]
    assert "| `network` | partly | ignored |" in section
    assert "| `memory` | yes | ignored |" in section
    assert "negative control" not in section
    assert "- `runc`, network=default: runc has no network of its own" in section
    assert "How rows were run:\n\n- `runc`: in a private mount namespace" in summary


def test_html_has_the_request_matrix(tmp_path: Path) -> None:
    html = render(_with_matrix(tmp_path))["index.html"].read_text()
    assert '<h2 id="requests">What each runtime can express</h2>' in html
    assert 'title="network=default: runc has no network of its own' in html
    assert "<td>in a private mount namespace</td>" in html


def test_old_run_without_matrix_renders(tmp_path: Path) -> None:
    summary = render(write_run(tmp_path / "run", make_records()))["summary.md"].read_text()
    assert "What each runtime can express" not in summary


def test_default_value_counts() -> None:
    """A row that expresses only the default value of a field is 'partly', not 'no'."""
    matrix = capabilities.expressed(runtimes.get("podman+runsc"))
    assert matrix["network"]["network=none (default)"] == ""
    assert capabilities.cell(matrix["network"]) == "partly"
    nspawn = capabilities.expressed(runtimes.get("systemd-nspawn"))
    assert nspawn["pid"]["pid=private (default)"] == ""
    assert capabilities.cell(nspawn["pid"]) == "partly"


def test_dropped_field_marked() -> None:
    """A field that the row accepted and did not apply in the run is 'dropped', in the
    samples it claimed to express; samples it refused keep their reason."""
    matrix = {
        "tmpfs": {"tmpfs 8 MiB": ""},
        "network": {"network=none (default)": "", "network=host": "cannot"},
        "memory": {"memory 64 MiB": ""},
    }

    marked = capabilities.with_dropped(matrix, {"tmpfs": "tmpfs: no tmpfs on /scratch"})

    assert marked["tmpfs"] == {
        "tmpfs 8 MiB": capabilities.DROPPED_PREFIX + "tmpfs: no tmpfs on /scratch"
    }
    assert marked["memory"] == matrix["memory"]
    assert capabilities.cell(marked["tmpfs"]) == capabilities.DROPPED
    assert capabilities.cell(marked["memory"]) == capabilities.YES


def test_dropped_outranks_partly() -> None:
    answers = {"a": "cannot", "b": capabilities.DROPPED_PREFIX + "seen"}

    assert capabilities.cell(answers) == capabilities.DROPPED
