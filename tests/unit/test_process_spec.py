"""Tests of the process-contract fields of a check: schema and loader validation, how the
harness decides that a check needs a shell or a missing command, and the fault wrappers."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from isobench.checks import Harness, _needs_shell, _ObservationError, _require_command, _shell_use
from isobench.errors import HarnessError, SuiteError
from isobench.journal import Journal
from isobench.model import Facts, Mount, Request
from isobench.runtimes.base import Context, Launched, ProbeImage
from isobench.runtimes.faults import FAULTS, FaultyHost, _flattened, _joined, _no_stdin
from isobench.runtimes.host import HostAdapter
from isobench.spec.loader import LoadedSuite, parse_suite
from isobench.spec.schema import Control, ExecSpec, FactCheck, RunCheck, StopSpec

SUITE_PATH = Path("suites/process-example.yaml")

# The check starts on line 3 and its fields on line 4, so ``controls`` is on
# line 8 and its first item on line 9.
RUN_CHECK = """\
title: T
run: ["true"]
expect:
  exit_code: {equals: "0"}
controls:
  - runtime: host
"""


def one_check(body: str) -> str:
    """Return a suite whose only check starts on line 3 with ``body`` (indented by four)."""
    lines = body.strip("\n").splitlines()
    indented = "\n".join(f"    {line}" if line else "" for line in lines)
    return f"suite: example\nchecks:\n  - id: only\n{indented}\n"


def parse(text: str) -> LoadedSuite:
    return parse_suite(text, SUITE_PATH)


def suite_error(text: str) -> SuiteError:
    """Parse ``text`` and return the SuiteError it must raise."""
    with pytest.raises(SuiteError) as info:
        parse(text)
    return info.value


def only_run_check(text: str) -> RunCheck:
    check = parse(text).checks[0].check
    assert isinstance(check, RunCheck)
    return check


def with_expect(expect: str, extra: str = "") -> str:
    """Return a run check whose only expectation is ``expect`` (one YAML line), plus ``extra``."""
    return one_check(RUN_CHECK.replace('  exit_code: {equals: "0"}', f"  {expect}") + extra)


# -- controls with a fault ---------------------------------------------------


def test_fault_control_accepted() -> None:
    check = only_run_check(one_check(RUN_CHECK.replace("runtime: host", "fault: exit-flattened")))

    assert check.controls[0].fault == "exit-flattened"
    assert check.controls[0].runtime is None


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_known_fault_accepted(fault: str) -> None:
    check = only_run_check(one_check(RUN_CHECK.replace("runtime: host", f"fault: {fault}")))

    assert check.controls[0].fault == fault


def test_unknown_fault_rejected() -> None:
    error = suite_error(one_check(RUN_CHECK.replace("runtime: host", "fault: argv-split")))

    assert error.path == str(SUITE_PATH)
    assert error.line == 9
    assert error.field == "checks[0].controls[0].fault"
    assert "argv-split" in error.problem
    assert "argv-joined" in error.problem


def test_fault_with_runtime_rejected() -> None:
    text = one_check(RUN_CHECK.replace("runtime: host", "{runtime: host, fault: argv-joined}"))

    error = suite_error(text)

    assert error.line == 9
    assert error.field == "checks[0].controls[0]"
    assert "'fault'" in error.problem


def test_fault_with_request_rejected() -> None:
    text = one_check(
        RUN_CHECK.replace(
            "runtime: host", "{fault: argv-joined, request: {pid: host}, runtimes: [docker]}"
        )
    )

    error = suite_error(text)

    assert error.line == 9
    assert error.field == "checks[0].controls[0]"


def test_fault_with_runtimes_rejected() -> None:
    text = one_check(RUN_CHECK.replace("runtime: host", "{fault: argv-joined, runtimes: [docker]}"))

    error = suite_error(text)

    assert error.line == 9
    assert error.field == "checks[0].controls[0]"
    assert "'runtimes' goes with a 'request' control" in error.problem


def test_control_exactly_one_kind() -> None:
    with pytest.raises(ValidationError):
        Control()
    with pytest.raises(ValidationError):
        Control(runtime="host", fault="argv-joined")

    assert Control(fault="argv-joined").fault == "argv-joined"


# -- exec with wait ----------------------------------------------------------


def test_exec_wait_accepted() -> None:
    text = with_expect("exec_stdout: {contains: hi}", "exec: {argv: [echo, hi], wait: true}\n")

    check = only_run_check(text)

    assert check.exec is not None
    assert check.exec.wait is True
    assert check.expect.exec_stdout is not None


def test_exec_wait_count_rejected() -> None:
    error = suite_error(one_check(RUN_CHECK + "exec: {argv: [echo], count: 2, wait: true}\n"))

    assert error.line == 10
    assert error.field == "checks[0].exec"
    assert "leave 'count' at 1" in error.problem


def test_exec_spec_wait_count_model() -> None:
    with pytest.raises(ValidationError):
        ExecSpec(argv=["echo"], count=3, wait=True)

    assert ExecSpec(argv=["echo"], count=3).wait is False


def test_exec_stdout_without_wait_rejected() -> None:
    error = suite_error(with_expect("exec_stdout: {contains: hi}", "exec: {argv: [echo, hi]}\n"))

    assert error.line == 3
    assert error.field == "checks[0]"
    assert "'expect.exec_stdout' needs 'exec' with 'wait: true'" in error.problem


def test_exec_stdout_without_exec_rejected() -> None:
    error = suite_error(with_expect("exec_stdout: {contains: hi}"))

    assert error.line == 3
    assert "'expect.exec_stdout'" in error.problem


def test_exec_stdout_alone_is_expectation() -> None:
    # An exec_stdout expectation alone satisfies the rule that expect sets at least one.
    text = with_expect("exec_stdout: {equals: x}", "exec: {argv: [echo, x], wait: true}\n")

    assert only_run_check(text).expect.exit_code is None


# -- stop --------------------------------------------------------------------


def test_stop_accepted() -> None:
    check = only_run_check(one_check(RUN_CHECK + "stop: {after_s: 1, grace_s: 0.5}\n"))

    assert check.stop == StopSpec(after_s=1, grace_s=0.5)


def test_stop_defaults() -> None:
    check = only_run_check(one_check(RUN_CHECK + "stop: {}\n"))

    assert check.stop == StopSpec(after_s=2.0, grace_s=3.0)


@pytest.mark.parametrize(
    ("stop", "field"),
    [
        ("{after_s: 61}", "checks[0].stop.after_s"),
        ("{after_s: -1}", "checks[0].stop.after_s"),
        ("{grace_s: 61}", "checks[0].stop.grace_s"),
        ("{after: 1}", "checks[0].stop.after"),
    ],
)
def test_stop_invalid_field(stop: str, field: str) -> None:
    error = suite_error(one_check(RUN_CHECK + f"stop: {stop}\n"))

    assert error.line == 10
    assert error.field == field


@pytest.mark.parametrize(
    "extra", ["exec: {argv: [echo]}\n", "alongside: {cpus: 1}\n"], ids=["exec", "alongside"]
)
def test_stop_combination_rejected(extra: str) -> None:
    error = suite_error(one_check(RUN_CHECK + "stop: {after_s: 1}\n" + extra))

    assert error.line == 3
    assert error.field == "checks[0]"
    assert "'stop' cannot be combined with 'exec' or 'alongside'" in error.problem


# -- stdin -------------------------------------------------------------------


def test_stdin_accepted() -> None:
    check = only_run_check(one_check(RUN_CHECK + "stdin: |\n  one\n  two\n"))

    assert check.stdin == "one\ntwo\n"


@pytest.mark.parametrize(
    "text",
    [
        one_check(RUN_CHECK + "stdin: x\nstop: {}\n"),
        one_check(RUN_CHECK + "stdin: x\nexec: {argv: [echo]}\n"),
        with_expect("cgroup: {cg.pids.current: {at_least: 1}}", "stdin: x\n"),
    ],
    ids=["stop", "exec", "cgroup"],
)
def test_stdin_held_command_rejected(text: str) -> None:
    error = suite_error(text)

    assert error.line == 3
    assert error.field == "checks[0]"
    assert "'stdin' goes with a command that runs to its end by itself" in error.problem


def test_stdin_with_process_expectation_rejected() -> None:
    error = suite_error(with_expect('process: {hostside.zombies: {equals: "0"}}', "stdin: x\n"))

    assert error.field == "checks[0]"
    assert "'stdin'" in error.problem


def test_stdin_with_alongside_rejected() -> None:
    error = suite_error(one_check(RUN_CHECK + "stdin: x\nalongside: {cpus: 1}\n"))

    assert error.field == "checks[0]"
    assert "'stdin'" in error.problem


# -- process expectations ----------------------------------------------------


def test_process_expectation_accepted() -> None:
    check = only_run_check(with_expect('process: {hostside.zombies: {equals: "0"}}'))

    assert set(check.expect.process) == {"hostside.zombies"}


def test_process_alone_is_expectation() -> None:
    check = only_run_check(with_expect("process: {hostside.parent: {contains: shim}}"))

    assert check.expect.exit_code is None


@pytest.mark.parametrize("name", ["hostside.zombie", "hostside.cgroup", "ns.pid"])
def test_unknown_process_fact_rejected(name: str) -> None:
    error = suite_error(with_expect(f'process: {{{name}: {{equals: "0"}}}}'))

    assert error.line == 7
    assert error.field == f"checks[0].expect.process.{name}"
    assert f"unknown process fact '{name}'" in error.problem
    assert "hostside.zombies" in error.problem


def test_process_unknown_host_ref_rejected() -> None:
    error = suite_error(with_expect("process: {hostside.uid: {equals: {host: id.uidd}}}"))

    assert error.line == 7
    assert error.field == "checks[0].expect.process.hostside.uid.equals.host"


def test_empty_process_asserts_nothing() -> None:
    error = suite_error(with_expect("process: {}"))

    assert error.line == 6
    assert error.field == "checks[0].expect"
    assert "process" in error.problem


# -- requires_path and requires_host -----------------------------------------


def test_requires_fields_accepted() -> None:
    text = one_check(RUN_CHECK + "requires_path: /proc/kcore\nrequires_host: [lsm.mac]\n")

    check = only_run_check(text)

    assert check.requires_path == "/proc/kcore"
    assert check.requires_host == ["lsm.mac"]


def test_requires_path_relative_rejected() -> None:
    error = suite_error(one_check(RUN_CHECK + "requires_path: proc/kcore\n"))

    assert error.line == 10
    assert error.field == "checks[0].requires_path"


def test_requires_host_unknown_rejected() -> None:
    error = suite_error(one_check(RUN_CHECK + "requires_host:\n  - lsm.mac\n  - lsm.macc\n"))

    assert error.line == 12
    assert error.field == "checks[0].requires_host[1]"
    assert "unknown host fact 'lsm.macc'" in error.problem


def test_requires_host_on_fact_check() -> None:
    text = one_check("""\
title: T
requires_host: [lsm.mac]
fact: lsm.current
expect: {not_equals: unconfined}
controls:
  - runtime: host
""")

    check = parse(text).checks[0].check

    assert isinstance(check, FactCheck)
    assert check.requires_host == ["lsm.mac"]


# -- request fields in a suite -----------------------------------------------


def test_mount_placeholder_accepted() -> None:
    text = one_check(
        RUN_CHECK + "request:\n  mounts: [{source: '{host.marker.bind_dir}', target: /data}]\n"
    )

    (mount,) = only_run_check(text).request.mounts

    assert mount == Mount(source="{host.marker.bind_dir}", target="/data")


def test_mount_unknown_placeholder_rejected() -> None:
    text = one_check(
        RUN_CHECK + "request:\n  mounts:\n    - {source: '{host.marker.bind_dri}', target: /d}\n"
    )

    error = suite_error(text)

    assert error.line == 12
    assert error.field == "checks[0].request.mounts[0].source"
    assert "{host.marker.bind_dri}" in error.problem


def test_control_mount_unknown_placeholder_rejected() -> None:
    control = (
        "  - request:\n"
        "      mounts: [{source: '{host.marker.bind_dri}', target: /data}]\n"
        "    runtimes: [docker]\n"
    )

    error = suite_error(one_check(RUN_CHECK + control))

    assert error.field is not None
    assert error.field.startswith("checks[0].controls[1]")
    assert "{host.marker.bind_dri}" in error.problem


@pytest.mark.parametrize(
    ("request_yaml", "field"),
    [
        ("{ulimits: [{name: nofile, soft: 2048, hard: 1024}]}", "checks[0].request.ulimits[0]"),
        ("{ulimits: [{name: files, soft: 1, hard: 1}]}", "checks[0].request.ulimits[0].name"),
        ("{workdir: tmp}", "checks[0].request.workdir"),
        ("{image: alpine}", "checks[0].request.image"),
        ("{mounts: [{source: /srv, target: data}]}", "checks[0].request.mounts[0].target"),
        ("{masked_paths: none}", "checks[0].request.masked_paths"),
    ],
)
def test_invalid_request_field_rejected(request_yaml: str, field: str) -> None:
    error = suite_error(one_check(RUN_CHECK + f"request: {request_yaml}\n"))

    assert error.line == 10
    assert error.field == field


def test_ulimit_error_names_limits() -> None:
    text = one_check(RUN_CHECK + "request: {ulimits: [{name: nofile, soft: 2048, hard: 1024}]}\n")

    assert "the soft limit 2048 is above the hard limit 1024" in suite_error(text).problem


def test_request_control_bad_ulimit_rejected() -> None:
    control = "  - request: {ulimits: [{name: nofile, soft: 9, hard: 1}]}\n    runtimes: [docker]\n"

    error = suite_error(one_check(RUN_CHECK + control))

    assert error.line == 10
    assert error.field == "checks[0].controls[1].request"


def test_real_process_suite_loads() -> None:
    path = Path(__file__).resolve().parents[2] / "suites" / "process.yaml"

    loaded = parse_suite(path.read_text(encoding="utf-8"), path)

    assert loaded.name == "process"
    assert any(
        control.fault is not None for check in loaded.checks for control in check.check.controls
    )


# -- commands in the image ---------------------------------------------------


@pytest.fixture
def probe_like_image(tmp_path: Path) -> ProbeImage:
    """An image rootfs with /bin/busybox, a /bin/sh link to it and /isobench/probe.sh."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "bin" / "busybox").write_text("")
    (rootfs / "bin" / "sh").symlink_to("busybox")
    (rootfs / "isobench").mkdir()
    (rootfs / "isobench" / "probe.sh").write_text("")
    return ProbeImage(rootfs, "0123456789ab", "probe")


@pytest.fixture
def static_like_image(tmp_path: Path) -> ProbeImage:
    """An image rootfs with /busybox and nothing else."""
    rootfs = tmp_path / "static-rootfs"
    rootfs.mkdir()
    (rootfs / "busybox").write_text("")
    return ProbeImage(rootfs, "0123456789ab", "static")


@pytest.mark.parametrize("command", ["sh", "/bin/sh", "busybox", "/isobench/probe.sh"])
def test_require_command_present(probe_like_image: ProbeImage, command: str) -> None:
    # The command exists, so no HarnessError is raised.
    _require_command(probe_like_image, command)


def test_require_command_static_binary(static_like_image: ProbeImage) -> None:
    _require_command(static_like_image, "/busybox")


def test_require_command_missing_absolute(static_like_image: ProbeImage) -> None:
    with pytest.raises(HarnessError) as info:
        _require_command(static_like_image, "/bin/sh")

    message = str(info.value)
    assert "the command '/bin/sh' does not exist in the static image" in message
    assert "PATH" not in message


def test_require_command_missing_relative(static_like_image: ProbeImage) -> None:
    with pytest.raises(HarnessError) as info:
        _require_command(static_like_image, "sh")

    message = str(info.value)
    assert "the command 'sh' does not exist in the static image" in message
    assert "(the image's PATH is /bin)" in message


def test_require_command_relative_not_at_root(static_like_image: ProbeImage) -> None:
    # A bare name is looked up in /bin only, even where /<name> exists.
    with pytest.raises(HarnessError, match="PATH is /bin"):
        _require_command(static_like_image, "busybox")


def test_require_command_dangling_link(probe_like_image: ProbeImage) -> None:
    (probe_like_image.rootfs / "bin" / "gone").symlink_to("missing-target")

    with pytest.raises(HarnessError, match="'gone' does not exist in the probe image"):
        _require_command(probe_like_image, "gone")


def test_image_has_shell(probe_like_image: ProbeImage, static_like_image: ProbeImage) -> None:
    assert probe_like_image.has_shell is True
    assert static_like_image.has_shell is False


def test_image_reference_names_kind(static_like_image: ProbeImage) -> None:
    assert static_like_image.reference == "localhost/isobench-static:0123456789ab"


# -- which checks need a shell -----------------------------------------------


def run_check(**fields: Any) -> RunCheck:
    data: dict[str, Any] = {
        "id": "c",
        "title": "T",
        "run": ["/busybox", "true"],
        "expect": {"exit_code": {"equals": "0"}},
        "controls": [{"runtime": "host"}],
    }
    data.update(fields)
    return RunCheck.model_validate(data)


def test_shell_use_fact_check() -> None:
    check = FactCheck.model_validate(
        {
            "id": "c",
            "title": "T",
            "fact": "hostname",
            "expect": {"equals": "x"},
            "controls": [{"runtime": "host"}],
        }
    )

    assert _shell_use(check) == "the probe is a shell script"
    assert _needs_shell(check) is True


@pytest.mark.parametrize("shell", ["sh", "/bin/sh"])
def test_shell_use_shell_command(shell: str) -> None:
    check = run_check(run=[shell, "-c", "true"])

    assert _shell_use(check) == "its command is a shell"


@pytest.mark.parametrize(
    "fields",
    [
        {"stop": {}},
        {"exec": {"argv": ["/busybox", "true"]}},
        {"alongside": {"cpus": 1}},
    ],
    ids=["stop", "exec", "alongside"],
)
def test_shell_use_wrapped_command(fields: dict[str, Any]) -> None:
    assert _shell_use(run_check(**fields)) == (
        "the harness wraps the command in a shell to hold or stop it"
    )


@pytest.mark.parametrize(
    "expect",
    [
        {"cgroup": {"cg.pids.current": {"at_least": 1}}},
        {"process": {"hostside.zombies": {"equals": "0"}}},
    ],
    ids=["cgroup", "process"],
)
def test_shell_use_held_command(expect: dict[str, Any]) -> None:
    assert _shell_use(run_check(expect=expect)) == (
        "the harness wraps the command in a shell to hold it"
    )


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"stdin": "text"},
        {"expect": {"stdout": {"contains": "x"}}},
        {"expect": {"values": {"rate": {"at_least": 1}}}},
        {"run": ["/busybox", "sh", "-c", "true"]},
    ],
    ids=["plain", "stdin", "stdout", "values", "busybox-sh"],
)
def test_shell_use_none(fields: dict[str, Any]) -> None:
    check = run_check(**fields)

    assert _shell_use(check) == ""
    assert _needs_shell(check) is False


# -- placeholders in mount sources -------------------------------------------


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    """A harness that has not started: no image, no markers, a journal in tmp_path."""
    run_id = "unit-process-spec"
    return Harness(run_id, tmp_path, Journal(run_id, tmp_path, directory=tmp_path))


def test_bind_substitutes_host_fact(harness: Harness) -> None:
    harness.host_facts = {"marker.bind_dir": "/tmp/isobench-bind"}
    request = Request(
        mounts=(
            Mount(source="{host.marker.bind_dir}", target="/data", read_only=True),
            Mount(source="{host.marker.bind_dir}/sub", target="/sub"),
        )
    )

    bound = harness._bind(request)

    assert bound.mounts == (
        Mount(source="/tmp/isobench-bind", target="/data", read_only=True),
        Mount(source="/tmp/isobench-bind/sub", target="/sub"),
    )


def test_bind_keeps_other_fields(harness: Harness) -> None:
    harness.host_facts = {"marker.bind_dir": "/tmp/b"}
    request = Request(read_only=True, mounts=(Mount(source="{host.marker.bind_dir}", target="/d"),))

    bound = harness._bind(request)

    assert bound.read_only is True
    assert bound.model_copy(update={"mounts": ()}) == request.model_copy(update={"mounts": ()})


def test_bind_plain_source_same_request(harness: Harness) -> None:
    request = Request(mounts=(Mount(source="/srv", target="/data"),))

    assert harness._bind(request) is request


def test_bind_missing_host_fact_raises(harness: Harness) -> None:
    request = Request(mounts=(Mount(source="{host.marker.bind_dir}", target="/data"),))

    with pytest.raises(HarnessError, match=re.escape("marker.bind_dir")):
        harness._bind(request)


# -- fact checks that cannot observe -----------------------------------------


def fact_check(fact: str, **fields: Any) -> FactCheck:
    data: dict[str, Any] = {
        "id": "c",
        "title": "T",
        "fact": fact,
        "expect": {"equals": "0"},
        "controls": [{"runtime": "host"}],
    }
    data.update(fields)
    return FactCheck.model_validate(data)


def seed_probe(harness: Harness, values: dict[str, str | list[str]]) -> HostAdapter:
    """Store probe facts for the host adapter and the default request, so no probe runs."""
    adapter = HostAdapter()
    harness._probes[(adapter.name, Request())] = Facts(values=values)
    return adapter


def test_requires_path_missing_skips(harness: Harness) -> None:
    adapter = seed_probe(harness, {"path.exists": ["/proc/sys"], "masked.present": []})

    verdict = harness._judge_fact(
        fact_check("masked.unmasked", requires_path="/proc/kcore"), adapter, Request()
    )

    assert verdict.outcome == "skip"
    assert "/proc/kcore does not exist in the container" in verdict.message


@pytest.mark.parametrize("fact", ["path.exists", "masked.present"])
def test_requires_path_present_judged(harness: Harness, fact: str) -> None:
    adapter = seed_probe(harness, {fact: ["/proc/kcore"], "masked.unmasked": []})
    check = fact_check("masked.unmasked", requires_path="/proc/kcore", expect={"empty": True})

    verdict = harness._judge_fact(check, adapter, Request())

    assert verdict.outcome == "pass"


def test_missing_status_line_skips(harness: Harness) -> None:
    adapter = seed_probe(harness, {"status.CapEff": "0000000000000000"})

    verdict = harness._judge_fact(fact_check("status.NoNewPrivs"), adapter, Request())

    assert verdict.outcome == "skip"
    assert "has no NoNewPrivs line" in verdict.message


def test_missing_status_without_capeff_errors(harness: Harness) -> None:
    adapter = seed_probe(harness, {"hostname": "box"})

    with pytest.raises(_ObservationError, match=re.escape("no fact 'status.NoNewPrivs'")):
        harness._judge_fact(fact_check("status.NoNewPrivs"), adapter, Request())


def test_missing_other_fact_errors(harness: Harness) -> None:
    adapter = seed_probe(harness, {"status.CapEff": "0000000000000000"})

    with pytest.raises(_ObservationError, match=re.escape("no fact 'rlimit.nofile'")):
        harness._judge_fact(fact_check("rlimit.nofile"), adapter, Request())


# -- fault wrappers ----------------------------------------------------------

ARGV = ["printf", "%s|", "two words", "$HOME"]


def test_joined_one_unquoted_line() -> None:
    assert _joined(ARGV) == ["/bin/sh", "-c", "printf %s| two words $HOME"]


def test_flattened_keeps_argv() -> None:
    wrapped = _flattened(ARGV)

    assert wrapped[:4] == ["/bin/sh", "-c", '"$@" || exit 1', "sh"]
    assert wrapped[4:] == ARGV


def test_no_stdin_keeps_argv() -> None:
    wrapped = _no_stdin(ARGV)

    assert wrapped[:4] == ["/bin/sh", "-c", 'exec "$@" < /dev/null', "sh"]
    assert wrapped[4:] == ARGV


def test_faults_table_wrappers() -> None:
    assert {name: wrap for name, (_, wrap) in FAULTS.items()} == {
        "argv-joined": _joined,
        "exit-flattened": _flattened,
        "stdin-dropped": _no_stdin,
    }


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_has_description(fault: str) -> None:
    description, _ = FAULTS[fault]

    assert description.strip()


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_faulty_host_name(fault: str) -> None:
    adapter = FaultyHost(fault)

    assert adapter.name == f"host+{fault}"
    assert adapter.family == "host"
    assert adapter.fault == fault


def test_faulty_host_unknown_fault() -> None:
    with pytest.raises(KeyError):
        FaultyHost("argv-split")


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_faulty_host_launch_wraps(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fault: str
) -> None:
    launched: list[list[str]] = []

    def record_launch(
        self: HostAdapter,
        ctx: Context,
        request: Request,
        argv: Sequence[str],
        env: dict[str, str],
    ) -> Launched:
        launched.append(list(argv))
        raise HarnessError("recorded instead of started")

    monkeypatch.setattr(HostAdapter, "launch", record_launch)
    ctx = Context("unit", Journal("unit", directory=tmp_path))

    with pytest.raises(HarnessError, match="recorded instead of started"):
        FaultyHost(fault).launch(ctx, Request(), ARGV, {})

    assert launched == [FAULTS[fault][1](ARGV)]
