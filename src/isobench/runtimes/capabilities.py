"""Which request fields each runtime row can express: the rows of the capability matrix.

The matrix passes each adapter's ``unsupported`` method a sample request per
field and value, one that sets that field away from its default. A row
either expresses it or names why not; the answer is what the adapter
declares, so a request that a runtime accepts and then does not apply
shows up as a failed check, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from isobench.errors import IsobenchError
from isobench.model import Request
from isobench.runtimes.base import Adapter

MIB = 1024 * 1024

#: For each request field, the samples asked about: a label and the request fields it sets.
#: A field with several values that differ in what they need (network) has one per value.
SAMPLES: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "hostname": (("hostname=box", {"hostname": "box"}),),
    "env": (("env A=b", {"env": (("A", "b"),)}),),
    "user": (("user=1000:1000", {"user": "1000:1000"}),),
    "pid": (("pid=host", {"pid": "host"}),),
    "network": (
        ("network=default", {"network": "default"}),
        ("network=host", {"network": "host"}),
    ),
    "network_name": (
        ("a network of the check's", {"network": "default", "network_name": "isobench-net"}),
    ),
    "publish": (
        (
            "publish 127.0.0.1:8080 to 80",
            {
                "network": "default",
                "publish": ({"host_port": 8080, "container_port": 80},),
            },
        ),
    ),
    "add_hosts": (
        ("add_hosts db.test", {"add_hosts": ({"name": "db.test", "address": "10.0.0.2"},)}),
    ),
    "dns": (("dns 127.0.0.53", {"dns": ("127.0.0.53",)}),),
    "dns_search": (("dns_search example.test", {"dns_search": ("example.test",)}),),
    "ipc": (("ipc=host", {"ipc": "host"}),),
    "uts": (("uts=host", {"uts": "host"}),),
    "cgroupns": (
        ("cgroupns=private", {"cgroupns": "private"}),
        ("cgroupns=host", {"cgroupns": "host"}),
    ),
    "userns": (("userns=private", {"userns": "private"}),),
    "cap_add": (("cap_add NET_ADMIN", {"cap_add": ("NET_ADMIN",)}),),
    "cap_drop": (("cap_drop ALL", {"cap_drop": ("ALL",)}),),
    "seccomp": (("seccomp=unconfined", {"seccomp": "unconfined"}),),
    "no_new_privs": (
        ("no_new_privs=true", {"no_new_privs": True}),
        ("no_new_privs=false", {"no_new_privs": False}),
    ),
    "privileged": (("privileged", {"privileged": True}),),
    "masked_paths": (("masked_paths=unconfined", {"masked_paths": "unconfined"}),),
    "read_only": (("read_only", {"read_only": True}),),
    "mounts": (
        (
            "bind mount, read-only",
            {"mounts": ({"source": "/tmp", "target": "/data", "read_only": True},)},
        ),
    ),
    "tmpfs": (("tmpfs 8 MiB", {"tmpfs": ({"target": "/scratch", "size": 8 * MIB},)}),),
    "devices": (("device /dev/fuse", {"devices": ("/dev/fuse",)}),),
    "ulimits": (("ulimit nofile", {"ulimits": ({"name": "nofile", "soft": 512, "hard": 1024},)}),),
    "init": (("init", {"init": True}),),
    "workdir": (("workdir=/tmp", {"workdir": "/tmp"}),),
    "image": (("static image", {"image": "static"}),),
    "memory": (("memory 64 MiB", {"memory": 64 * MIB}),),
    "memory_swap": (("memory_swap 64 MiB", {"memory": 64 * MIB, "memory_swap": 64 * MIB}),),
    "pids_limit": (("pids_limit 64", {"pids_limit": 64}),),
    "cpus": (("cpus 0.5", {"cpus": 0.5}),),
    "cpuset_cpus": (("cpuset_cpus 0", {"cpuset_cpus": "0"}),),
    "cpu_shares": (("cpu_shares 512", {"cpu_shares": 512}),),
    "device_write_bps": (("device_write_bps 1 MiB/s", {"device_write_bps": MIB}),),
    "device_read_bps": (("device_read_bps 1 MiB/s", {"device_read_bps": MIB}),),
}

YES = "yes"
NO = "no"
PARTLY = "partly"
IGNORED = "ignored"
#: A field the row accepted and did not apply in the run: worse than 'no'.
DROPPED = "dropped"
#: The start of the reason of a sample whose field the row dropped in the run.
DROPPED_PREFIX = "accepted and not applied in this run: "
#: The reason of every cell of the host row, which runs each request without applying it.
HOST_IGNORES = "the host row applies no request: it is the negative control"


def expressed(adapter: Adapter) -> dict[str, dict[str, str]]:
    """Return, per request field, each sample's label with '' when the row expresses it,
    or the row's reason when it does not."""
    matrix: dict[str, dict[str, str]] = {}
    if adapter.family == "host":
        # The host row runs every request as it is, so that every check fails on it.
        ignored = HOST_IGNORES
        return {
            field: dict.fromkeys((label for label, _ in samples), ignored)
            for field, samples in SAMPLES.items()
        }
    # A row that cannot run the defaults names request fields to set in the samples of
    # every other field (matrix_base), so that each cell shows what the row can do with
    # that field. A row that runs a sample in another form than the one requested
    # names it with how (matrix_partly): the cell is then 'partly', with that reason.
    base: dict[str, Any] = getattr(adapter, "matrix_base", {})
    partly: dict[str, str] = getattr(adapter, "matrix_partly", {})
    for field, samples in SAMPLES.items():
        answers: dict[str, str] = {}
        for label, values in _with_default(field, samples):
            sample = values if field in base else {**base, **values}
            try:
                reason = adapter.unsupported(Request(**sample))
            except IsobenchError as exc:
                reason = str(exc)
            answers[label] = reason or partly.get(label, "")
        matrix[field] = answers
    return matrix


def with_dropped(
    matrix: Mapping[str, Mapping[str, str]], dropped: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """Return ``matrix`` with each field that the row dropped in the run (field: what was
    seen) marked in the samples it claimed to express."""
    marked = {field: dict(answers) for field, answers in matrix.items()}
    for field, seen in dropped.items():
        answers = marked.get(field)
        if answers is None:
            continue
        for label, reason in answers.items():
            if not reason:
                answers[label] = DROPPED_PREFIX + seen
    return marked


def _with_default(
    field: str, samples: tuple[tuple[str, dict[str, Any]], ...]
) -> tuple[tuple[str, dict[str, Any]], ...]:
    """Put the field's default value first where it is a choice of its own (pid=private):
    a row may express only the other value, or only the default. Unset and empty
    defaults leave the choice to the runtime, so they need no sample."""
    default = Request.model_fields[field].default
    if default is None or default == () or isinstance(default, bool):
        return samples
    return ((f"{field}={default} (default)", {}), *samples)


def cell(answers: Mapping[str, str]) -> str:
    """Return 'yes', 'no', 'partly', 'ignored' (the host row), or 'dropped' (accepted and
    not applied in the run), for the results of one field."""
    if answers and all(reason == HOST_IGNORES for reason in answers.values()):
        return IGNORED
    if any(reason.startswith(DROPPED_PREFIX) for reason in answers.values()):
        return DROPPED
    unexpressed = sum(1 for reason in answers.values() if reason)
    if unexpressed == 0:
        return YES
    return NO if unexpressed == len(answers) else PARTLY
