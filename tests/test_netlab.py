"""
The network lab (p2poverlay.netlab) behaves like the networks it models:
real nodes in namespaces across a WAN bridge, NAT routers of each kind,
random packet loss, and a teardown that leaves nothing behind.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from p2poverlay.netlab import (
    DOUBLE, FIREWALL, MASQUERADE, SYMMETRIC, Lab, LabError, listNamespaces)
from p2poverlay.netlab.process import ConsoleProcess
from p2poverlay.netlab.rules import lossRules, routerRules
from helpers import needsNamespaces


PROBE_PORT = 7000


def rootLinks():
    """The names of the machine's own interfaces."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                         text=True, check=True).stdout
    return sorted(line.split(":")[1].strip() for line in out.splitlines())


def delivered(node):
    return rf"^delivered to {re.escape(node.label())}$"


def received(kind, sender, body):
    return rf"^\[{kind}\] {re.escape(sender.label())}: {re.escape(body)}$"


def connectedTo(label):
    return rf"^\* connected: {re.escape(label)}$"


@needsNamespaces
def test_public_hosts_form_an_overlay(lab):
    """
    Nodes on two public hosts, each on its own address, join across the
    WAN bridge; send and broadcast reach the other host.
    """
    a = lab.node(lab.publicHost("a"), "A")
    b = lab.node(lab.publicHost("b"), "B", "--join", a.address)
    assert a.address != b.address
    b.expect(connectedTo(a.label()))
    a.expect(connectedTo(b.label()))

    a.type(f"send {b.address} across the bridge")
    a.expect(delivered(b))
    b.expect(received("direct", a, "across the bridge"))
    b.type("broadcast to everyone")
    b.expect(r"^broadcast [0-9a-f]{8} sent to 1 neighbour$")
    a.expect(received("broadcast", b, "to everyone"))


@needsNamespaces
def test_node_behind_masquerade_dials_out(lab):
    """
    A node behind a masquerading router joins a public node: the public
    node sees it at the router's address, and messages flow both ways over
    the link it opened; no one can dial the address it is known by.
    """
    public = lab.publicHost("pub")
    router = lab.natRouter("r", MASQUERADE)
    a = lab.node(public, "A")
    h = lab.node(lab.hostBehind(router, "h"), "H", "--join", a.address)
    h.expect(connectedTo(a.label()))
    # The NAT rewrote its address: A knows it as the router's.
    seenAs = f"{router.address}:{h.port} ({h.nodeId[:8]})"
    a.expect(connectedTo(seenAs))

    h.type(f"send {a.address} from behind the NAT")
    h.expect(delivered(a))
    a.expect(rf"^\[direct\] {re.escape(seenAs)}: from behind the NAT$")
    a.type(f"send {h.nodeId} back through the mapping")
    a.expect(r"^delivered to ")
    h.expect(received("direct", a, "back through the mapping"))
    # The address it is known by leads nowhere from another public host.
    other = lab.publicHost("other")
    attempt = lab.connect(other, router.address, h.port, timeout=1.0)
    assert not attempt.connected and "timed out" in attempt.detail, attempt


@needsNamespaces
@pytest.mark.parametrize("kind", [MASQUERADE, SYMMETRIC, FIREWALL, DOUBLE])
def test_no_inbound_connection_through_any_router(lab, kind):
    """
    Behind every kind of router a node dials out and joins a public one,
    but a public host can open no connection to it: not at its own address
    (private, or for the firewall routed but dropped) nor at its router's.
    """
    public = lab.publicHost("pub")
    router = lab.natRouter("r", kind)
    outer = router.router or router
    a = lab.node(public, "A")
    h = lab.node(lab.hostBehind(router, "h"), "H", "--join", a.address)
    h.expect(connectedTo(a.label()))
    seenAt = h.host.address if kind == FIREWALL else outer.address
    a.expect(connectedTo(f"{seenAt}:{h.port} ({h.nodeId[:8]})"))
    # It listens: its own router reaches it.
    assert lab.connect(router, h.host.address, h.port).connected

    for address in (h.host.address, router.address, outer.address):
        attempt = lab.connect(public, address, h.port, timeout=1.0)
        assert not attempt.connected, (kind, address, attempt)
    if kind == FIREWALL:
        # Routed, not translated: the attempt was dropped, not unroutable.
        attempt = lab.connect(public, h.host.address, h.port, timeout=1.0)
        assert "timed out" in attempt.detail, attempt


@needsNamespaces
def test_packet_loss(lab):
    """
    A loss rule on a host's uplink drops a share of the pings near its
    probability; without it none are lost.
    """
    a = lab.publicHost("a")
    b = lab.publicHost("b")
    assert lab.pingLoss(a, b.address, count=20) == 0
    lab.packetLoss(b, 0.5)
    loss = lab.pingLoss(a, b.address, count=50)
    assert 0.2 <= loss <= 0.8, loss


@needsNamespaces
def test_delay_on_uplinks(lab):
    """
    A delay on a router's and a host's uplink lengthens every round trip
    across them by twice the sum, through the NAT too; other paths keep
    theirs; a TCP connection through the delayed router works.
    """
    a = lab.publicHost("a")
    c = lab.publicHost("c", delay=0.010)
    router = lab.natRouter("r", MASQUERADE, delay=0.025)
    b = lab.hostBehind(router, "b")
    assert lab.roundTrip(a, lab.publicHost("d").address) < 0.010
    assert 0.020 <= lab.roundTrip(a, c.address) < 0.020 + 0.5
    assert 0.050 <= lab.roundTrip(b, a.address) < 0.050 + 0.5
    assert 0.070 <= lab.roundTrip(b, c.address) < 0.070 + 0.5
    listener = lab.listen(a, PROBE_PORT)
    assert lab.connect(b, a.address, PROBE_PORT).connected
    assert listener.nextPeer()[0] == router.address
    with pytest.raises(LabError, match="only a router on the WAN"):
        lab.natRouter("inner", MASQUERADE, behind=router, delay=0.01)


def mappedPorts(lab, host, listeners, sourcePort):
    """The public ports two listeners saw for connections from one port."""
    ports = []
    for machine, listener in listeners:
        attempt = lab.connect(host, machine.address, PROBE_PORT, sourcePort)
        assert attempt.connected, attempt
        ports.append(listener.nextPeer()[1])
    return ports


@needsNamespaces
def test_symmetric_nat_maps_each_destination_to_its_own_port(lab):
    """
    From one source port to two public hosts: a masquerading router shows
    both the same public port, a symmetric one a different port to each.
    """
    listeners = []
    for name in ("p1", "p2"):
        machine = lab.publicHost(name)
        listeners.append((machine, lab.listen(machine, PROBE_PORT)))
    masq = lab.hostBehind(lab.natRouter("m", MASQUERADE), "hm")
    sym = lab.hostBehind(lab.natRouter("s", SYMMETRIC), "hs")
    differing = 0
    for sourcePort in (40001, 40002, 40003):
        first, second = mappedPorts(lab, masq, listeners, sourcePort)
        assert first == second, (sourcePort, first, second)
        first, second = mappedPorts(lab, sym, listeners, sourcePort)
        differing += first != second
    assert differing >= 2, differing


def test_rules_refuse_bad_input():
    """An unknown router kind or a loss outside (0, 1] is one clear error."""
    with pytest.raises(ValueError, match="unknown router kind 'cone'"):
        routerRules("cone", "wan0")
    with pytest.raises(ValueError, match=r"not in \(0, 1\]"):
        lossRules("eth0", 1.5)
    with pytest.raises(ValueError, match="in, out or both"):
        lossRules("eth0", 0.5, "sideways")
    assert ["-t", "nat", "-A", "POSTROUTING", "-o", "wan0", "-j",
            "MASQUERADE", "--random-fully"] in routerRules(SYMMETRIC, "wan0")
    assert not any("nat" in rule for rule in routerRules(FIREWALL, "wan0"))


@needsNamespaces
def test_teardown_removes_everything(tmp_path):
    """
    Closing the lab kills its nodes and deletes every namespace and link
    it made; the machine's own interfaces are as they were.
    """
    before = rootLinks()
    with Lab(tmp_path) as lab:
        a = lab.node(lab.publicHost("a"), "A")
        router = lab.natRouter("d", DOUBLE)
        lab.node(lab.hostBehind(router, "h"), "H", "--join", a.address)
        made = list(lab.namespaces.created)
        assert len(made) == 5 and lab.namespaces.links
        assert set(made) <= set(listNamespaces())
        pids = [p.pid for p in lab.processes]
    assert not [ns for ns in listNamespaces() if ns.startswith(lab.prefix)]
    assert rootLinks() == before
    assert all(p.proc.poll() is not None for p in lab.processes), pids


@needsNamespaces
def test_teardown_runs_when_the_test_fails(tmp_path):
    """An exception inside the lab still removes everything it made."""
    with pytest.raises(RuntimeError, match="the test failed"):
        with Lab(tmp_path) as lab:
            lab.node(lab.publicHost("a"), "A")
            lab.natRouter("r", SYMMETRIC)
            raise RuntimeError("the test failed")
    assert not [ns for ns in listNamespaces() if ns.startswith(lab.prefix)]
    node, = lab.processes
    assert isinstance(node, ConsoleProcess) and node.proc.poll() is not None
    with pytest.raises(LabError, match="not a namespace of this lab"):
        lab.namespaces.exec(lab.namespaces.name("a"), "true")
