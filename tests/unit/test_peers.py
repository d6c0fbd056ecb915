"""Reading a container's addresses and listeners from /proc, for the network suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from isobench import peers
from isobench.errors import HarnessError

FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
     +-- 172.17.0.0/16 2 0 2
        |-- 172.17.0.0
           /16 link UNICAST
        |-- 172.17.0.2
           /32 host LOCAL
        |-- 172.17.255.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
        |-- 172.17.0.2
           /32 host LOCAL
        |-- 10.9.0.1
           /32 host LOCAL
"""

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0
   1: 0100007F:0050 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0
"""
TCP6 = """  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A
"""


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    net = tmp_path / "42" / "net"
    net.mkdir(parents=True)
    (net / "fib_trie").write_text(FIB_TRIE)
    (net / "tcp").write_text(TCP)
    (net / "tcp6").write_text(TCP6)
    return tmp_path


def test_local_addresses_skip_loopback_and_repeats(proc: Path) -> None:
    assert peers.local_addresses(42, proc) == ["10.9.0.1", "172.17.0.2"]


def test_local_addresses_of_gone_process(proc: Path) -> None:
    with pytest.raises(HarnessError, match="process 43"):
        peers.local_addresses(43, proc)


def test_listening_ports_ipv4_and_ipv6(proc: Path) -> None:
    """Only sockets in LISTEN (0A) count: 8080 and 443, not the connected 80."""
    assert peers.listening_ports(42, proc) == {8080, 443}


def test_listener_stops_on_end_of_input() -> None:
    argv = peers.listener_argv(8080, 9090)

    assert argv[:2] == ["/bin/sh", "-c"]
    assert "nc -ll -p 8080" in argv[2]
    assert "nc -ll -p 9090" in argv[2]
    assert argv[2].index(peers.READY) < argv[2].index("read -r _")


def test_connect_refuses_other_addresses() -> None:
    with pytest.raises(HarnessError, match=r"192\.0\.2\.1: it is neither a loopback address"):
        peers.connect("192.0.2.1", 80)


def test_connect_answer_empty_when_refused() -> None:
    # Nothing listens on this port of 127.0.0.1, so the reply is empty, not an error.
    port = peers.free_port()

    assert peers.connect("127.0.0.1", port) == ""
