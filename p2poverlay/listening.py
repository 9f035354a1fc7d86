"""
Listening on a Twisted server endpoint before the reactor runs.

A service that listens in C{startService} fails only once the reactor
runs, leaving a process that serves nothing.  Twisted's own
L{StreamServerEndpointService} listens in C{privilegedStartService} and,
with C{_raiseSynchronously} set (as C{twisted.application.strports.service}
sets it), raises there when the endpoint fails at once.
L{ListeningService} adds what the node and the web UI need on top: a
one-line L{ListenError} instead of Twisted's own errors, the port once it
is bound, and a Deferred that fires then.
"""

from __future__ import annotations

from typing import Callable, List, Optional

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IAddress, IListeningPort, IStreamServerEndpoint,
)
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from zope.interface import implementer

from p2poverlay.errors import ListenError


def listenError(description: str, reason: Failure,
                purpose: str = "") -> ListenError:
    """
    Why listening on C{description} failed, in one line.

    @param purpose: follows "cannot listen" (e.g. " for the web UI").
    """
    # CannotListenError's own text repeats the address; its socket error
    # says what went wrong ("Address already in use").
    why = getattr(reason.value, "socketError", None)
    why = getattr(why, "strerror", None) or reason.getErrorMessage()
    return ListenError(f"cannot listen{purpose} on {description}: {why}")


def probe(reactor, description: str, kind: str, purpose: str = "") -> None:
    """
    Listen on C{description} and close again at once, before the reactor
    runs: whether a daemon, which listens only once it has left the
    terminal, will be able to.

    @raise ListenError: if it cannot, in one line.
    """
    outcome: List[object] = []
    endpoint = _DescribedEndpoint(
        lambda text: serverFromString(reactor, text), description, kind,
        purpose, Deferred().addErrback(lambda _: None))
    endpoint.listen(Factory()).addBoth(outcome.append)
    if outcome and isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    if outcome:
        outcome[0].stopListening()  # type: ignore[attr-defined]
        # A port closes its socket on the reactor's next turn: take that
        # turn now, so that the daemon finds the port free.
        reactor.runUntilCurrent()


@implementer(IStreamServerEndpoint)
class _DescribedEndpoint:
    """
    The endpoint of a description, made when it is first listened on; its
    failures are L{ListenError}s.
    """

    def __init__(self, makeEndpoint: Callable[[str], IStreamServerEndpoint],
                 description: str, kind: str, purpose: str,
                 outcome: Deferred) -> None:
        self.makeEndpoint = makeEndpoint
        self.description = description
        self.kind = kind
        self.purpose = purpose
        self.outcome = outcome

    def listen(self, factory) -> "Deferred[IListeningPort]":
        try:
            endpoint = self.makeEndpoint(self.description)
        except (ValueError, KeyError, TypeError) as e:
            d = fail(ListenError(
                f"bad {self.kind} endpoint {self.description!r}: {e}"))
        else:
            d = endpoint.listen(factory).addErrback(
                lambda reason: Failure(listenError(
                    self.description, reason, self.purpose)))
        d.addBoth(self._report)
        return d

    def _report(self, result):
        """Tell whoever waits on C{outcome}, and pass the result on."""
        if isinstance(result, Failure):
            self.outcome.errback(result)
        else:
            self.outcome.callback(result)
        return result


class ListeningService(StreamServerEndpointService):
    """
    Listens with C{factory} on the endpoint C{description} from
    C{privilegedStartService}.

    @ivar port: the listening port once bound, else L{None}.
    @ivar address: its address (its C{getHost()}), once bound.
    @ivar listening: fires with the port, or fails with a L{ListenError}.
    @param makeEndpoint: makes a server endpoint from a description
        (L{p2poverlay.network.INetwork.serverEndpoint}).
    @param kind: names the endpoint in "bad I{kind} endpoint ...".
    @param purpose: follows "cannot listen" (e.g. " for the web UI").
    @param onListening: called with the port once it is bound, before
        L{listening} fires.
    """

    def __init__(self, makeEndpoint: Callable[[str], IStreamServerEndpoint],
                 description: str, factory, kind: str, purpose: str = "",
                 onListening: Optional[Callable[[IListeningPort], None]] = None
                 ) -> None:
        self.description = description
        self.port: Optional[IListeningPort] = None
        # Kept: every HELLO says it, and asking the port is a system call.
        self.address: Optional[IAddress] = None
        self.listening: Deferred[IListeningPort] = Deferred()
        self._onListening = onListening
        bound: Deferred[IListeningPort] = Deferred()
        bound.addCallback(self._listened)
        bound.chainDeferred(self.listening)
        super().__init__(
            _DescribedEndpoint(makeEndpoint, description, kind, purpose,
                               bound), factory)
        self._raiseSynchronously = True

    def privilegedStartService(self) -> None:
        """
        Listen now (once).

        @raise ListenError: if the endpoint fails at once, as TCP and UNIX
            endpoints do; the raise is the report (L{listening} says no
            more of it).
        """
        self._listenNow(raiseFailure=True)

    def startService(self) -> None:
        """Listen, unless already listening; a failure goes to L{listening}."""
        Service.startService(self)
        self._listenNow(raiseFailure=False)

    def _listenNow(self, raiseFailure: bool) -> None:
        if self._waitingForPort is not None:
            return
        try:
            StreamServerEndpointService.privilegedStartService(self)
        except ListenError:
            if raiseFailure:
                self.listening.addErrback(lambda _: None)
                raise

    def _listened(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        self.address = port.getHost()
        if self._onListening is not None:
            self._onListening(port)
        return port

    def stopService(self) -> "Deferred[None]":
        """Stop listening (or trying to)."""
        self.port = None
        self.address = None
        if self._waitingForPort is None:
            self.running = False
            return succeed(None)
        return super().stopService()
