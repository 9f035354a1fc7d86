"""
How a node and its records read, as JSON and as console lines, side by
side: one function per record for each.

Everything the project shows goes through here: the console's and the
control endpoint's replies and events, the web API and its live feed.
JSON keys are snake_case (C{node_id}, C{last_seen}, C{message_id}); times
are POSIX seconds.  Lines are plain text: whoever prints them to a
terminal passes them through L{p2poverlay.text.escape} first.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from p2poverlay.addresses import addressOf
from p2poverlay.events import ReceivedMessage
from p2poverlay.message import DIRECT, PROTOCOL_VERSION
from p2poverlay.reachability import PRIVATE
from p2poverlay.records import (
    CONNECTED, KNOWN, RECONNECTING, KnownPeer, PeerInfo, matchIdOrName,
)

if TYPE_CHECKING:
    from p2poverlay.node import Node

JSON = Dict[str, Any]

__all__ = [
    "broadcastView", "count", "describeNode", "describeSender",
    "formatAddressBookEntry", "formatKnownPeer", "formatMessage",
    "formatPeer", "infoLine", "knownLines", "knownNodes", "knownPeerView",
    "knownView", "lostPeers", "messageView", "metricsView", "nodeView",
    "ownReference", "peerView", "peersLines", "peersView",
]


# -- which records the lists show ---------------------------------------------

def lostPeers(node: "Node") -> List[KnownPeer]:
    """
    The nodes C{node} was connected to and is not any more: reconnecting,
    dead or left; not those it only heard of.
    """
    return [known for known in node.addressBook.all()
            if known.state not in (CONNECTED, KNOWN)
            and (known.last_seen or known.state == RECONNECTING)]


_BOOK_ORDER = {CONNECTED: 0, RECONNECTING: 1, KNOWN: 2}


def _asKnown(peer: PeerInfo) -> KnownPeer:
    # A connected peer that the bounded address book does not hold.
    return KnownPeer(peer.node_id, peer.host, peer.port, peer.name,
                     CONNECTED, 0.0, peer.since)


def knownNodes(node: "Node") -> List[Tuple[KnownPeer, Optional[PeerInfo]]]:
    """
    Every node C{node} knows, each with its connection if it is connected:
    connected nodes first, then reconnecting, known, and the others; most
    recently seen first within each.
    """
    connected = {peer.node_id: peer for peer in node.peers.snapshot()}
    book = node.addressBook.all()
    held = {known.node_id for known in book}
    book += [_asKnown(peer) for nodeId, peer in connected.items()
             if nodeId not in held]
    book.sort(key=lambda known: (_BOOK_ORDER.get(known.state, 3),
                                 -known.last_seen, known.node_id))
    return [(known, connected.get(known.node_id)) for known in book]


# -- JSON -----------------------------------------------------------------------

def peerView(peer: PeerInfo) -> JSON:
    """
    A connected peer: C{node_id}, C{name}, C{address}, C{host}, C{port},
    C{state} (C{connected}), C{since}, C{direction}, C{role}, C{verified}
    (whether it proved the key of its node id) and C{fingerprint} (that
    key's, or C{None}).
    """
    return {"node_id": peer.node_id, "name": peer.name,
            "address": peer.address, "host": peer.host, "port": peer.port,
            "state": CONNECTED, "since": peer.since,
            "direction": peer.direction, "role": peer.role,
            "verified": peer.fingerprint is not None,
            "fingerprint": peer.fingerprint}


def knownPeerView(known: KnownPeer,
                  connected: Optional[PeerInfo] = None) -> JSON:
    """
    A node and its state, connected or not: the keys of L{peerView} and
    C{last_seen} and C{next_attempt}.  C{direction}, C{role} and
    C{fingerprint} are C{None} (C{verified} false) for a node not connected.

    @param known: the node's entry in the address book.
    @param connected: its connection, if it is connected.
    """
    peer: Any = connected if connected is not None else known
    return {"node_id": known.node_id, "name": peer.name,
            "address": peer.address, "host": peer.host, "port": peer.port,
            "state": CONNECTED if connected is not None else known.state,
            "since": peer.since, "last_seen": known.last_seen or None,
            "next_attempt": known.next_attempt,
            "direction": connected.direction if connected else None,
            "role": connected.role if connected else None,
            "verified": bool(connected and connected.fingerprint),
            "fingerprint": connected.fingerprint if connected else None}


def peersView(node: "Node") -> List[JSON]:
    """
    What the console's C{peers} lists: the connected peers, oldest
    connection first, then L{lostPeers}; each a L{knownPeerView}.
    """
    book = node.addressBook
    views = [dict(knownPeerView(book.get(peer.node_id) or _asKnown(peer), peer),
                  **linkView(node, peer.node_id))
             for peer in node.peers.snapshot()]
    return views + [dict(knownPeerView(known), link=None, relay=None)
                    for known in lostPeers(node)]


def linkView(node: "Node", nodeId: str) -> JSON:
    """
    How the node is linked to the connected C{nodeId}: C{link} is
    C{"direct"}, C{"relayed"} (C{relay} is then the relay's node id),
    C{"punch"} (punched through two NATs) or C{"reversal"} (dialed by a
    node behind a NAT, asked through a relay).
    """
    connection = node.peers.connection(nodeId)
    if connection is None:
        return {"link": None, "relay": None}
    return {"link": node.upgrade.linkOf(nodeId, connection),
            "relay": getattr(connection, "relayedBy", None)}


def knownView(node: "Node") -> List[JSON]:
    """What the console's C{known} lists: L{knownNodes}, as JSON."""
    return [dict(knownPeerView(known, peer), **linkView(node, known.node_id))
            for known, peer in knownNodes(node)]


def nodeView(node: "Node") -> JSON:
    """
    The node itself: C{node_id}, C{name}, C{address} (where it listens, or
    C{None}), C{port}, C{uptime}, C{protocol_version}, C{peers} (how many
    are connected), C{fingerprint} (of its key, or C{None}), C{tls}
    (whether its peer links are TLS), C{dht} (L{dhtView}) and
    C{reachability} (L{p2poverlay.reachability.Reachability.view}).
    """
    return {"node_id": node.nodeId, "name": node.name,
            "address": addressOf(node.port) if node.port is not None else None,
            "port": node.listenPort, "uptime": node.metrics.uptime,
            "protocol_version": PROTOCOL_VERSION, "peers": len(node.peers),
            "fingerprint": node.key.fingerprint if node.key else None,
            "tls": not node.config.plaintext,
            "dht": dhtView(node), "reachability": node.reachability.view()}


def messageView(message: ReceivedMessage) -> JSON:
    """
    A message delivered to the node: C{kind}, C{message_id}, C{body},
    C{sender_id} and C{sender_name} (the node that wrote it), C{sender}
    (that node's L{peerView} if it is a peer, else C{None}) and C{via}
    (the peer it came from).
    """
    return {"kind": message.kind, "message_id": message.message_id,
            "body": message.body, "sender_id": message.sender_id,
            "sender_name": message.sender_name,
            "sender": peerView(message.sender) if message.sender else None,
            "via": peerView(message.via)}


def broadcastView(messageId: str, neighbours: int) -> JSON:
    """A broadcast sent: its C{message_id} and how many C{neighbours} got it."""
    return {"message_id": messageId, "neighbours": neighbours}


def metricsView(node: "Node") -> JSON:
    """Every counter and gauge of the node (L{Metrics.snapshot})."""
    return node.metrics.snapshot()


# -- console lines --------------------------------------------------------------

def _clock(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def _columns(address: str, nodeId: str, name: str, direction: str) -> str:
    name = repr(name) if name else "-"
    return f"{address:<22} {nodeId} {name:<12} {direction:<8}"


def count(number: int, noun: str) -> str:
    """C{1 peer}, C{2 peers}: a number and a noun, singular or plural."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def describeNode(node: "Node") -> str:
    """C{node ID 'NAME' listening on port N}."""
    name = f" {node.name!r}" if node.name else ""
    return f"node {node.nodeId}{name} listening on port {node.listenPort}"


def infoLine(node: "Node") -> str:
    """
    The console's C{info}: C{node ID 'NAME' listening on HOST:PORT, N
    peers}, with C{(no name)} for a node without one.
    """
    name = repr(node.name) if node.name else "(no name)"
    where = (f"listening on {addressOf(node.port)}" if node.port is not None
             else "not listening yet")
    return f"node {node.nodeId} {name} {where}, {count(len(node.peers), 'peer')}"


def keyLine(node: "Node") -> str:
    """The console's second line of C{info}: the key, and how links go."""
    key = node.key.fingerprint if node.key else "none (an id of its own)"
    links = "plaintext" if node.config.plaintext else "TLS 1.3"
    return f"  key:     {key}; peer links: {links}"


def dhtView(node: "Node") -> Optional[JSON]:
    """
    The node's part in the DHT, or L{None} if routing by id is off:
    C{state}, C{"findable"} (its own lookup has run, so that the nodes
    nearest it know it; for a private node, its relayed record is stored
    too), C{"joining"} or C{"not joined"} (no link yet);
    and C{contacts}, the nodes in its routing table.
    """
    dht = node.dht
    if not node.config.dht:
        return None
    findable = dht.findable
    if node.reachability.state == PRIVATE:
        # No table holds a node nobody can dial: a lookup finds it by
        # the relayed record it stored (p2poverlay.rendezvous).
        rendezvous = node.reach.rendezvous
        findable = findable and rendezvous is not None \
            and rendezvous.published is not None
    state = ("findable" if findable else "joining" if dht.joined
             else "not joined")
    return {"state": state, "contacts": len(dht.table)}


def dhtLine(node: "Node") -> str:
    """The console's third line of C{info}: the node's part in the DHT."""
    view = dhtView(node)
    if view is None:
        return "  dht:     off"
    return (f"  dht:     {count(view['contacts'], 'node')} in its table, "
            f"{view['state']}")


def reachLine(node: "Node") -> str:
    """The fourth line of C{info}: whether others can dial the node."""
    return f"  reach:   {node.reachability.describe()}"


def ownReference(node: "Node", reference: str) -> Optional[str]:
    """
    Whether C{reference}, read as C{send} reads a peer, names C{node}
    itself: C{"id"} (its id or a prefix of it), C{"name"}, or C{None}.
    """
    if matchIdOrName(reference, [KnownPeer(node.nodeId, "", 0)]):
        return "id"
    if node.name and reference == node.name:
        return "name"
    return None


def formatPeer(peer: PeerInfo, link: Optional[JSON] = None) -> str:
    """One line of the C{peers} listing for a connected peer (C{link}: as
    L{linkView} says)."""
    line = (_columns(peer.address, peer.node_id, peer.name, peer.direction)
            + f" connected since {_clock(peer.since)}, key "
            + (peer.fingerprint or "not verified"))
    if peer.role == DIRECT:
        line += " (direct link, not a neighbour)"
    kind = link["link"] if link else ""
    if kind == "relayed":
        line += f" (relayed through {link['relay'][:8]})"  # type: ignore
    else:
        line += _UPGRADE_MARKS.get(kind or "", "")
    return line


# How C{peers} marks a direct link that replaced a relayed one.
_UPGRADE_MARKS = {"punch": " (punched)", "reversal": " (reversed)"}


def formatKnownPeer(peer: KnownPeer, now: float) -> str:
    """One line of the C{peers} listing for a peer that is not connected."""
    if peer.state == RECONNECTING and peer.next_attempt is not None:
        state = (f"reconnecting, next try in "
                 f"{max(0.0, peer.next_attempt - now):.1f} s")
    elif peer.state == RECONNECTING:
        state = "reconnecting, dialing now"
    else:
        state = f"{peer.state} since {_clock(peer.since)}"
    return _columns(peer.address, peer.node_id, peer.name, "-") + " " + state


def formatAddressBookEntry(peer: KnownPeer, now: float) -> str:
    """One line of the C{known} listing."""
    if peer.state in (KNOWN, CONNECTED):
        seen = (f", last seen {_clock(peer.last_seen)}" if peer.last_seen
                and peer.state == KNOWN else "")
        relay = peer.record.relay if peer.record is not None else ""
        via = f", via {relay[:8]}" if relay else ""
        return _columns(peer.address, peer.node_id, peer.name,
                        "-") + f" {peer.state}{seen}{via}"
    return formatKnownPeer(peer, now)


def peersLines(node: "Node") -> List[str]:
    """The lines of the console's C{peers}, for the records of L{peersView}."""
    connected = node.peers.snapshot()
    now = node.reactor.seconds()
    lost = [formatKnownPeer(known, now) for known in lostPeers(node)]
    if connected:
        return [formatPeer(peer, linkView(node, peer.node_id))
                for peer in connected] + lost
    return ["no peers connected; lost peers:" if lost
            else "no peers connected"] + lost


def knownLines(node: "Node") -> List[str]:
    """The lines of the console's C{known}, for the records of L{knownView}."""
    book = knownNodes(node)
    now = node.reactor.seconds()
    return [f"{count(len(book), 'node')} known"] + [
        formatAddressBookEntry(known, now) for known, _ in book]


def describeSender(message: ReceivedMessage) -> str:
    """
    Who wrote C{message}: the peer, or else the node's short id and name
    and the peer it came through.
    """
    if message.sender is not None:
        return message.sender.describe()
    label = message.sender_id[:8]
    if message.sender_name:
        label += f" {message.sender_name!r}"
    return f"{label}, via {message.via.address}"


def formatMessage(message: ReceivedMessage) -> str:
    """The console line of a delivered message: C{[kind] sender: body}."""
    return f"[{message.kind}] {describeSender(message)}: {message.body}"
