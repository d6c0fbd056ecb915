"""Network isolation: modes, traffic between containers, published ports and name files.

Each check starts its containers through the row's adapter and judges what
the kernel and the files show. The ``host`` row, whose processes share the
host's network, is the negative control of every isolation check here: it
must fail them. All traffic stays on this machine: the host's loopback
addresses, and the containers and networks that the check makes and removes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from isobench import peers
from isobench.errors import HarnessError
from isobench.model import Request
from isobench.peers import Net
from isobench.spec.loader import load_suite

#: The suite this module belongs to, for the records.
SUITE = "network"

#: Request fields of the name-file checks. The name server is a loopback address, so
#: that even a query that nothing here makes would stay inside the container.
HOSTNAME = "isobench-box"
ADDED_HOST = {"name": "db.isobench.test", "address": "10.254.0.2"}
NAME_SERVER = "127.0.0.53"
SEARCH_DOMAIN = "isobench.test"
#: The check of the namespaces suite that covers the host's loopback listener.
LOOPBACK_CHECK = ("namespaces.yaml", "net-host-loopback-unreachable")

#: Rows whose default capabilities keep CAP_NET_RAW: the raw socket check reports them.
RAW_BY_DEFAULT = {
    "docker": "docker 20.10's default capability set keeps CAP_NET_RAW (docker run "
    "reference, runtime privilege and Linux capabilities); podman 4 leaves it out",
    "runc": "the bundles that isobench writes for OCI rows have docker's default "
    "capability set, CAP_NET_RAW included",
    "crun": "the bundles that isobench writes for OCI rows have docker's default "
    "capability set, CAP_NET_RAW included",
    "isobox": "the bundles that isobench writes for OCI rows have docker's default "
    "capability set, CAP_NET_RAW included",
    "containerd": "ctr's default spec keeps CAP_NET_RAW",
    "bwrap": "bwrap run as root keeps every capability of its caller",
    "lxc": "Debian's LXC common.conf drops a few capabilities (lxc.cap.drop), not CAP_NET_RAW",
    "systemd-nspawn": "systemd-nspawn's default capability set keeps CAP_NET_RAW",
    "compose": "Compose leaves the capabilities to docker, whose default set keeps CAP_NET_RAW",
    "swarm": "a swarm task's container gets docker's default capability set, which keeps "
    "CAP_NET_RAW",
    "stack": "a swarm task's container gets docker's default capability set, which keeps "
    "CAP_NET_RAW",
}

NSPAWN_HOST_NETWORK = (
    "systemd-nspawn's default network is the host's: without --private-network or "
    "--network-* options the container stays in the host's network namespace"
)
#: The network that the swarm and stack rows give a request for network none.
SWARM_NO_NONE = (
    "a swarm service cannot join docker's 'none' network, so the row attaches it to an "
    "internal overlay network of the run instead: the task has eth0 on that network "
    "beside lo, and a route to the network's subnet (no default route)"
)
#: Why the requested name server is not in /etc/resolv.conf on rows that attach the
#: container to a user-defined network of their own.
EMBEDDED_DNS = (
    "{layer} attaches the container to a user-defined network ({network}), where docker "
    "writes its embedded name server 127.0.0.11 into /etc/resolv.conf and forwards "
    "queries to the requested server"
)
NSPAWN_NO_NAME_FILES = (
    "systemd-nspawn sets the kernel's hostname (--hostname) but writes neither /etc/hostname "
    "nor /etc/hosts: the image's files stay"
)

CANNOT: dict[str, dict[str, str]] = {
    "test_hostname_file_has_request": {"systemd-nspawn": NSPAWN_NO_NAME_FILES},
    "test_hosts_maps_own_name": {"systemd-nspawn": NSPAWN_NO_NAME_FILES},
}

DEVIATIONS: dict[str, dict[str, str]] = {
    "test_raw_socket_refused_by_default": RAW_BY_DEFAULT,
    "test_mode_default_own_address": {"systemd-nspawn": NSPAWN_HOST_NETWORK},
    "test_mode_none_loopback_only": {"swarm": SWARM_NO_NONE, "stack": SWARM_NO_NONE},
    "test_resolv_conf_has_request": {
        "compose": EMBEDDED_DNS.format(layer="Compose", network="the project's default network"),
        "stack": EMBEDDED_DNS.format(
            layer="docker stack deploy", network="the stack's overlay network"
        ),
    },
    "test_peers_other_network_unreachable": {
        "podman": "podman 4.3 does not separate its bridge networks from each other: only "
        "networks made with the isolate option are (podman-network-create(1)), and a "
        "container on one network reached a listener of a container on another",
    },
}

NEGATIVE_CONTROLS = ("host",)


def default_network(**fields: object) -> Request:
    return Request.model_validate({"network": "default", **fields})


# -- modes ----------------------------------------------------------------------------


def test_mode_none_loopback_only(net: Net) -> None:
    """With network none, the container has only a loopback interface and no route."""
    facts = net.harness.probe(net.adapter, net.require(Request(network="none")))

    names = facts.get("net.if.names")
    routes = facts.get("net.route")
    assert names == ["lo"], f"interfaces: expected ['lo'], observed {names}"
    assert not routes, f"IPv4 routes: expected none, observed {routes}"


def test_mode_default_own_address(net: Net) -> None:
    """On the default network, the container has an address of its own, none of the host's."""
    request = net.require(default_network())
    host = peers.local_addresses()

    with peers.serving(net.harness, net.adapter, request, peers.free_port()) as server:
        addresses = server.addresses

    assert addresses, "IPv4 addresses of the container: expected one at least, observed none"
    shared = sorted(set(addresses) & set(host))
    assert not shared, (
        f"addresses of the container that the host has too: expected none, observed {shared} "
        f"(container {addresses}, host {host})"
    )


# -- between containers ------------------------------------------------------------------


def test_peers_same_network_reach(net: Net) -> None:
    """Two containers on one network of the check's reach each other's listener."""
    network = net.network()
    request = net.require(default_network(network_name=network))
    port = peers.free_port()

    with peers.serving(net.harness, net.adapter, request, port) as server:
        address = first_address(server)
        reached, execution = peers.reached_from_container(
            net.harness, net.adapter, request, address, port
        )

    assert reached, (
        f"a listener at {address}:{port} on network {network}, from a peer on it: expected "
        f"an answer, observed none (client stdout {execution.result.stdout!r}, stderr "
        f"{execution.result.stderr.strip()[-300:]!r})"
    )


# The host row's processes reach each other too: this check has no negative control.
test_peers_same_network_reach.negative_controls = ()  # type: ignore[attr-defined]


def test_peers_other_network_unreachable(net: Net) -> None:
    """A container cannot reach a listener of a container on another network."""
    first = net.network()
    second = net.network()
    port = peers.free_port()
    serving_request = net.require(default_network(network_name=first))
    client_request = net.require(default_network(network_name=second))

    with peers.serving(net.harness, net.adapter, serving_request, port) as server:
        address = first_address(server)
        reached, execution = peers.reached_from_container(
            net.harness, net.adapter, client_request, address, port
        )

    assert not reached, (
        f"a listener at {address}:{port} on network {first}, from a container on {second}: "
        f"expected no answer, observed {execution.result.stdout.strip()!r}"
    )


def test_peers_no_icc_unreachable(net: Net) -> None:
    """On a network with traffic between its containers turned off, they cannot reach
    each other."""
    network = net.network(peer_traffic=False)
    request = net.require(default_network(network_name=network))
    port = peers.free_port()

    with peers.serving(net.harness, net.adapter, request, port) as server:
        address = first_address(server)
        reached, execution = peers.reached_from_container(
            net.harness, net.adapter, request, address, port
        )

    assert not reached, (
        f"a listener at {address}:{port} on {network}, which has traffic between its "
        f"containers off, from a peer on it: expected no answer, observed "
        f"{execution.result.stdout.strip()!r}"
    )


def test_host_loopback_unreachable(net: Net) -> None:
    """A container on its own network cannot reach a listener on the host's 127.0.0.1.

    This is the namespaces suite's check, run from here so that it counts in this
    suite too.
    """
    suite_file, check_id = LOOPBACK_CHECK
    loaded = next(
        check
        for check in load_suite(Path(__file__).parents[1] / suite_file).checks
        if check.id == check_id
    )

    verdict = net.harness.evaluate(loaded, net.runtime)

    where = f"{suite_file}:{loaded.line} ({check_id})"
    if verdict.outcome == "skip":
        pytest.skip(verdict.message)
    if verdict.outcome == "error":
        raise HarnessError(f"{where}: {verdict.message}")
    if verdict.outcome == "xfail":
        pytest.xfail(f"{where}: {verdict.message}")
    assert verdict.outcome == "pass", (
        f"{where}: expected {verdict.expected}, observed {verdict.observed} {verdict.message}"
    )


# -- published ports ----------------------------------------------------------------------


def published(port: int) -> Request:
    """A request that publishes ``port`` on 127.0.0.1 as the same port number."""
    return default_network(publish=[{"host_port": port, "container_port": port}])


def test_publish_answers_on_bound_address(net: Net) -> None:
    """A port published on 127.0.0.1 answers there."""
    port = peers.free_port()
    request = net.require(published(port))

    with peers.serving(net.harness, net.adapter, request, port):
        answer = peers.connect("127.0.0.1", port)

    assert peers.PONG in answer, (
        f"127.0.0.1:{port}, published to the container's port {port}: expected "
        f"{peers.PONG!r}, observed {answer!r}"
    )


# The host row's listener accepts connections on every host address, so this check has no
# negative control.
test_publish_answers_on_bound_address.negative_controls = ()  # type: ignore[attr-defined]


def test_publish_only_on_bound_address(net: Net) -> None:
    """A port published on 127.0.0.1 does not answer on another host address (127.0.0.2)."""
    port = peers.free_port()
    request = net.require(published(port))

    with peers.serving(net.harness, net.adapter, request, port):
        bound = peers.connect("127.0.0.1", port)
        other = peers.connect("127.0.0.2", port)

    if peers.PONG not in bound:
        raise HarnessError(
            f"the published port 127.0.0.1:{port} did not answer ({bound!r}), so whether it "
            "answers elsewhere tells nothing"
        )
    assert peers.PONG not in other, (
        f"127.0.0.2:{port}, with the port published on 127.0.0.1 only: expected no answer, "
        f"observed {other!r}"
    )


def test_unpublished_port_closed(net: Net) -> None:
    """A port the container listens on but does not publish does not answer on the host."""
    port = peers.free_port()
    hidden = peers.free_port()
    request = net.require(published(port))

    with peers.serving(net.harness, net.adapter, request, port, hidden):
        shown = peers.connect("127.0.0.1", port)
        answer = peers.connect("127.0.0.1", hidden)

    if peers.PONG not in shown:
        raise HarnessError(
            f"the published port 127.0.0.1:{port} did not answer ({shown!r}), so the "
            "unpublished one tells nothing"
        )
    assert peers.PONG not in answer, (
        f"127.0.0.1:{hidden}, which the container listens on without publishing it: "
        f"expected no answer, observed {answer!r}"
    )


# -- names ------------------------------------------------------------------------------


def test_hosts_has_added_host(net: Net) -> None:
    """An added host is a line of the container's /etc/hosts."""
    request = default_network(add_hosts=[ADDED_HOST])

    hosts = net.output(request, ["cat", "/etc/hosts"])

    entries = [line.split() for line in hosts.splitlines() if not line.startswith("#")]
    expected = [ADDED_HOST["address"], ADDED_HOST["name"]]
    assert expected in [entry[:2] for entry in entries], (
        f"/etc/hosts: expected the line '{' '.join(expected)}', observed {hosts!r}"
    )


def test_resolv_conf_has_request(net: Net) -> None:
    """The container's /etc/resolv.conf names the requested name server and search domain."""
    request = default_network(dns=[NAME_SERVER], dns_search=[SEARCH_DOMAIN])

    resolv = net.output(request, ["cat", "/etc/resolv.conf"])

    lines = [line.split() for line in resolv.splitlines()]
    servers = [line[1] for line in lines if len(line) > 1 and line[0] == "nameserver"]
    search = [domain for line in lines if line[:1] == ["search"] for domain in line[1:]]
    assert servers == [NAME_SERVER], (
        f"name servers in /etc/resolv.conf: expected [{NAME_SERVER!r}], observed {servers}"
    )
    assert SEARCH_DOMAIN in search, (
        f"search domains in /etc/resolv.conf: expected {SEARCH_DOMAIN!r}, observed {search}"
    )


def test_hostname_file_has_request(net: Net) -> None:
    """/etc/hostname and the kernel's hostname are the requested hostname."""
    request = default_network(hostname=HOSTNAME)

    output = net.output(request, ["sh", "-c", "cat /etc/hostname; echo; hostname"])

    lines = [line.strip() for line in output.splitlines() if line.strip()]
    assert lines == [HOSTNAME, HOSTNAME], (
        f"/etc/hostname, then hostname: expected [{HOSTNAME!r}, {HOSTNAME!r}], observed {lines}"
    )


def test_hosts_maps_own_name(net: Net) -> None:
    """The container's /etc/hosts maps its hostname to its own address."""
    request = net.require(default_network(hostname=HOSTNAME))

    output = net.output(
        request, ["sh", "-c", "cat /etc/hosts; echo isobench-addresses; ip -o -4 addr"]
    )

    hosts, _, addresses = output.partition("isobench-addresses")
    own = [
        field.split("/")[0]
        for line in addresses.splitlines()
        for previous, field in zip(line.split(), line.split()[1:], strict=False)
        if previous == "inet" and not field.startswith("127.")
    ]
    mapped = [
        line.split()[0]
        for line in hosts.splitlines()
        if not line.startswith("#") and HOSTNAME in line.split()[1:]
    ]
    assert own, f"addresses of the container: expected one at least, observed {addresses!r}"
    assert set(mapped) & set(own), (
        f"/etc/hosts lines for {HOSTNAME}: expected one with an address of the container "
        f"{own}, observed {mapped} in {hosts!r}"
    )


def test_peer_name_resolves(net: Net) -> None:
    """On a network of the check's, a container resolves a peer's name to its address,
    through a name server on this machine."""
    network = net.network()
    request = net.require(default_network(network_name=network))

    with peers.serving(net.harness, net.adapter, request, peers.free_port()) as server:
        address = first_address(server)
        # The network's bridge exists now, with the address of the engine's name server.
        on_this_machine = peers.local_addresses()
        resolv = net.output(request, ["cat", "/etc/resolv.conf"])
        servers = [
            line.split()[1]
            for line in resolv.splitlines()
            if line.startswith("nameserver") and len(line.split()) > 1
        ]
        local = [s for s in servers if s.startswith("127.") or s in on_this_machine]
        # The query names its server, so that it reaches no other one in the list.
        assert local, (
            f"name servers of a container on {network}: expected one on this machine (the "
            f"engine's own), observed {servers}, which no query of this check may reach"
        )
        lookup = net.attempt(request, ["nslookup", server.launched.name, local[0]])

    answer = lookup.result.stdout + lookup.result.stderr
    assert address in lookup.result.stdout, (
        f"nslookup {server.launched.name} {local[0]} from a peer on {network}: expected "
        f"{address}, observed {answer.strip()!r}"
    )


# -- raw sockets -------------------------------------------------------------------------

#: Opens a packet socket (which needs CAP_NET_RAW) and then stops at the loopback, which
#: has no ARP: no packet is sent either way. busybox's arping opens the socket first and
#: looks at the interface next, so its message tells which of the two stopped it.
RAW_SOCKET = ["sh", "-c", "arping -c 1 -w 1 -I lo 127.0.0.1 2>&1; true"]
RAW_REFUSED = "socket: Operation not permitted"
#: arping's message about the interface once its socket is open: lo is not ARPable, or down.
RAW_OPENED = "arping: interface lo"


def raw_socket(net: Net, request: Request) -> bool:
    """Return whether a container with ``request`` could open a packet socket."""
    output = net.output(request, RAW_SOCKET)
    if RAW_REFUSED in output:
        return False
    if RAW_OPENED in output:
        return True
    raise HarnessError(f"arping printed neither {RAW_REFUSED!r} nor {RAW_OPENED!r}: {output!r}")


def test_raw_socket_refused_without_net_raw(net: Net) -> None:
    """With CAP_NET_RAW dropped, the container cannot open a raw (packet) socket."""
    opened = raw_socket(net, Request(cap_drop=("NET_RAW",)))

    assert not opened, "a packet socket with NET_RAW dropped: expected refused, observed opened"


def test_raw_socket_refused_by_default(net: Net) -> None:
    """By default, a container cannot open a raw (packet) socket.

    Where the row's default capabilities keep CAP_NET_RAW, DEVIATIONS says so: this
    check reports, per row, whether any container can forge packets on its network.
    """
    opened = raw_socket(net, Request())

    assert not opened, (
        "a packet socket with the default capabilities: expected refused, observed opened"
    )


def first_address(server: peers.Serving) -> str:
    if not server.addresses:
        raise HarnessError(
            f"the serving container {server.launched.name} has no address other than a "
            "loopback one, so a peer has nothing to connect to"
        )
    return server.addresses[0]
