"""
Metrics: what a node has done and what it holds, as counters and gauges.

The connections count every line they read and write here, by message
type, and every closed connection by the label of its reason.  The rest
(peers by state, broadcast counters, uptime) is read from the node when a
snapshot is taken.  A snapshot is a plain dict (the JSON API serves it);
L{prometheusText} renders one in the Prometheus text exposition format.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, DefaultDict, Dict, List, Tuple

from p2poverlay.addressbook import AddressBook
from p2poverlay.events import NodeStats
from p2poverlay.reasons import DISCONNECT_REASONS, CloseReason
from p2poverlay.records import PEER_STATES
from p2poverlay.registry import PeerRegistry


class Metrics:
    """
    Counters of one node.  Reactor thread only.

    @ivar messagesIn: lines read, by message type.
    @ivar bytesIn: bytes read (delimiters included), by message type.
    @ivar messagesOut: lines written (or queued), by message type.
    @ivar bytesOut: bytes written (or queued), by message type.
    @ivar disconnects: closed connections, by
        L{p2poverlay.reasons.CloseReason.label}.
    """

    def __init__(self, clock, stats: NodeStats, registry: PeerRegistry,
                 book: AddressBook) -> None:
        self.clock = clock
        self.stats = stats
        self.peers = registry
        self.book = book
        self.created = clock.seconds()
        self.messagesIn: DefaultDict[str, int] = defaultdict(int)
        self.bytesIn: DefaultDict[str, int] = defaultdict(int)
        self.messagesOut: DefaultDict[str, int] = defaultdict(int)
        self.bytesOut: DefaultDict[str, int] = defaultdict(int)
        self.disconnects: Dict[str, int] = dict.fromkeys(DISCONNECT_REASONS, 0)
        # Parts that keep their own counters: each gives a dict of them,
        # merged into every snapshot (the DHT's, for one).
        self.sources: List[Callable[[], Dict[str, object]]] = []

    # The connections call these for every line: keep them cheap.

    def received(self, messageType: str, size: int) -> None:
        self.messagesIn[messageType] += 1
        self.bytesIn[messageType] += size

    def sent(self, messageType: str, size: int) -> None:
        self.messagesOut[messageType] += 1
        self.bytesOut[messageType] += size

    def connectionClosed(self, reason: CloseReason) -> None:
        self.disconnects[reason.label] += 1

    # Reading.

    @property
    def uptime(self) -> float:
        """Seconds since the node was created."""
        return max(0.0, self.clock.seconds() - self.created)

    def peersByState(self) -> Dict[str, int]:
        counts = dict.fromkeys(PEER_STATES, 0)
        for entry in self.book.all():
            if entry.state in counts:
                counts[entry.state] += 1
        return counts

    def snapshot(self) -> Dict[str, object]:
        """Every counter and gauge, as a JSON-ready dict."""
        stats = self.stats
        snapshot: Dict[str, object] = {
            "uptime": self.uptime,
            "peers": len(self.peers),
            "peers_by_state": self.peersByState(),
            "messages_in": dict(self.messagesIn),
            "bytes_in": dict(self.bytesIn),
            "messages_out": dict(self.messagesOut),
            "bytes_out": dict(self.bytesOut),
            "disconnects": dict(self.disconnects),
            "direct_delivered": stats.directDelivered,
            "broadcasts_delivered": stats.broadcastsDelivered,
            "broadcast_duplicates": stats.broadcastDuplicates,
            "broadcasts_dropped": stats.broadcastsDropped,
            "broadcasts_stale": stats.broadcastsStale,
            "broadcasts_forged": stats.broadcastsForged,
            "broadcast_payloads_sent": stats.broadcastPayloadsSent,
            "broadcast_payload_bytes": stats.broadcastPayloadBytes,
            "broadcast_control_sent": stats.broadcastControlSent,
            "broadcast_control_bytes": stats.broadcastControlBytes,
        }
        for source in self.sources:
            snapshot.update(source())
        return snapshot


# Prometheus families: (name, type, help, snapshot key, label name or None).
_FAMILIES: Tuple[Tuple[str, str, str, str, object], ...] = (
    ("p2p_uptime_seconds", "gauge",
     "Seconds since the node was created.", "uptime", None),
    ("p2p_connected_peers", "gauge",
     "Peers connected now.", "peers", None),
    ("p2p_peers", "gauge",
     "Nodes in the address book, by state.", "peers_by_state", "state"),
    ("p2p_messages_received_total", "counter",
     "Messages read from peers, by type.", "messages_in", "type"),
    ("p2p_received_bytes_total", "counter",
     "Bytes read from peers, by message type.", "bytes_in", "type"),
    ("p2p_messages_sent_total", "counter",
     "Messages written to peers, by type.", "messages_out", "type"),
    ("p2p_sent_bytes_total", "counter",
     "Bytes written to peers, by message type.", "bytes_out", "type"),
    ("p2p_disconnects_total", "counter",
     "Connections closed, by reason.", "disconnects", "reason"),
    ("p2p_direct_delivered_total", "counter",
     "Direct messages delivered to this node.", "direct_delivered", None),
    ("p2p_broadcasts_delivered_total", "counter",
     "Broadcasts delivered to this node.", "broadcasts_delivered", None),
    ("p2p_broadcast_duplicates_total", "counter",
     "Broadcast copies suppressed as already seen.",
     "broadcast_duplicates", None),
    ("p2p_broadcasts_dropped_total", "counter",
     "Broadcast copies dropped because a peer's send buffer was full.",
     "broadcasts_dropped", None),
    ("p2p_broadcasts_stale_total", "counter",
     "Broadcasts dropped as older than the replay window.",
     "broadcasts_stale", None),
    ("p2p_broadcasts_forged_total", "counter",
     "Broadcasts dropped because their origin did not sign them.",
     "broadcasts_forged", None),
    ("p2p_broadcast_payloads_sent_total", "counter",
     "Broadcast payload messages sent.", "broadcast_payloads_sent", None),
    ("p2p_broadcast_payload_sent_bytes_total", "counter",
     "Bytes of broadcast payload messages sent.",
     "broadcast_payload_bytes", None),
    ("p2p_broadcast_control_sent_total", "counter",
     "Broadcast control messages sent.", "broadcast_control_sent", None),
    ("p2p_broadcast_control_sent_bytes_total", "counter",
     "Bytes of broadcast control messages sent.",
     "broadcast_control_bytes", None),
    ("p2p_dht_contacts", "gauge",
     "Nodes in the DHT routing table.", "dht_contacts", None),
    ("p2p_dht_lookups_running", "gauge",
     "DHT lookups under way.", "dht_lookups_running", None),
    ("p2p_dht_lookups_total", "counter",
     "DHT lookups started.", "dht_lookups", None),
    ("p2p_dht_lookups_succeeded_total", "counter",
     "DHT lookups that found their node (or ended, for a key).",
     "dht_lookups_succeeded", None),
    ("p2p_dht_requests_sent_total", "counter",
     "DHT requests sent.", "dht_requests_sent", None),
    ("p2p_dht_requests_unanswered_total", "counter",
     "DHT requests that got no answer in time.", "dht_requests_unanswered",
     None),
    ("p2p_dht_requests_refused_total", "counter",
     "DHT requests left unanswered because their peer asked too often.",
     "dht_requests_refused", None),
    ("p2p_dht_queries_dialed_total", "counter",
     "Query connections dialed for DHT requests.", "dht_queries_dialed",
     None),
    ("p2p_dht_queries_reused_total", "counter",
     "DHT requests that went over a query connection kept from before.",
     "dht_queries_reused", None),
    ("p2p_dht_queries_served_total", "counter",
     "DHT requests other nodes sent over query connections.",
     "dht_queries_served", None),
    ("p2p_dht_records", "gauge",
     "DHT value records held.", "dht_records", None),
    ("p2p_dht_record_bytes", "gauge",
     "Bytes of the DHT value records held.", "dht_record_bytes", None),
    ("p2p_reachability", "gauge",
     "Whether others can dial this node: 1 for its state now.",
     "reachability", "state"),
    ("p2p_reachability_changes_total", "counter",
     "How often the node's reachability changed.", "reachability_changes",
     None),
    ("p2p_nat_mapping", "gauge",
     "How the node's NAT maps, as its peers' observations show: 1 for it.",
     "nat_mapping", "mapping"),
    ("p2p_dial_backs_total", "counter",
     "Dial-backs this node asked for, by outcome.", "dial_backs", "outcome"),
    ("p2p_dial_backs_served_total", "counter",
     "Dial-backs this node made for its peers, by outcome.",
     "dial_backs_served", "outcome"),
    ("p2p_upgrade_attempts_total", "counter",
     "Tries to turn a relayed connection direct, by kind (reversal, punch).",
     "upgrade_attempts", "kind"),
    ("p2p_upgrade_successes_total", "counter",
     "Relayed connections turned direct, by kind.", "upgrade_successes",
     "kind"),
    ("p2p_relay_reservations", "gauge",
     "Reservations this node keeps for nodes others cannot dial.",
     "relay_reservations", None),
    ("p2p_relay_circuits", "gauge",
     "Circuits this node relays now.", "relay_circuits", None),
    ("p2p_relay_circuits_opened_total", "counter",
     "Circuits this node relayed (accepted by their target).",
     "relay_circuits_opened", None),
    ("p2p_relay_circuits_refused_total", "counter",
     "Circuits this node refused to relay.", "relay_circuits_refused", None),
    ("p2p_relay_bytes_total", "counter",
     "Bytes this node relayed on circuits, both ways.", "relay_bytes", None),
    ("p2p_relay_reservations_held", "gauge",
     "Reservations this node holds with relays.",
     "relay_reservations_held", None),
    ("p2p_relayed_circuits", "gauge",
     "Circuits through relays this node is an end of.",
     "relay_circuits_here", None),
)


def escapeLabelValue(value: str) -> str:
    """Escape a label value for the text exposition format."""
    return (value.replace("\\", "\\\\").replace("\n", "\\n")
            .replace('"', '\\"'))


def _escapeHelp(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def prometheusText(snapshot: Dict[str, object],
                   info: Dict[str, str]) -> str:
    """
    Render a L{Metrics.snapshot} in the Prometheus text format (0.0.4).

    @param info: labels of the constant C{p2p_node_info} gauge (node id,
        name, address).
    """
    lines: List[str] = []

    def family(name: str, kind: str, help: str) -> Callable[[str, float], None]:
        lines.append(f"# HELP {name} {_escapeHelp(help)}")
        lines.append(f"# TYPE {name} {kind}")

        def sample(labels: str, value: float) -> None:
            lines.append(f"{name}{labels} {_number(value)}")
        return sample

    sample = family("p2p_node_info", "gauge",
                    "This node's identity, in labels; the value is 1.")
    sample("{" + ",".join(f'{key}="{escapeLabelValue(value)}"'
                          for key, value in info.items()) + "}", 1)
    for name, kind, help, key, label in _FAMILIES:
        sample = family(name, kind, help)
        value = snapshot[key]
        if label is None:
            sample("", value)  # type: ignore[arg-type]
            continue
        for labelValue, count in sorted(value.items()):  # type: ignore[attr-defined]
            sample(f'{{{label}="{escapeLabelValue(labelValue)}"}}', count)
    return "\n".join(lines) + "\n"
