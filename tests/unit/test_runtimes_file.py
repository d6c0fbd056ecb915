"""Runtimes files: declared rows, their templates, and broken files rejected with file and line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isobench import runtimes
from isobench.cli import main
from isobench.errors import RuntimesFileError, UsageError
from isobench.model import Mount, Request, Ulimit
from isobench.runtimes.declared import (
    ENV_FILES,
    MAX_FILE_BYTES,
    default_paths,
    load_file,
    locate,
    placeholders,
)
from isobench.runtimes.oci import OciAdapter
from isobench.runtimes.template import TemplateAdapter

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "malformed-runtimes"
EXAMPLES = REPO / "fixtures" / "runtimes" / "examples.toml"
BUILTIN = list(runtimes.BUILTIN)

#: Corpus file: (line, field) that the error must name.
EXPECTED = {
    "argv-in-part.toml": (3, "runtime.mine.run"),
    "bad-name.toml": (1, "runtime.my runtime"),
    "binary.toml": (1, None),
    "builtin-name.toml": (5, "runtime.runc"),
    "duplicate-key.toml": (4, None),
    "empty-run.toml": (3, "runtime.mine.run"),
    "empty.toml": (None, "runtime"),
    "latin1.toml": (1, None),
    "no-argv.toml": (3, "runtime.mine.run"),
    "no-env.toml": (4, "runtime.mine.fields"),
    "not-a-table.toml": (1, "runtime"),
    "unknown-field.toml": (4, "runtime.mine.paht"),
    "unknown-kind.toml": (2, "runtime.mine.kind"),
    "unknown-placeholder.toml": (8, "runtime.mine.options.hostname"),
    "unknown-request-field.toml": (4, "runtime.mine.fields"),
    "wrong-inline-type.toml": (4, "runtime.mine.cannot.network=default"),
    "wrong-type.toml": (3, "runtime.mine.path"),
}


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No runtimes.toml of the working directory or of the user's config leaks in.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(ENV_FILES, raising=False)
    runtimes.reset()


def test_corpus_complete() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.toml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_rejected(name: str) -> None:
    line, field = EXPECTED[name]

    with pytest.raises(RuntimesFileError) as info:
        load_file(CORPUS / name, BUILTIN)

    assert info.value.path == str(CORPUS / name)
    assert info.value.line == line
    assert info.value.field == field


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_cli_exit_two(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--runtimes-file", str(CORPUS / name), "runtimes"])
    err = capsys.readouterr().err
    assert status == 2
    assert str(CORPUS / name) in err
    assert "Traceback" not in err


def test_oversized_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text("# " + "x" * MAX_FILE_BYTES + "\n")
    with pytest.raises(RuntimesFileError, match="too large for a runtimes file"):
        load_file(path)


def test_missing_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(RuntimesFileError, match="not found or unreadable"):
        load_file(tmp_path / "nosuch.toml")


def test_examples_load() -> None:
    rows = load_file(EXAMPLES, BUILTIN)
    assert sorted(rows) == ["bwrap-userns", "crun-plain", "runc-build"]
    assert rows["runc-build"].line == 9
    assert rows["crun-plain"].line == 20
    assert rows["bwrap-userns"].line == 31


def test_declared_rows_listed_after_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_FILES, str(EXAMPLES))
    sources = runtimes.sources()
    assert list(sources)[: len(BUILTIN)] == BUILTIN
    assert sources["crun-plain"] == f"{EXAMPLES}:20"
    assert isinstance(runtimes.get("crun-plain"), OciAdapter)
    assert isinstance(runtimes.get("bwrap-userns"), TemplateAdapter)


def test_later_file_replaces_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "runtimes.toml").write_text('[runtime.mycrun]\nkind = "oci"\npath = "/opt/a"\n')
    other = tmp_path / "other.toml"
    other.write_text('[runtime.mycrun]\nkind = "oci"\npath = "/opt/b"\n')
    monkeypatch.setenv(ENV_FILES, str(other))
    adapter = runtimes.get("mycrun")
    assert isinstance(adapter, OciAdapter)
    assert adapter.binary == "/opt/b"


def test_user_config_read(tmp_path: Path) -> None:
    config = tmp_path / "config" / "isobench"
    config.mkdir(parents=True)
    (config / "runtimes.toml").write_text('[runtime.mine]\nkind = "oci"\npath = "crun"\n')
    assert default_paths() == [config / "runtimes.toml"]
    assert "mine" in runtimes.names()


def test_cli_flag_reaches_environment(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--runtimes-file", str(EXAMPLES), "runtimes", "--json", "--no-start"])
    out = capsys.readouterr().out
    assert status == 0
    assert f'"source": "{EXAMPLES}:31"' in out
    assert str(EXAMPLES) in os.environ[ENV_FILES]


def test_runtimes_file_after_command(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["runtimes", "--runtimes-file", str(EXAMPLES), "--json", "--no-start"])
    out = capsys.readouterr().out
    assert status == 0
    assert f'"source": "{EXAMPLES}:31"' in out


def test_unknown_runtime_names_declared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_FILES, str(EXAMPLES))
    with pytest.raises(UsageError, match="bwrap-userns, compose, containerd, crun, crun-plain"):
        runtimes.get("nosuch")


def test_locate_inline_table() -> None:
    text = '[runtime.a]\nkind = "oci"\ncannot = { userns = "no", pid = 3 }\n'
    assert locate(text, ("runtime", "a", "cannot", "pid")) == 3
    assert locate(text, ("runtime", "a", "kind")) == 2
    assert locate(text, ("runtime", "b")) is None


def test_bare_cannot_field_skips_any_value(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        '[runtime.mine]\nkind = "oci"\npath = "crun"\ncannot = { memory = "no cgroups" }\n'
    )
    monkeypatch_env = {ENV_FILES: str(path)}
    os.environ.update(monkeypatch_env)
    try:
        runtimes.reset()
        adapter = runtimes.get("mine")
        assert adapter.unsupported(Request(memory=64 << 20)) == "no cgroups"
        assert adapter.unsupported(Request()) is None
    finally:
        del os.environ[ENV_FILES]
        runtimes.reset()


def test_unknown_cannot_field_rejected(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        '[runtime.mine]\nkind = "oci"\npath = "crun"\n\n[runtime.mine.cannot]\nmemroy = "x"\n'
    )
    with pytest.raises(RuntimesFileError) as info:
        load_file(path)
    assert info.value.line == 6
    assert info.value.field == "runtime.mine.cannot.memroy"


def test_placeholders_escaped_braces() -> None:
    assert placeholders("{{.State.Pid}}") == []
    assert placeholders("--name={name}-{run_id}") == ["name", "run_id"]


# Templates, without running them


def _bwrap() -> TemplateAdapter:
    rows = load_file(EXAMPLES, BUILTIN)
    spec = rows["bwrap-userns"].spec
    assert not isinstance(spec, type(rows["crun-plain"].spec))
    return TemplateAdapter("bwrap-userns", spec, rows["bwrap-userns"].source)  # type: ignore[arg-type]


def test_template_skips_unlisted_field() -> None:
    reason = _bwrap().unsupported(Request(memory=64 * 1024 * 1024))
    assert reason is not None
    assert "declares no way to express 'memory'" in reason
    assert "examples.toml:31" in reason


def test_template_skips_value_without_arguments() -> None:
    reason = _bwrap().unsupported(Request(pid="host"))
    assert reason == (
        f"bwrap-userns declares no arguments for pid=host in {EXAMPLES}:31 (it has private)"
    )


def test_template_accepts_listed_fields() -> None:
    assert _bwrap().unsupported(Request(hostname="box", workdir="/tmp")) is None


def test_template_options_in_order() -> None:
    adapter = _bwrap()
    request = Request(hostname="box", env=(("A", "1 2"),))
    options = list(adapter._options(request, {"H": "x; touch /tmp/owned"}, {}))
    assert options == [
        *("--setenv", "H", "x; touch /tmp/owned", "--setenv", "A", "1 2"),
        *("--hostname", "box"),
        *("--unshare-pid", "--as-pid-1", "--unshare-net"),
    ]


def test_template_list_fields_repeat(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        '[runtime.mine]\nkind = "template"\nrun = ["mine", "{options}", "{argv}"]\n'
        'fields = ["env", "mounts", "ulimits", "cap_add", "memory", "read_only"]\n'
        "[runtime.mine.options]\n"
        'env = ["-e", "{key}={value}"]\n'
        'mounts = ["-v", "{source}:{target}:{mode}"]\n'
        'ulimits = ["--ulimit", "{name}={soft}:{hard}"]\n'
        'cap_add = ["--cap-add", "{value}"]\n'
        'memory = ["--memory", "{value}"]\n'
        'read_only = ["--read-only"]\n'
    )
    spec = load_file(path)["mine"].spec
    adapter = TemplateAdapter("mine", spec, "r.toml")  # type: ignore[arg-type]
    request = Request(
        mounts=(Mount(source="/a", target="/b", read_only=True),),
        ulimits=(Ulimit(name="nofile", soft=10, hard=20),),
        cap_add=("NET_ADMIN", "SYS_TIME"),
        memory=64 * 1024 * 1024,
        read_only=True,
    )
    options = list(adapter._options(request, {}, {}))
    assert options == [
        *("-v", "/a:/b:ro", "--ulimit", "nofile=10:20"),
        *("--cap-add", "NET_ADMIN", "--cap-add", "SYS_TIME"),
        *("--memory", "67108864", "--read-only"),
    ]
    filled = adapter._fill(spec.run, {}, argv=["/bin/sh", "-c", "echo {x}"], options=["-o"])
    assert filled == ["mine", "-o", "/bin/sh", "-c", "echo {x}"]


# Throwing generated documents at the loader: only RuntimesFileError, never another exception.

_keys = st.sampled_from(
    ["kind", "path", "run", "fields", "options", "env", "pid", "cannot", "x", "global_flags"]
)
_scalars = st.one_of(
    st.text(max_size=12),
    st.integers(),
    st.booleans(),
    st.sampled_from(["oci", "template", "{argv}", "{options}", "{rootfs}", "{nope}", "env"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=10,
)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + "}"


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.dictionaries(_keys, _values, max_size=6),
        max_size=3,
    ),
    st.binary(max_size=40),
)
def test_generated_documents_rejected_cleanly(
    rows: dict[str, dict[str, object]], junk: bytes
) -> None:
    lines = []
    for name, fields in rows.items():
        lines.append(f'[runtime."{name.replace(chr(92), "").replace(chr(34), "")}"]')
        lines += [f"{key} = {_toml_value(value)}" for key, value in fields.items()]
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"isobench-fuzz-{os.getpid()}.toml"
    try:
        path.write_bytes("\n".join(lines).encode() + (b"\n" + junk if junk else b""))
        try:
            load_file(path, BUILTIN)
        except RuntimesFileError as exc:
            assert exc.path == str(path)
            assert exc.problem
    finally:
        path.unlink(missing_ok=True)


def test_create_start_row_uses_shim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from isobench.journal import Journal
    from isobench.runtimes.base import Context

    path = tmp_path / "r.toml"
    path.write_text(
        '[runtime.mine]\nkind = "oci"\npath = "/opt/mine"\nlifecycle = "create-start"\n'
        "exec = false\n"
    )
    monkeypatch.setenv(ENV_FILES, str(path))
    runtimes.reset()
    adapter = runtimes.get("mine")
    assert isinstance(adapter, OciAdapter)
    ctx = Context("run-1", Journal("run-1", directory=tmp_path / "journal"))

    argv = adapter.run_argv(ctx, "box", tmp_path / "bundle")

    assert argv[1:3] == ["-m", "isobench.runtimes.shim"]
    assert argv[3:] == [
        "/opt/mine",
        "--root",
        "/run/isobench/mine",
        "--",
        "box",
        str(tmp_path / "bundle"),
    ]
    assert not adapter.can_exec()
    assert adapter.runtime_failure(125, "isobench shim: 'x create' exited with status 1") == (
        "'x create' exited with status 1"
    )
    assert adapter.runtime_failure(125, "the command's own message") is None
    assert adapter.runtime_failure(1, "isobench shim: x") is None


def test_unknown_lifecycle_rejected(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('[runtime.mine]\nkind = "oci"\npath = "x"\nlifecycle = "start"\n')
    with pytest.raises(RuntimesFileError) as info:
        load_file(path)
    assert info.value.line == 4
    assert info.value.field == "runtime.mine.lifecycle"


def test_shim_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from isobench.runtimes import shim

    assert shim.main(["runc", "box"]) == shim.FAILURE_STATUS
    assert "usage: RUNTIME [GLOBAL OPTIONS] -- NAME BUNDLE" in capsys.readouterr().err
