"""Bandwidth limits: request parsing, translation per family, device lookup, printed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from isobench.checks import _printed_values
from isobench.errors import HarnessError
from isobench.model import Request
from isobench.probe.host import block_device
from isobench.runtimes.engine import DOCKER, EngineAdapter
from isobench.runtimes.oci import build_config

LIMIT = Request(device_write_bps="1m", device_read_bps="2m")


def test_request_units_bytes() -> None:
    assert int(LIMIT.device_write_bps or 0) == 1024 * 1024
    assert int(LIMIT.device_read_bps or 0) == 2 * 1024 * 1024


def test_oci_block_io_rates() -> None:
    config = build_config(LIMIT, ["true"], {}, device=("/dev/vda", 254, 0))

    block_io = config["linux"]["resources"]["blockIO"]
    assert block_io["throttleWriteBpsDevice"] == [{"major": 254, "minor": 0, "rate": 1048576}]
    assert block_io["throttleReadBpsDevice"] == [{"major": 254, "minor": 0, "rate": 2097152}]


def test_oci_no_block_io_unrequested() -> None:
    config = build_config(Request(), ["true"], {}, device=("/dev/vda", 254, 0))

    assert "blockIO" not in config["linux"]["resources"]


def test_engine_device_options() -> None:
    adapter = EngineAdapter(DOCKER)
    adapter._device = "/dev/vda"

    options = adapter.run_options(LIMIT)

    assert options[options.index("--device-write-bps") + 1] == "/dev/vda:1048576"
    assert options[options.index("--device-read-bps") + 1] == "/dev/vda:2097152"


def test_engine_device_unknown_raises() -> None:
    with pytest.raises(HarnessError, match="block device"):
        EngineAdapter(DOCKER).run_options(LIMIT)


def test_printed_values_parsed() -> None:
    stdout = "hello\nisobench-value seconds 3.01\nisobench-value bytes 3145728\n"

    assert _printed_values(stdout) == {"seconds": "3.01", "bytes": "3145728"}


def test_printed_values_none() -> None:
    assert _printed_values("isobench-valueless 1\n") == {}


def test_block_device_real_root() -> None:
    path, major, _ = block_device(Path("/"))

    assert path.startswith("/dev/")
    assert major > 0


def test_block_device_missing_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="not on a block device"):
        block_device(tmp_path, sys_dev_block=tmp_path / "nothing")


def test_used_cpus_pinned() -> None:
    from isobench.probe.cgroups import _used_cpus

    assert _used_cpus("1000 2000000000") == "1"


def test_used_cpus_spread() -> None:
    from isobench.probe.cgroups import _used_cpus

    assert _used_cpus("900000000 1100000000") == "0 1"


def test_used_cpus_idle() -> None:
    from isobench.probe.cgroups import _used_cpus

    assert _used_cpus("0 0") == ""
