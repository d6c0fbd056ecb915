"""A runtime with a CLI of its own, driven by the argv templates of a runtimes file.

The ``run`` template starts the container in the foreground. Its
placeholders:

- ``{rootfs}``: a copy of the probe image's root directory, made for each container;
- ``{image}``: the image reference that the engines use;
- ``{name}``: a container name that carries the run id;
- ``{run_id}``: the run's id;
- ``{argv}``: the command, one element per argument;
- ``{options}``: the arguments of the request's fields, from the ``options`` table.

Arguments never pass through a shell.

A request that sets a field the file does not list in ``fields`` cannot be
expressed, so the check is skipped with that reason, never passed.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any

from isobench import commands
from isobench.errors import HarnessError, IsobenchError
from isobench.model import Request, capability_name
from isobench.runtimes.base import Adapter, Availability, Context, Launched, popen
from isobench.runtimes.declared import LIST_FIELDS, TemplateRuntime

_DEFAULT = Request()


class TemplateAdapter(Adapter):
    """Runs containers through a declared CLI: run, and optionally pid, exec, stop, remove."""

    family = "template"

    def __init__(self, name: str, spec: TemplateRuntime, source: str = "") -> None:
        self.name = name
        self.spec = spec
        self.source = source
        self._availability: Availability | None = None

    # -- discovery -------------------------------------------------------

    def availability(self) -> Availability:
        if self._availability is None:
            self._availability = self._check_availability()
        return self._availability

    def _check_availability(self) -> Availability:
        binary = shutil.which(self.spec.run[0])
        hint = f"Install it, or fix the run template of '{self.name}' in {self.source}."
        if binary is None:
            return Availability(
                False, installed=False, reason=f"'{self.spec.run[0]}' not found", hint=hint
            )
        details = {"binary": binary}
        if not self.spec.version:
            return Availability(True, version="unknown", details=details)
        try:
            result = commands.run(self._fill(self.spec.version, {}), timeout=30)
        except IsobenchError as exc:
            return Availability(False, reason=str(exc), hint=hint)
        lines = (result.stdout or result.stderr).strip().splitlines()
        return Availability(True, version=lines[0] if lines else "unknown", details=details)

    def unsupported(self, request: Request) -> str | None:
        for field in Request.model_fields:
            if field in self.spec.fields or field == "image":
                continue
            if getattr(request, field) != getattr(_DEFAULT, field):
                return (
                    f"{self.name} declares no way to express '{field}' (its template in "
                    f"{self.source} lists {', '.join(self.spec.fields) or 'no field'})"
                )
        for field, option in self.spec.options.items():
            if isinstance(option, dict):
                value = _text(getattr(request, field))
                if value not in option:
                    return (
                        f"{self.name} declares no arguments for {field}={value} in "
                        f"{self.source} (it has {', '.join(option)})"
                    )
        return None

    # -- containers ------------------------------------------------------

    def launch(
        self, ctx: Context, request: Request, argv: Sequence[str], env: dict[str, str]
    ) -> Launched:
        image = ctx.image_for(request)
        name = ctx.container_name(self.name)
        # Each container gets a copy of the image's root, as an OCI bundle does, so that
        # what one container writes reaches neither the image nor the next container.
        directory = ctx.bundle_root / name
        entries = [
            ctx.journal.record(
                "bundle", str(directory), ["rm", "-rf", str(directory)], runtime=self.name
            )
        ]
        directory.mkdir(parents=True)
        rootfs = directory / "rootfs"
        shutil.copytree(image.rootfs, rootfs, symlinks=True)
        values = {"name": name, "rootfs": str(rootfs), "image": image.reference}
        values["run_id"] = ctx.run_id
        if self.spec.remove:
            entries.append(
                ctx.journal.record(
                    "container", name, self._fill(self.spec.remove, values), runtime=self.name
                )
            )
        options = list(self._options(request, env, values))
        command = self._fill(self.spec.run, values, argv=argv, options=options)
        process = popen(command)
        return Launched(name=name, process=process, argv=command, entries=entries)

    def _values(self, ctx: Context, launched: Launched) -> dict[str, str]:
        return {"name": launched.name, "run_id": ctx.run_id, "rootfs": "", "image": ""}

    def host_pid(self, ctx: Context, launched: Launched) -> int | None:
        if not self.spec.pid:
            return None
        command = self._fill(self.spec.pid, self._values(ctx, launched))
        launched.commands.append(shlex.join(command))
        result = commands.run(command, timeout=30, check=False)
        try:
            return int(result.stdout.strip()) or None
        except ValueError:
            return None

    def exec_output(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> str:
        if not self.spec.exec:
            return super().exec_output(ctx, launched, argv)
        command = self._fill(self.spec.exec, self._values(ctx, launched), argv=argv)
        launched.commands.append(shlex.join(command))
        return commands.run(command, timeout=60).stdout

    def exec_detached(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> None:
        if not self.spec.exec:
            super().exec_detached(ctx, launched, argv)
            return
        command = self._fill(self.spec.exec, self._values(ctx, launched), argv=argv)
        launched.commands.append(shlex.join(command))
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        launched.groups.append(child.pid)

    def can_exec(self) -> bool:
        return bool(self.spec.exec)

    def stop(self, ctx: Context, launched: Launched, grace_s: float) -> None:
        if not self.spec.stop:
            super().stop(ctx, launched, grace_s)
            return
        values = self._values(ctx, launched)
        values["grace"] = f"{grace_s:g}"
        command = self._fill(self.spec.stop, values)
        launched.commands.append(shlex.join(command))
        commands.run(command, timeout=60 + grace_s, check=False)

    def finish(self, ctx: Context, launched: Launched) -> None:
        for group in launched.groups:
            # exec_detached started each in a session of its own, so the group id is its pid.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        super().finish(ctx, launched)

    # -- templates -------------------------------------------------------

    def _options(
        self, request: Request, env: dict[str, str], values: dict[str, str]
    ) -> Iterator[str]:
        for field, option in self.spec.options.items():
            value = getattr(request, field)
            if isinstance(option, dict):
                yield from self._fill(option[_text(value)], values)
                continue
            if field == "env":
                pairs = [*env.items(), *request.env]
                for key, text in pairs:
                    yield from self._fill(option, {**values, "key": key, "value": text})
                continue
            if value == getattr(_DEFAULT, field):
                continue
            if field in LIST_FIELDS:
                for element in value:
                    yield from self._fill(option, {**values, **_element(field, element)})
            else:
                yield from self._fill(option, {**values, "value": _text(value)})

    def _fill(
        self,
        template: Sequence[str],
        values: dict[str, str],
        argv: Sequence[str] = (),
        options: Sequence[str] = (),
    ) -> list[str]:
        filled: list[str] = []
        for argument in template:
            if argument == "{argv}":
                filled += list(argv)
            elif argument == "{options}":
                filled += list(options)
            else:
                try:
                    filled.append(argument.format_map(values))
                except (KeyError, IndexError, ValueError) as exc:
                    raise HarnessError(
                        f"{self.name}: template argument {argument!r} in {self.source} has no "
                        f"value for {exc}"
                    ) from None
        return filled


def _text(value: Any) -> str:
    """Return a request value as a template argument: booleans in lower case, sizes in bytes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _element(field: str, element: Any) -> dict[str, str]:
    if field == "mounts":
        return {
            "source": str(element.source),
            "target": str(element.target),
            "mode": "ro" if element.read_only else "rw",
        }
    if field == "tmpfs":
        return {"target": str(element.target), "size": _text(element.size)}
    if field == "ulimits":
        return {"name": element.name, "soft": str(element.soft), "hard": str(element.hard)}
    if field in ("cap_add", "cap_drop"):
        cap = capability_name(str(element))
        return {"value": str(element), "cap": "ALL" if cap == "CAP_ALL" else cap}
    return {"value": _text(element)}
