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


#: Engines whose rows may name any other OCI runtime the engine knows: ``ENGINE+RUNTIME``.
ENGINES = ("docker", "podman")


def get(name: str) -> Adapter:
    """Return the adapter for a row name; raise UnknownRuntimeError for any other name.

    Besides the built-in rows, ``docker+NAME`` and ``podman+NAME`` select an
    engine with another OCI runtime: one registered in dockerd's daemon.json,
    or a runtime name or path that podman accepts. Whether that runtime exists
    is the adapter's availability, not a usage error.
    """
    if name not in _cache:
        _cache[name] = _make(name)
    return _cache[name]


def _make(name: str) -> Adapter:
    if name in BUILTIN:
        return BUILTIN[name]()
    engine, plus, oci_runtime = name.partition("+")
    if plus and engine in ENGINES and oci_runtime and oci_runtime.strip() == oci_runtime:
        from isobench.runtimes.engine import DOCKER, PODMAN, EngineAdapter

        return EngineAdapter(DOCKER if engine == "docker" else PODMAN, oci_runtime=oci_runtime)
    raise UnknownRuntimeError(name, names())
