"""Property-based cgroup checks: random limits and workloads, outcomes predicted from the request.

Each example is a real container on the runtime under test. Hypothesis draws
a limit and a workload size, the check predicts from them whether the kernel
must stop the workload, and compares that with what the cgroup on the host
recorded. Examples near the limit, where the prediction would depend on the
workload's overhead, are left out. A failure shows the shrunk example.

The examples are derandomized, so every run tries the same ones.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from isobench.checks import Harness, StopExamples
from isobench.errors import IsobenchError
from isobench.model import Request
from isobench.runtimes import get

#: Runtimes on which every property must fail: they enforce no limit.
NEGATIVE_CONTROLS = ("host",)
#: Every container and host-side read goes through the harness, so through the run's host.
REMOTE_READY = True

MIB = 1024 * 1024
# busybox awk keeps the old and the doubled string at once, plus its own heap.
AWK_PEAK_FACTOR = 3
AWK_BASE_BYTES = 8 * MIB

CHECK = settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _skip_unexpressed(runtime: str, request: Request) -> None:
    """Skip, with the runtime's reason, a request that the runtime cannot express."""
    reason = get(runtime).unsupported(request)
    if reason is not None:
        pytest.skip(reason)


@CHECK
@given(limit_mib=st.integers(min_value=24, max_value=96), power=st.integers(18, 28))
def test_memory_limit_predicts_oom(
    isobench_harness: Harness, isobench_runtime: str, limit_mib: int, power: int
) -> None:
    """The memory limit stops exactly the workloads that need more than it."""
    limit = limit_mib * MIB
    size = 2**power
    over = 2 * size > limit
    under = AWK_PEAK_FACTOR * size + AWK_BASE_BYTES < limit
    assume(over or under)
    request = Request(memory=limit, memory_swap=limit)
    _skip_unexpressed(isobench_runtime, request)
    workload = ["awk", f'BEGIN{{s="x";for(i=0;i<{power};i++)s=s s}}']

    try:
        execution, exit_code, _ = isobench_harness.run_held(
            get(isobench_runtime), request, workload, timeout_s=120
        )
    except IsobenchError as exc:
        raise StopExamples(exc) from exc

    # The exit status is the verdict: a sandbox (gVisor) may stop the workload
    # itself, before the host kernel's OOM killer does. The yaml suite checks
    # the kernel's count where the cgroup can be read.
    kills = int(str(execution.host_view.get("cg.memory.oom_kills", "0")))
    if over:
        assert exit_code != 0, f"a {size // MIB} MiB workload completed under {limit_mib} MiB"
    else:
        assert exit_code == 0, f"a {size // MIB} MiB workload failed under {limit_mib} MiB"
        assert kills == 0, f"the kernel counted {kills} OOM kills for a small workload"


@CHECK
@given(limit=st.integers(min_value=6, max_value=30), forks=st.integers(1, 40))
def test_pids_limit_predicts_forks(
    isobench_harness: Harness, isobench_runtime: str, limit: int, forks: int
) -> None:
    """A fork loop gets exactly as many children as the pids limit leaves room for."""
    # The wrapper shell and the loop's shell count against the limit too.
    needed = forks + 2
    assume(abs(needed - limit) > 1)
    loop = (
        f"i=0; while [ $i -lt {forks} ]; do (echo forked; exec sleep 20) & i=$((i+1)); done; "
        "echo all-forked"
    )

    request = Request(pids_limit=limit)
    _skip_unexpressed(isobench_runtime, request)
    try:
        _, _, stdout = isobench_harness.run_held(get(isobench_runtime), request, ["sh", "-c", loop])
    except IsobenchError as exc:
        raise StopExamples(exc) from exc

    started = stdout.splitlines().count("forked")
    if needed <= limit:
        assert "all-forked" in stdout, f"{forks} forks under a limit of {limit} were refused"
        assert started == forks
    else:
        assert "all-forked" not in stdout, f"{forks} forks passed a limit of {limit}"
        assert started == limit - 2, f"{started} children started under a limit of {limit}"


@pytest.fixture(autouse=True)
def _runtime_available(isobench_runtime: str) -> None:
    info = get(isobench_runtime).availability()
    if not info.available:
        pytest.fail(f"runtime {isobench_runtime} is not available: {info.reason}", pytrace=False)
