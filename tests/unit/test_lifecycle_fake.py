"""The argument handling of the lifecycle suite's faulty runtime (tests/data/fake-oci)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import REPO

FAKE = REPO / "tests" / "data" / "fake-oci" / "fake-runc"


@pytest.fixture(scope="module")
def fake() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("fake_runc", str(FAKE))
    spec = importlib.util.spec_from_loader("fake_runc", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_split_after_global_options(fake: ModuleType) -> None:
    argv = ["--root", "/run/x", "--network=none", "--debug", "kill", "box", "USR1"]

    assert fake.split_command(argv) == (
        ["--root", "/run/x", "--network=none", "--debug"],
        "kill",
        ["box", "USR1"],
    )


def test_split_without_command(fake: ModuleType) -> None:
    assert fake.split_command(["--version"]) == (["--version"], "", [])


def test_option_value_forms(fake: ModuleType) -> None:
    assert fake.option_value(["--bundle", "/b", "box"], "--bundle", "-b") == "/b"
    assert fake.option_value(["-b", "/c", "box"], "--bundle", "-b") == "/c"
    assert fake.option_value(["--bundle=/d", "box"], "--bundle", "-b") == "/d"
    assert fake.option_value(["box"], "--bundle", "-b") is None


def test_drops_unknown_capabilities(fake: ModuleType) -> None:
    config: dict[str, Any] = {
        "process": {"capabilities": {"bounding": ["CAP_KILL", "CAP_ISOBENCH_UNKNOWN"]}}
    }

    fake.drop_unknown_capabilities(config)

    assert config["process"]["capabilities"]["bounding"] == ["CAP_KILL"]


def test_drops_unknown_namespaces(fake: ModuleType) -> None:
    config: dict[str, Any] = {"linux": {"namespaces": [{"type": "pid"}, {"type": "isobench"}]}}

    fake.drop_unknown_namespaces(config)

    assert config["linux"]["namespaces"] == [{"type": "pid"}]
