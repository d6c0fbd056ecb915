"""Parse the probe's output into facts."""

from __future__ import annotations

from isobench.errors import HarnessError
from isobench.probe import END_MARKER

# List facts that the probe may print no item of; they read as empty lists.
LIST_FACTS = (
    "proc",
    "mount.point",
    "mountinfo",
    "net.if",
    "net.route",
    "cgroup",
    "uid_map",
    "gid_map",
    "sysvipc.shm.key",
    "path.exists",
    "masked.present",
    "masked.visible",
)


def parse(output: str) -> dict[str, str | list[str]]:
    """Turn the probe's ``name<TAB>value`` lines into a dict of facts.

    Raises HarnessError when the end marker is missing, because facts from a
    probe that stopped early would be silently incomplete.
    """
    values: dict[str, str | list[str]] = {}
    ended = False
    for line in output.splitlines():
        if line == END_MARKER:
            ended = True
            break
        name, sep, value = line.partition("\t")
        if not sep:
            continue
        if name.endswith("[]"):
            items = values.setdefault(name[:-2], [])
            if isinstance(items, list):
                items.append(value)
        else:
            values[name] = value
    for name in LIST_FACTS:
        values.setdefault(name, [])
    if not ended:
        raise HarnessError(
            f"the probe stopped before '{END_MARKER}'; its output was:\n{output[-2000:]}"
        )
    return values
