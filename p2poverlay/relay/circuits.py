"""
CircuitTable: the circuits of one node, by link and circuit id.

A node may be an end of circuits (L{p2poverlay.relay.client}) and relay
others (L{p2poverlay.relay.service}) over the same link; a circuit id
names one circuit on one link, whichever its role.  CIRCUIT_DATA,
CIRCUIT_CREDIT and CIRCUIT_CLOSE go to the circuit their id names on
their link.  A circuit just closed is remembered for a while: what its
peer sent before it heard of the close is ignored, not held against it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import (
    Any, Callable, Dict, FrozenSet, Iterator, List, Optional, Tuple,
)

from zope.interface import Interface

from p2poverlay.relay.wire import CircuitClose, CircuitCredit, CircuitData

# Closed circuit ids remembered per link.
MAX_CLOSED = 256


class ICircuitEnd(Interface):
    """What a circuit's messages on one link go to."""

    def circuitData(message: CircuitData) -> None:
        """Bytes came on this circuit."""

    def circuitCredit(message: CircuitCredit) -> None:
        """Credit came on this circuit."""

    def circuitClosed(message: CircuitClose) -> None:
        """The other side closed this circuit."""

    def linkLost() -> None:
        """The link this circuit runs on has closed."""


class CircuitTable:
    """
    The circuits of one node: (link, cid) -> an L{ICircuitEnd}.

    @ivar linkListeners: called with each watched link once it closes,
        after its circuits are told.
    """

    # Empty for most nodes, so one empty set the class holds until a
    # node needs its own (each is replaced, never changed in place).
    _watched: FrozenSet[Any] = frozenset()

    def __init__(self) -> None:
        self._ends: Dict[Tuple[Any, str], Any] = {}
        self._closed: Dict[Any, "OrderedDict[str, None]"] = {}
        self.linkListeners: List[Callable[[Any], None]] = []

    def __len__(self) -> int:
        return len(self._ends)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._ends.values()))

    def get(self, link: Any, cid: str) -> Optional[Any]:
        return self._ends.get((link, cid))

    def inUse(self, link: Any, cid: str) -> bool:
        """Does C{cid} name a circuit on C{link}, open or just closed?"""
        return (link, cid) in self._ends or cid in self._closed.get(link, ())

    def add(self, link: Any, cid: str, end: Any) -> None:
        """C{cid} on C{link} is C{end}'s (replacing what it was)."""
        self._ends[(link, cid)] = end
        self.watch(link)

    def remove(self, link: Any, cid: str) -> None:
        """C{cid} on C{link} is closed."""
        if self._ends.pop((link, cid), None) is None or link.closing:
            return
        closed = self._closed.setdefault(link, OrderedDict())
        closed[cid] = None
        if len(closed) > MAX_CLOSED:
            closed.popitem(last=False)

    def onLink(self, link: Any) -> List[Any]:
        """The circuits on C{link}."""
        return [end for (other, _), end in self._ends.items() if other is link]

    def watch(self, link: Any) -> None:
        """Tell the circuits and L{linkListeners} when C{link} closes."""
        if link not in self._watched:
            self._watched |= {link}
            link.whenClosed().addCallback(lambda _: self._linkClosed(link))

    def _linkClosed(self, link: Any) -> None:
        self._watched -= {link}
        for end in self.onLink(link):
            end.linkLost()
        for key in [key for key in self._ends if key[0] is link]:
            del self._ends[key]
        self._closed.pop(link, None)
        for listener in self.linkListeners:
            listener(link)

    # -- the messages -------------------------------------------------------

    def _endFor(self, link: Any, cid: str) -> Optional[Any]:
        end = self._ends.get((link, cid))
        if end is None and cid not in self._closed.get(link, ()):
            link.protocolError(f"unknown circuit {cid}")
        return end

    def dataReceived(self, link: Any, message: CircuitData) -> None:
        end = self._endFor(link, message.cid)
        if end is not None:
            end.circuitData(message)

    def creditReceived(self, link: Any, message: CircuitCredit) -> None:
        end = self._endFor(link, message.cid)
        if end is not None:
            end.circuitCredit(message)

    def closeReceived(self, link: Any, message: CircuitClose) -> None:
        end = self._endFor(link, message.cid)
        if end is not None:
            self.remove(link, message.cid)
            end.circuitClosed(message)
