"""
Who may hold a node's inbound connections and neighbour slots.

L{InboundPolicy} bounds what one remote address (and one address group,
L{addressGroup}) may hold: inbound connections, handshakes under way and
neighbour slots, and how fast it may open new connections; an address that
was banned gets one new connection now and then instead of none, so that
the honest nodes behind it (a NAT, a shared host) still get in.  When the
node is full, L{InboundPolicy.evictionFor} picks the inbound peer that
makes room for a newcomer, as Bitcoin Core does: the longest connected and
the most recently useful are protected, and the youngest of the most
crowded group goes, and only if the newcomer's group is less crowded.

Connections from the node's own address (other nodes of its operator on
the same machine) are bound by none of this.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence

from zope.interface import implementer

from p2poverlay.addrgroups import addressGroup
from p2poverlay.config import NodeConfig
from p2poverlay.limits import TokenBucket
from p2poverlay.interfaces import IAdmission
from p2poverlay.message import UNSAID, Hello, Peers
from p2poverlay.reasons import CloseKind, CloseReason

if TYPE_CHECKING:
    from p2poverlay.protocol import PeerConnection

# A banned address gets one new connection per this many seconds.
BANNED_ADMIT_INTERVAL = 10.0
# Per-address connection rates (and node ids first met) remembered at
# most (the least recent go).
MAX_TRACKED_ADDRESSES = 10000
# A node id is new for this long after this node first met it; new ids
# that dialed in hold at most this share of the neighbour slots.
NEWCOMER_TIME = 600.0
NEWCOMER_SHARE = 0.25
# Protected from eviction: this many of the most recently useful peers,
# then this share of the rest, the longest connected.
PROTECT_USEFUL = 4
PROTECT_LONGEST_SHARE = 0.5
# Per address group, limits are this many times the per-address ones.
GROUP_FACTOR = 2
# A full node gives a slot to a node in need at most this often.
NEED_SWAPS_PER_SECOND = 1.0
NEED_SWAP_BURST = 4.0


def isRelayed(connection: Any) -> bool:
    """
    Does C{connection} run through a relay (L{p2poverlay.relay})?  Its
    address is the relay's: limits and bans by address are not its.
    """
    return getattr(connection, "relayedBy", None) is not None


def isLocal(connection: "PeerConnection") -> bool:
    """Does C{connection} come from the node's own address?"""
    local = getattr(connection.transport.getHost(), "host", None)
    return local is not None and local == connection.remoteHost


def _limitReached(connection: "PeerConnection",
                  others: Iterable["PeerConnection"], limit: int) -> bool:
    """Do C{others} already hold C{limit} from C{connection}'s address,
    or C{GROUP_FACTOR} times as many from its group?"""
    host = connection.remoteHost
    group = addressGroup(host)
    sameHost = sameGroup = 0
    for other in others:
        if other is connection or other.closing:
            continue
        if other.remoteHost == host:
            sameHost += 1
        if addressGroup(other.remoteHost) == group and not isLocal(other):
            sameGroup += 1
    return sameHost >= limit or sameGroup >= limit * GROUP_FACTOR


class InboundPolicy:
    """
    The per-address limits of one node, and its choice of whom to evict.

    @param clock: the reactor's clock (its C{seconds}).
    """

    def __init__(self, config: NodeConfig, clock) -> None:
        self.config = config
        self.clock = clock
        self._rates: "OrderedDict[str, TokenBucket]" = OrderedDict()
        self._bannedRates: "OrderedDict[str, TokenBucket]" = OrderedDict()
        # Node id -> when this node first met it (the least recent go).
        self._firstMet: "OrderedDict[str, float]" = OrderedDict()
        self._needSwaps = TokenBucket(NEED_SWAPS_PER_SECOND, NEED_SWAP_BURST,
                                      clock)

    @property
    def ratesTracked(self) -> int:
        """How many addresses' connection rates the policy remembers."""
        return len(self._rates)

    def _bucket(self, table: "OrderedDict[str, TokenBucket]", host: str,
                rate: float, burst: float, full: bool = True) -> TokenBucket:
        """C{host}'s bucket in C{table}, the least recently used going
        beyond L{MAX_TRACKED_ADDRESSES}; a new one starts empty unless
        C{full}."""
        if full:
            # A bucket that has refilled is as good as none: the least
            # recently used go as soon as they have, so that each address
            # that ever connected does not hold a bucket for good.
            while table and next(iter(table.values())).isFull():
                table.popitem(last=False)
        bucket = table.get(host)
        if bucket is None:
            bucket = table[host] = TokenBucket(rate, burst, self.clock)
            if not full:
                bucket.take(burst)
            if len(table) > MAX_TRACKED_ADDRESSES:
                del table[next(iter(table))]
        else:
            table.move_to_end(host)
        return bucket

    def refusal(self, connection: "PeerConnection",
                inbound: Sequence["PeerConnection"],
                banReason: Optional[str]) -> Optional[CloseReason]:
        """
        Why the new inbound C{connection} may not stay, or L{None}.

        @param inbound: the node's inbound connections.
        @param banReason: why the connection's address is banned, if it is.
        """
        if isLocal(connection) or isRelayed(connection):
            return None
        host = connection.remoteHost
        if banReason is not None:
            # Not one of every connection: the NAT it shares may hide
            # honest nodes.  The first one comes a while after the ban.
            bucket = self._bucket(self._bannedRates, host,
                                  1 / BANNED_ADMIT_INTERVAL, 1, full=False)
            if not bucket.take():
                return CloseReason(CloseKind.BANNED, banReason)
        else:
            self._bannedRates.pop(host, None)
        rate = self._bucket(self._rates, host,
                            self.config.connectionRatePerAddress,
                            self.config.connectionBurstPerAddress)
        if not rate.take():
            return CloseReason(CloseKind.ADDRESS_LIMIT,
                               "too many new connections")
        if _limitReached(connection, inbound,
                         self.config.maxInboundPerAddress):
            return CloseReason(CloseKind.ADDRESS_LIMIT, "too many connections")
        if _limitReached(connection, [c for c in inbound if c.peer is None],
                         self.config.maxPendingPerAddress):
            return CloseReason(CloseKind.ADDRESS_LIMIT, "too many handshakes")
        return None

    def neighbourRefusal(self, connection: "PeerConnection", nodeId: str,
                         neighbours: Sequence["PeerConnection"]
                         ) -> Optional[CloseReason]:
        """Why C{connection} to the node C{nodeId} may not be a neighbour
        as well as C{neighbours}, or L{None} (whether there is room is
        another matter)."""
        if isLocal(connection):
            return None
        if _limitReached(connection, neighbours,
                         self.config.maxNeighboursPerAddress):
            return CloseReason(CloseKind.ADDRESS_LIMIT, "too many neighbours")
        return self._newcomerRefusal(connection, nodeId, neighbours)

    def _newcomerRefusal(self, connection: "PeerConnection", nodeId: str,
                         neighbours: Sequence["PeerConnection"]
                         ) -> Optional[CloseReason]:
        """
        Keys cost nothing: a node id first met (either way) less than
        L{NEWCOMER_TIME} ago is a newcomer, others are veterans.  A node
        with fewer than C{minPeers} veteran neighbours takes anyone (an
        overlay starting up, or a node just restarted, knows only
        newcomers); past that, newcomers that dialed in hold at most
        L{NEWCOMER_SHARE} of the neighbour slots, however many ids (or
        addresses) they come with.
        """
        now = self.clock.seconds()
        if not self._isNewcomer(nodeId, now) or connection.outbound:
            return None
        new = {id(c) for c in neighbours
               if c.peer is not None and self._isNewcomer(c.peer.node_id, now)}
        newcomers = sum(1 for c in neighbours if id(c) in new
                        and not c.outbound and not isLocal(c))
        veterans = len(neighbours) - len(new)
        share = max(1, int(self.config.maxPeers * NEWCOMER_SHARE))
        if veterans < self.config.minPeers or newcomers < share:
            return None
        return CloseReason(CloseKind.FULL)

    def _isNewcomer(self, nodeId: str, now: float) -> bool:
        firstMet = self._firstMet.setdefault(nodeId, now)
        self._firstMet.move_to_end(nodeId)
        while len(self._firstMet) > MAX_TRACKED_ADDRESSES:
            self._firstMet.popitem(last=False)
        return now - firstMet < NEWCOMER_TIME

    def evictionFor(self, newcomer: "PeerConnection",
                    inbound: Sequence["PeerConnection"],
                    spare: Optional["PeerConnection"] = None
                    ) -> Optional["PeerConnection"]:
        """
        The inbound connection that should make room for C{newcomer}, or
        L{None} if none should.  Handshakes still under way go first;
        (the oldest of the address with the most); then C{spare}, an idle
        direct link (whatever its address: such a link is made again when
        it is needed); then, of the
        established peers not protected, the youngest of the most crowded
        address group, if that group is more crowded than the newcomer's
        would be.
        """
        candidates = [c for c in inbound if c is not newcomer
                      and not c.closing and not isLocal(c)]
        pending = [c for c in candidates if c.peer is None]
        if pending:
            # A handshake costs its sender nothing: the oldest goes,
            # from the address with the most under way.
            crowd: Dict[str, int] = defaultdict(int)
            for connection in pending:
                crowd[connection.remoteHost] += 1
            return min(pending, key=lambda c: (-crowd[c.remoteHost],
                                               c.lastHeard))
        if spare is not None and spare is not newcomer:
            return spare
        return self._fromCrowdedGroup(newcomer, self._unprotected(candidates),
                                      candidates)

    def swapForNeed(self, newcomer: "PeerConnection",
                    neighbours: Sequence["PeerConnection"]
                    ) -> Optional["PeerConnection"]:
        """
        The neighbour that gives up its slot to C{newcomer}, a node with
        fewer than C{minPeers} neighbours (as its HELLO says), or L{None}.

        Nodes dial until they have C{minPeers} neighbours and take up to
        C{maxPeers}: in a large overlay nearly every node fills up, and a
        newcomer is turned away by node after node.  As HyParView does for
        a join, a full node takes it in and lets go of an inbound
        neighbour that keeps more than C{minPeers} without this node (as
        its last PONG said), so nobody is left short.  The longest
        connected are protected; at most L{NEED_SWAPS_PER_SECOND}.
        """
        count = newcomer.neighbourCount
        minPeers = self.config.minPeers
        if count == UNSAID or count >= minPeers:
            return None
        spare = [c for c in neighbours
                 if c is not newcomer and not c.outbound and not c.closing
                 and c.peer is not None and c.neighbourCount > minPeers]
        pool = self._unprotected(spare)
        if not pool or not self._needSwaps.take():
            return None
        return max(pool, key=lambda c: (c.neighbourCount, c.info.since))

    @staticmethod
    def _unprotected(established: List["PeerConnection"]
                     ) -> List["PeerConnection"]:
        useful = sorted((c for c in established if c.lastUseful > 0),
                        key=lambda c: c.lastUseful, reverse=True)
        protected = {id(c) for c in useful[:PROTECT_USEFUL]}
        rest = sorted((c for c in established if id(c) not in protected),
                      key=lambda c: c.info.since)
        keep = int(len(rest) * PROTECT_LONGEST_SHARE)
        return rest[keep:]

    @staticmethod
    def _fromCrowdedGroup(newcomer: "PeerConnection",
                          pool: List["PeerConnection"],
                          everyone: List["PeerConnection"]
                          ) -> Optional["PeerConnection"]:
        if not pool:
            return None
        crowd: Dict[str, int] = defaultdict(int)
        for connection in everyone:
            crowd[addressGroup(connection.remoteHost)] += 1
        groups: Dict[str, List["PeerConnection"]] = defaultdict(list)
        for connection in pool:
            groups[addressGroup(connection.remoteHost)].append(connection)
        group = max(groups, key=lambda g: (crowd[g], len(groups[g])))
        # The swap must leave the groups more even, or it is mere churn.
        if crowd[group] < crowd[addressGroup(newcomer.remoteHost)] + 2:
            return None
        return max(groups[group], key=lambda c: c.info.since)


@implementer(IAdmission)
class OpenAdmission:
    """Admits every neighbour, and has no other nodes to tell of."""

    def hasRoomFor(self, connection: "PeerConnection") -> bool:
        return True

    def turnAwaySample(self, connection: "PeerConnection",
                       hello: Hello) -> Peers:
        return Peers(())

    def spareLink(self, inbound: Sequence["PeerConnection"]
                  ) -> Optional["PeerConnection"]:
        return None
