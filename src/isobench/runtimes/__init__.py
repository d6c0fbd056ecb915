"""Runtime adapters: a registry of rows by name, loaded lazily.

The rows come from four places, looked up in this order:

1. the built-in rows below;
2. the rows of runtimes files (isobench.runtimes.declared);
3. adapters that other packages register under the entry point group
   ``isobench.runtimes``;
4. ``docker+NAME`` or ``podman+NAME``, for another OCI runtime of an engine.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from isobench import hosts
from isobench.errors import UnknownRuntimeError, UsageError
from isobench.runtimes import declared as declared_module
from isobench.runtimes.base import Adapter, LocalOnly

log = logging.getLogger(__name__)

#: The entry point group of adapters from other packages. An entry point's name
#: is the row name, and its object is an Adapter subclass, called without
#: arguments, or a function that takes the row name and returns an Adapter.
ENTRY_POINT_GROUP = "isobench.runtimes"


def _docker() -> Adapter:
    from isobench.runtimes.engine import DOCKER, EngineAdapter

    return EngineAdapter(DOCKER)


def _docker_runsc() -> Adapter:
    from isobench.runtimes.engine import DOCKER, EngineAdapter

    return EngineAdapter(DOCKER, oci_runtime="runsc")


def _podman_runsc() -> Adapter:
    from isobench.runtimes.engine import PODMAN, EngineAdapter

    return EngineAdapter(PODMAN, oci_runtime="runsc")


def _podman() -> Adapter:
    from isobench.runtimes.engine import PODMAN, EngineAdapter

    return EngineAdapter(PODMAN, oci_runtime="runc")


def _runc() -> Adapter:
    from isobench.runtimes.oci import RUNC, OciAdapter

    return OciAdapter(RUNC)


def _crun() -> Adapter:
    from isobench.runtimes.oci import CRUN, OciAdapter

    return OciAdapter(CRUN)


#: Built-in rows that a command template expresses, in the format of a runtimes file.
BUILTIN_FILE = Path(__file__).with_name("builtin.toml")


def _bwrap() -> Adapter:
    from isobench.runtimes.bwrap import BwrapAdapter

    row = declared_module.load_file(BUILTIN_FILE)["bwrap"]
    assert isinstance(row.spec, declared_module.TemplateRuntime)
    return BwrapAdapter("bwrap", row.spec, row.source)


def _isobox() -> Adapter:
    from isobench.runtimes.oci import ISOBOX, OciAdapter

    return OciAdapter(ISOBOX)


def _runsc() -> Adapter:
    from isobench.runtimes.oci import RUNSC, OciAdapter

    return OciAdapter(RUNSC)


def _host() -> Adapter:
    from isobench.runtimes.host import HostAdapter

    return HostAdapter()


def _containerd() -> Adapter:
    from isobench.runtimes.containerd import ContainerdAdapter

    return ContainerdAdapter()


def _lxc() -> Adapter:
    from isobench.runtimes.lxc import LxcAdapter

    return LxcAdapter()


def _nspawn() -> Adapter:
    from isobench.runtimes.nspawn import NspawnAdapter

    return NspawnAdapter()


def _compose() -> Adapter:
    from isobench.runtimes.compose import ComposeAdapter

    return ComposeAdapter()


def _swarm() -> Adapter:
    from isobench.runtimes.swarm import SwarmAdapter

    return SwarmAdapter()


def _stack() -> Adapter:
    from isobench.runtimes.swarm import StackAdapter

    return StackAdapter()


#: Built-in rows, in the order reports list them.
BUILTIN: dict[str, Callable[[], Adapter]] = {
    "docker": _docker,
    "podman": _podman,
    "runc": _runc,
    "runsc": _runsc,
    "crun": _crun,
    "docker+runsc": _docker_runsc,
    "podman+runsc": _podman_runsc,
    "isobox": _isobox,
    "containerd": _containerd,
    "compose": _compose,
    "swarm": _swarm,
    "stack": _stack,
    "bwrap": _bwrap,
    "lxc": _lxc,
    "systemd-nspawn": _nspawn,
    "host": _host,
}

#: Engines whose rows may name another OCI runtime registered with them: ``ENGINE+RUNTIME``.
ENGINES = ("docker", "podman")

_cache: dict[str, Adapter] = {}


def sources() -> dict[str, str]:
    """Return every row name with where it comes from: built-in, a file:line, or an entry point."""
    found = dict.fromkeys(BUILTIN, "built-in")
    for name, row in _declared().items():
        found[name] = row.source
    for name, point in _entry_points().items():
        found.setdefault(name, f"entry point {point.value}")
    return found


def names() -> list[str]:
    return list(sources())


def get(name: str) -> Adapter:
    """Return the adapter for a row name; raise UnknownRuntimeError for any other name.

    Besides the rows of :func:`names`, ``docker+NAME`` and ``podman+NAME`` select
    an engine with another OCI runtime: one registered in dockerd's daemon.json,
    or a runtime name or path that podman accepts. Whether that runtime exists is
    the adapter's availability, not a usage error.
    """
    if name not in _cache:
        adapter = _make(name)
        host = hosts.current()
        if not host.is_local and not adapter.remote_ready:
            adapter = LocalOnly(adapter, host.spec)
        _cache[name] = adapter
    return _cache[name]


@contextlib.contextmanager
def fresh() -> Iterator[None]:
    """Make new adapters within the block, and give back the ones made before it after.

    For a block that checks another host: an adapter keeps what it found on the
    host it was made for, and a harness that prepared one must get the same one
    again.
    """
    saved = dict(_cache)
    _cache.clear()
    try:
        yield
    finally:
        _cache.clear()
        _cache.update(saved)


def reset() -> None:
    """Forget the adapters made so far, so that runtimes files and entry points are read again."""
    _cache.clear()
    _declared_cache.clear()
    _entry_points.cache_clear()


def _make(name: str) -> Adapter:
    if name in BUILTIN:
        return BUILTIN[name]()
    declared = _declared()
    if name in declared:
        return _from_declared(declared[name])
    points = _entry_points()
    if name in points:
        return _from_entry_point(name, points[name])
    engine, plus, oci_runtime = name.partition("+")
    if plus and engine in ENGINES and oci_runtime and oci_runtime.strip() == oci_runtime:
        from isobench.runtimes.engine import DOCKER, PODMAN, EngineAdapter

        return EngineAdapter(DOCKER if engine == "docker" else PODMAN, oci_runtime=oci_runtime)
    raise UnknownRuntimeError(name, names())


_FileKey = tuple[tuple[str, int, int], ...]
_declared_cache: dict[_FileKey, dict[str, declared_module.DeclaredRow]] = {}


def _declared() -> dict[str, declared_module.DeclaredRow]:
    """Return the rows of the runtimes files, read again only when a file changed."""
    paths = declared_module.default_paths()
    key = tuple(_file_key(path) for path in paths)
    if key not in _declared_cache:
        _declared_cache.clear()
        _declared_cache[key] = declared_module.load(paths, list(BUILTIN))
    return _declared_cache[key]


def _file_key(path: Path) -> tuple[str, int, int]:
    try:
        status = path.stat()
    except OSError:
        return (str(path), -1, -1)
    return (str(path), status.st_mtime_ns, status.st_size)


def _from_declared(row: declared_module.DeclaredRow) -> Adapter:
    spec = row.spec
    if isinstance(spec, declared_module.OciRuntime):
        from isobench.runtimes.oci import OciAdapter, OciProfile

        profile = OciProfile(
            runtime=row.name,
            binary_env="",
            global_flags=tuple(spec.global_flags),
            cannot=dict(spec.cannot),
            install_hint=f"Install it, or fix its path in {row.source}.",
            lifecycle=spec.lifecycle,
            exec=spec.exec,
        )
        return OciAdapter(profile, binary=spec.path)
    from isobench.runtimes.template import TemplateAdapter

    return TemplateAdapter(row.name, spec, row.source)


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    points: dict[str, EntryPoint] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in BUILTIN:
            log.warning(
                "ignoring the entry point %s = %s: %s is a built-in runtime row",
                point.name,
                point.value,
                point.name,
            )
            continue
        points.setdefault(point.name, point)
    return points


def _from_entry_point(name: str, point: EntryPoint) -> Adapter:
    try:
        factory = point.load()
    except Exception as exc:  # any import error of a third-party package
        raise UsageError(
            f"runtime '{name}': loading the entry point {point.value} failed: {exc}. "
            "Fix or uninstall the package that registers it."
        ) from exc
    adapter = factory(name) if not isinstance(factory, type) else factory()
    if not isinstance(adapter, Adapter):
        raise UsageError(
            f"runtime '{name}': the entry point {point.value} returned "
            f"{type(adapter).__name__}, not an isobench Adapter"
        )
    adapter.name = name
    return adapter
