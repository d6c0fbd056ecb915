"""Tests of isobench.model.Request: frozen, hashable, strict about fields, and its describe()."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from isobench.model import Request


def test_request_equal_hash_equal() -> None:
    first = Request(hostname="box", pid="host", cap_add=("SYS_ADMIN",))
    second = Request(hostname="box", pid="host", cap_add=("SYS_ADMIN",))

    assert first == second
    assert hash(first) == hash(second)


def test_request_explicit_defaults_equal() -> None:
    explicit = Request(pid="private", network="none", userns="host")

    assert explicit == Request()
    assert hash(explicit) == hash(Request())


def test_request_set_deduplicates() -> None:
    requests = {Request(), Request(), Request(network="host"), Request(network="host")}

    assert len(requests) == 2


def test_request_differs_by_field() -> None:
    assert Request(ipc="host") != Request()


def test_request_env_lists_hashable() -> None:
    request = Request.model_validate({"env": [["A", "1"], ["B", "2"]]})

    assert request.env == (("A", "1"), ("B", "2"))
    assert hash(request) == hash(Request(env=(("A", "1"), ("B", "2"))))


def test_request_frozen() -> None:
    request = Request()

    with pytest.raises(ValidationError):
        request.hostname = "changed"  # type: ignore[misc]


def test_request_extra_field() -> None:
    with pytest.raises(ValidationError) as info:
        Request.model_validate({"hostnme": "box"})

    assert info.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    ("field", "value"),
    [("pid", "shared"), ("network", "bridge"), ("cgroupns", "yes"), ("userns", "remap")],
)
def test_request_invalid_choice(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        Request.model_validate({field: value})


def test_describe_defaults() -> None:
    assert Request().describe() == "defaults"


def test_describe_explicit_defaults() -> None:
    assert Request(pid="private").describe() == "defaults"


def test_describe_sorted_fields() -> None:
    request = Request(uts="host", hostname="box", cgroupns="private")

    assert request.describe() == "cgroupns=private, hostname=box, uts=host"


def test_describe_tuple_field() -> None:
    assert Request(cap_drop=("ALL",)).describe() == "cap_drop=('ALL',)"


@pytest.mark.parametrize("user", ["0", "1000", "1000:2000"])
def test_request_numeric_user(user: str) -> None:
    assert Request(user=user).user == user


@pytest.mark.parametrize("user", ["nobody", "1000:staff", ":1000"])
def test_request_rejects_user_name(user: str) -> None:
    # The field is documented as "uid or uid:gid", and build_config calls
    # int() on both parts.
    with pytest.raises(ValidationError):
        Request(user=user)
