"""
Kademlia's iterative lookup, apart from how its requests travel.

A lookup keeps the candidates it has heard of sorted by distance to the
target and asks the nearest it has not asked, C{alpha} at a time; each
answer names nodes nearer still.  A node asked on what a round-I{r} answer
taught is asked in round I{r + 1} (the first nodes asked, from the
routing table, are round 1).

How it ends is its L{EndRule}: a lookup for a node (L{FIND_TARGET}) ends as
soon as the target itself answers, the usual case one or two rounds after
it is first named; the rule of the Kademlia paper and libp2p's spec
(L{K_CLOSEST}) ends once the C{k} nearest candidates have all answered;
go-libp2p-kad-dht's (L{BETA_CLOSEST}) once the L{BETA} nearest have, which
a node's lookup of its own id uses: the nodes nearest it then know it, for
less than half the requests in a forming overlay.  Each ends when nobody is left to ask.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from p2poverlay.dht.routing import Contact
from p2poverlay.errors import ForgedRecord


class EndRule(enum.Enum):
    FIND_TARGET = "target"
    K_CLOSEST = "k-closest"
    BETA_CLOSEST = "beta-closest"


FIND_TARGET = EndRule.FIND_TARGET
K_CLOSEST = EndRule.K_CLOSEST
BETA_CLOSEST = EndRule.BETA_CLOSEST
# How many of the nearest candidates must have answered to end a
# BETA_CLOSEST lookup (go-libp2p-kad-dht's resiliency parameter).
BETA = 3


@dataclass
class LookupResult:
    """
    How a lookup went.

    @ivar found: the target's contact, if it answered (lookups for a node).
    @ivar closest: the nearest nodes that answered, nearest first (at most k).
    @ivar rounds: rounds of requests, the target's own included (when it
        answered, the round it was asked in).
    @ivar namedIn: the round whose answer first named the target (0: it
        was known before the lookup; None: never named).
    @ivar heard: how many nodes it knew of, from its seeds and the answers.
    @ivar asked: requests sent; C{failed} of them got no answer.
    @ivar path: C{(round, node id, answered)} of every request, in order.
    @ivar elapsed: seconds from start to end.
    """

    target: int
    found: Optional[Contact] = None
    closest: List[Contact] = field(default_factory=list)
    rounds: int = 0
    namedIn: Optional[int] = None
    heard: int = 0
    asked: int = 0
    failed: int = 0
    path: List[Tuple[int, str, bool]] = field(default_factory=list)
    elapsed: float = 0.0


class _Candidate:
    __slots__ = ("contact", "distance", "round", "state")
    # FORGED: named with a record its node did not sign, so never asked;
    # another answer may name it with its own.
    NEW, ASKING, ANSWERED, FAILED, FORGED = range(5)

    def __init__(self, contact: Contact, target: int, round: int) -> None:
        self.contact = contact
        self.distance = contact.dhtId ^ target
        self.round = round
        self.state = self.NEW


# ask(contact) fires with the contacts its answer names, or fails.
Ask = Callable[[Contact], "Deferred[List[Contact]]"]


class Lookup:
    """
    One lookup for C{target} (a 256-bit id), started from C{seeds}.

    @param ask: sends one request and fires with the contacts named in
        the answer (not yet verified: they are only candidates), or fails
        (no answer in time, no link).
    @param targetNodeId: for a lookup of a node, its id (its answer ends a
        L{FIND_TARGET} lookup).
    @param now: the clock, in seconds.
    @param budget: the most requests it sends (none: no bound); a refresh
        needs only a few answers from near its target.
    @param firstRound: how many of the nearest seeds it asks at once to
        begin with (at least C{alpha}): each may know the target itself.
    @param refill: the contacts the routing table knows nearest the target
        now.  A lookup left with nobody to ask before k answered takes
        from them those it has not met: while it waited, the table may
        have learned more than the seeds it began with (a newcomer's one
        first link, gone before it answered).
    @param enough: for a L{BETA_CLOSEST} lookup, may it end yet?  Until
        then it asks on among the k nearest, as L{K_CLOSEST} does.
    """

    def __init__(self, target: int, seeds: List[Contact], ask: Ask, *,
                 k: int, alpha: int, now: Callable[[], float],
                 ownNodeId: str = "", targetNodeId: Optional[str] = None,
                 endRule: EndRule = FIND_TARGET,
                 budget: Optional[int] = None,
                 firstRound: int = 0,
                 refill: Optional[Callable[[], List[Contact]]] = None,
                 enough: Optional[Callable[[], bool]] = None) -> None:
        self.target = target
        self.k = k
        self.alpha = alpha
        self._ask = ask
        self._now = now
        self._own = ownNodeId
        self._targetNodeId = targetNodeId
        self._budget = budget
        self._firstRound = firstRound
        self._refill = refill
        self._enough = enough
        self.endRule = endRule if targetNodeId is not None or \
            endRule is BETA_CLOSEST else K_CLOSEST
        self._candidates: Dict[str, _Candidate] = {}
        self._inFlight = 0
        self._started = now()
        self.result = LookupResult(target)
        self.done: "Deferred[LookupResult]" = Deferred()
        for contact in seeds:
            self._add(contact, 1)
        if targetNodeId in self._candidates:
            self.result.namedIn = 0

    def start(self) -> "Deferred[LookupResult]":
        """Send the first requests; the result fires once the lookup ends."""
        for candidate in self._nearest()[:self._firstRound]:
            self._send(candidate)
        self._pump()
        return self.done

    def _add(self, contact: Contact, round: int) -> None:
        known = self._candidates.get(contact.nodeId)
        if contact.nodeId == self._own or known is not None and \
                known.state != _Candidate.FORGED:
            return
        self._candidates[contact.nodeId] = _Candidate(contact, self.target,
                                                      round)
        if contact.nodeId == self._targetNodeId and \
                self.result.namedIn is None:
            self.result.namedIn = round - 1

    def _nearest(self) -> List[_Candidate]:
        """The k nearest candidates that have not failed, nearest first."""
        alive = [c for c in self._candidates.values()
                 if c.state < _Candidate.FAILED]
        alive.sort(key=lambda c: c.distance)
        return alive[:self.k]

    def _pump(self) -> None:
        if self.done.called:
            return
        nearest = self._nearest()
        if self.endRule is BETA_CLOSEST and len(nearest) >= BETA and all(
                c.state == _Candidate.ANSWERED for c in nearest[:BETA]) and \
                (self._enough is None or self._enough()):
            self._finish()
            return
        target = self._candidates.get(self._targetNodeId or "")
        if target is not None and target.state == _Candidate.NEW and \
                self.endRule is FIND_TARGET:
            self._send(target)  # Beyond alpha: its answer ends the lookup.
        for candidate in nearest:
            if self._inFlight >= self.alpha:
                break
            if candidate.state == _Candidate.NEW:
                self._send(candidate)
        if self._inFlight == 0 and not self._refilled():
            self._finish()

    def _spent(self) -> bool:
        """Has it asked as many as its budget allows?"""
        return self._budget is not None and self.result.asked >= self._budget

    def _refilled(self) -> bool:
        """Took new candidates from the table (see C{refill}), and asked."""
        if self._refill is None or self._spent():
            return False
        answered = sum(1 for c in self._candidates.values()
                       if c.state == _Candidate.ANSWERED)
        if answered >= self.k:
            return False
        new = [c for c in self._refill() if c.nodeId not in self._candidates
               and c.nodeId != self._own]
        if not new:
            return False
        for contact in new:
            self._add(contact, 1)
        self._pump()
        return True

    def _send(self, candidate: _Candidate) -> None:
        if self._spent():
            return
        candidate.state = _Candidate.ASKING
        self._inFlight += 1
        self.result.asked += 1
        self.result.rounds = max(self.result.rounds, candidate.round)
        d = self._ask(candidate.contact)
        d.addCallbacks(self._answered, self._failed,
                       callbackArgs=(candidate,), errbackArgs=(candidate,))

    def _answered(self, named: List[Contact], candidate: _Candidate) -> None:
        self._inFlight -= 1
        candidate.state = _Candidate.ANSWERED
        self.result.path.append((candidate.round, candidate.contact.nodeId,
                                 True))
        if self.done.called:
            return
        for contact in named[:self.k]:
            self._add(contact, candidate.round + 1)
        if candidate.contact.nodeId == self._targetNodeId and \
                self.endRule is FIND_TARGET:
            self.result.found = candidate.contact
            self._finish()
            return
        self._pump()

    def _failed(self, reason: Failure, candidate: _Candidate) -> None:
        self._inFlight -= 1
        if reason.check(ForgedRecord):  # Not asked after all.
            candidate.state = _Candidate.FORGED
            self.result.asked -= 1
            self._pump()
            return
        candidate.state = _Candidate.FAILED
        self.result.failed += 1
        self.result.path.append((candidate.round, candidate.contact.nodeId,
                                 False))
        self._pump()

    def _finish(self) -> None:
        if self.done.called:
            return
        answered = [c for c in self._candidates.values()
                    if c.state == _Candidate.ANSWERED]
        answered.sort(key=lambda c: c.distance)
        self.result.closest = [c.contact for c in answered[:self.k]]
        self.result.heard = len(self._candidates)
        target = self._candidates.get(self._targetNodeId or "")
        if target is not None and target.state == _Candidate.ANSWERED:
            self.result.found = target.contact
            if self.endRule is FIND_TARGET:
                # What was in flight as it answered is not on its path.
                self.result.rounds = target.round
        self.result.elapsed = self._now() - self._started
        self.done.callback(self.result)
