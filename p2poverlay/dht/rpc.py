"""
DHT requests and their answers, over the node's links.

A request goes over the link to its node if there is one, else over a
query connection (L{p2poverlay.queries}: one kept from an earlier answer,
or a new one), or where there are none, a new I{direct} link (bounded and
closed when idle, as those for direct messages are).  The answer must
come from the node asked, over its link, with the request's id, within
the timeout; anything else is no answer.  The timeout follows how long
answers take (L{p2poverlay.rtt}): on a loaded network, where they come
late, a request is not given up on (and made again of another node) while
its answer is on the way.  Requests served are limited per peer.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from p2poverlay.dht.routing import Contact
from p2poverlay.errors import LookupFailed, PeerUnreachable
from p2poverlay.limits import TokenBucket
from p2poverlay.message import DIRECT, P2PMessage
from p2poverlay.reasons import ANSWERED, CloseKind, CloseReason
from p2poverlay.records import PeerInfo
from p2poverlay.registry import PeerRegistry
from p2poverlay.rtt import AdaptiveTimeout
from p2poverlay.wirevalues import newMessageId

if TYPE_CHECKING:
    from p2poverlay.queries import Queries

# Peers whose request budgets are remembered (the least recent forgotten).
BUDGETS = 1024
# However late answers come, a request waits at most this many times the
# configured timeout.
MAX_TIMEOUT_FACTOR = 4


class NoAnswer(LookupFailed):
    """A DHT request got no answer in time (or no link to ask over)."""


class _Pending:
    __slots__ = ("deferred", "contact", "make", "timer", "link", "relinked",
                 "sent", "timeout")

    def __init__(self, deferred: Deferred, contact: Contact,
                 make: Callable[[str], P2PMessage], timer, sent: float,
                 timeout: float) -> None:
        self.deferred = deferred
        self.contact = contact
        self.make = make
        self.timer = timer
        self.sent = sent
        self.timeout = timeout
        self.link: Any = None  # the connection it went over, once sent
        self.relinked = False

    @property
    def nodeId(self) -> str:
        return self.contact.nodeId


class DHTRequests:
    """
    The requests one node has asked and not yet had answered.

    @param connect: C{connect(host, port, role)} reaches a node and fires
        with its L{PeerInfo} (L{p2poverlay.connections.Connections.connect}).
    @param timeout: seconds a request waits for its answer, link included,
        at least (L{wait}).
    @param rate: requests served per peer per second (C{burst} at once).
    @param queries: makes query connections (without, new links carry
        the requests to nodes not linked).

    @ivar wait: how long a request waits now: at least C{timeout}, more
        where answers have come later (up to L{MAX_TIMEOUT_FACTOR} times).
    """

    def __init__(self, clock, registry: PeerRegistry,
                 connect: Callable[..., "Deferred[PeerInfo]"],
                 timeout: float, rate: float, burst: float,
                 queries: Optional["Queries"] = None) -> None:
        self.clock = clock
        self.peers = registry
        self.connect = connect
        self.queries = queries
        self.wait = AdaptiveTimeout(timeout, MAX_TIMEOUT_FACTOR * timeout)
        self.rate = rate
        self.burst = burst
        self._pending: Dict[str, _Pending] = {}
        # Connection -> how many of the requests went over it (for busy).
        self._waitingOn: Dict[Any, int] = {}
        self._budgets: "OrderedDict[str, TokenBucket]" = OrderedDict()
        self.sent = self.answered = self.unanswered = self.refused = 0
        self.running = True

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def budgetsKept(self) -> int:
        """How many peers' request budgets are remembered."""
        return len(self._budgets)

    def request(self, contact: Contact,
                make: Callable[[str], P2PMessage]
                ) -> "Deferred[Tuple[P2PMessage, object]]":
        """
        Ask C{contact} the request C{make(rid)}.

        @return: fires with C{(answer, connection)}, or fails with
            L{NoAnswer} (or L{PeerUnreachable}).
        """
        if not self.running:
            return fail(NoAnswer("the node is stopping"))
        rid = newMessageId()
        done: Deferred = Deferred()
        timeout = self.wait.seconds
        timer = self.clock.callLater(timeout, self._timedOut, rid)
        self._pending[rid] = _Pending(done, contact, make, timer,
                                      self.clock.seconds(), timeout)
        self.sent += 1
        self._reach(rid)
        return done

    def _reach(self, rid: str) -> None:
        """Send request C{rid} over its node's link, or a query connection
        (or a new link) if there is none."""
        pending = self._pending[rid]
        contact = pending.contact
        connection = self.peers.connection(contact.nodeId)
        if (connection is None or connection.closing) and \
                self.queries is not None:
            connection = self.queries.take(contact.nodeId)
        if connection is not None and not connection.closing:
            self._send(connection, rid)
        elif self.queries is not None:
            query = self.queries.dial(contact.host, contact.port,
                                      pending.make(rid))
            query.addCallbacks(self._queried, self._notLinked,
                               callbackArgs=(rid,), errbackArgs=(rid,))
        else:
            d = self.connect(contact.host, contact.port, DIRECT)
            d.addCallbacks(self._linked, self._notLinked,
                           callbackArgs=(rid,), errbackArgs=(rid,))

    def _linked(self, info: PeerInfo, rid: str) -> None:
        if rid not in self._pending:
            return
        contact = self._pending[rid].contact
        connection = self.peers.connection(info.node_id)
        if info.node_id != contact.nodeId:
            self._anotherNode(rid, info.node_id)
        elif connection is None or connection.closing:
            self._fail(rid, PeerUnreachable(f"{info.describe()} went away"))
        else:
            self._send(connection, rid)

    def _queried(self, connection, rid: str) -> None:
        """The query connection for C{rid} is through its handshake (the
        request went with the HELLO)."""
        pending = self._pending.get(rid)
        nodeId = connection.info.node_id
        if pending is None:
            self._endQuery(connection, self._silence(self.wait.seconds))
        elif nodeId != pending.nodeId:
            self._endQuery(connection, CloseReason(CloseKind.NOT_PINNED))
            self._anotherNode(rid, nodeId)
        else:
            self._setLink(pending, connection)

    def _anotherNode(self, rid: str, nodeId: str) -> None:
        """Request C{rid} fails: node C{nodeId} listens where its node did."""
        contact = self._pending[rid].contact
        self._fail(rid, PeerUnreachable(
            f"{contact.host}:{contact.port} is another node now "
            f"({nodeId[:8]}, not {contact.nodeId[:8]})"))

    @staticmethod
    def _silence(seconds: float) -> CloseReason:
        """Why a query connection closes when its answer did not come
        within C{seconds}."""
        return CloseReason(CloseKind.SILENT, f"{seconds:.3g} s")

    def _endQuery(self, connection, reason: CloseReason) -> None:
        if self.queries is not None:
            self.queries.finished(connection, reason)

    def _notLinked(self, reason: Failure, rid: str) -> None:
        self._fail(rid, reason.value if reason.check(PeerUnreachable)
                   else PeerUnreachable(reason.getErrorMessage()))

    def _setLink(self, pending: _Pending, link: Any) -> None:
        """C{pending} waits for its answer over C{link} (or nothing) now."""
        old = pending.link
        if old is not None:
            if self._waitingOn[old] == 1:
                del self._waitingOn[old]
            else:
                self._waitingOn[old] -= 1
        pending.link = link
        if link is not None:
            self._waitingOn[link] = self._waitingOn.get(link, 0) + 1

    def _send(self, connection, rid: str) -> None:
        pending = self._pending[rid]
        self._setLink(pending, connection)
        connection.lastUsed = self.clock.seconds()
        connection.sendMessage(pending.make(rid))

    def busy(self, connection) -> bool:
        """Does a request wait for its answer over C{connection}?"""
        return connection in self._waitingOn

    def linkClosed(self, connection) -> None:
        """
        C{connection} closed: its requests go once more, over a new link
        (the peer may have closed an idle link as the request came), or
        fail if they went over a new link already.
        """
        for rid, pending in list(self._pending.items()):
            if pending.link is not connection:
                continue
            self._setLink(pending, None)
            if pending.relinked or not self.running:
                self._fail(rid, NoAnswer(
                    f"the link to {pending.nodeId[:8]} closed"))
            else:
                pending.relinked = True
                self._reach(rid)

    def _timedOut(self, rid: str) -> None:
        pending = self._pending.pop(rid, None)
        if pending is not None:
            if pending.link is not None and pending.link.query:
                self._endQuery(pending.link, self._silence(pending.timeout))
            self._setLink(pending, None)
            self.unanswered += 1
            pending.deferred.errback(NoAnswer(
                f"{pending.nodeId[:8]} did not answer within "
                f"{pending.timeout:.3g} s"))

    def _fail(self, rid: str, error: Exception) -> None:
        pending = self._pending.pop(rid, None)
        if pending is not None:
            self._setLink(pending, None)
            pending.timer.cancel()
            self.unanswered += 1
            pending.deferred.errback(error)

    def answerReceived(self, connection, rid: str,
                       answer: P2PMessage) -> None:
        """
        C{connection} answered request C{rid}.  An answer from another
        node than the one asked, or to no request (a late one), is dropped.
        """
        pending = self._pending.get(rid)
        if pending is None or pending.nodeId != connection.info.node_id:
            return
        del self._pending[rid]
        self._setLink(pending, None)
        pending.timer.cancel()
        self.answerCame(pending.sent)
        connection.lastUsed = self.clock.seconds()
        if connection.query:
            self._endQuery(connection, ANSWERED)
        pending.deferred.callback((answer, connection))

    def answerCame(self, sent: float) -> None:
        """Count an answer to a request sent at C{sent}: how long it took
        is what later requests wait for (L{wait})."""
        self.answered += 1
        self.wait.observed(self.clock.seconds() - sent)

    def mayServe(self, connection) -> bool:
        """May C{connection}'s peer have one more request answered now?"""
        nodeId = connection.info.node_id
        budgets = self._budgets
        # A refilled budget is as good as a new one: forget it.
        while budgets and next(iter(budgets.values())).isFull():
            budgets.popitem(last=False)
        budget = budgets.get(nodeId)
        if budget is None:
            budget = self._budgets[nodeId] = TokenBucket(
                self.rate, self.burst, self.clock)
            if len(self._budgets) > BUDGETS:
                self._budgets.popitem(last=False)
        else:
            self._budgets.move_to_end(nodeId)
        if budget.take():
            connection.lastUsed = self.clock.seconds()
            return True
        self.refused += 1
        return False

    def cancelAll(self) -> None:
        """Fail every request under way, and those asked from now on."""
        self.running = False
        for rid in list(self._pending):
            self._fail(rid, NoAnswer("the node is stopping"))
