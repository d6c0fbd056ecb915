"""Fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from isobench import hosts, runtimes
from tests.unit.loopback import Loopback


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    """Make a Loopback host the run's host, with adapters of its own, within the test."""
    host = Loopback()
    before = hosts.use(host)
    try:
        with runtimes.fresh():
            yield host
    finally:
        hosts.use(before)
