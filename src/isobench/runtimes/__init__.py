"""Runtime adapters: a registry of rows by name, loaded lazily."""

from __future__ import annotations

from collections.abc import Callable

from isobench.errors import UnknownRuntimeError
from isobench.runtimes.base import Adapter


def _docker() -> Adapter:
    from isobench.runtimes.engine import DOCKER, EngineAdapter

    return EngineAdapter(DOCKER)


def _docker_runsc() -> Adapter:
    from isobench.runtimes.engine import DOCKER, EngineAdapter

    return EngineAdapter(DOCKER, oci_runtime="runsc")


def _podman() -> Adapter:
    from isobench.runtimes.engine import PODMAN, EngineAdapter

    return EngineAdapter(PODMAN, oci_runtime="runc")


def _runc() -> Adapter:
    from isobench.runtimes.oci import RUNC, OciAdapter

    return OciAdapter(RUNC)


def _runsc() -> Adapter:
    from isobench.runtimes.oci import RUNSC, OciAdapter

    return OciAdapter(RUNSC)


def _host() -> Adapter:
    from isobench.runtimes.host import HostAdapter

    return HostAdapter()


#: Built-in rows, in the order reports list them.
BUILTIN: dict[str, Callable[[], Adapter]] = {
    "docker": _docker,
    "podman": _podman,
    "runc": _runc,
    "runsc": _runsc,
    "docker+runsc": _docker_runsc,
    "host": _host,
}

_cache: dict[str, Adapter] = {}


def names() -> list[str]:
    return list(BUILTIN)


def get(name: str) -> Adapter:
    """Return the adapter for a row name; raise UnknownRuntimeError for any other name."""
    if name not in BUILTIN:
        raise UnknownRuntimeError(name, names())
    if name not in _cache:
        _cache[name] = BUILTIN[name]()
    return _cache[name]
