"""
Listening on a Twisted server endpoint before the reactor runs.

A service that listens in C{startService} fails only once the reactor
runs, leaving a process that serves nothing; the node and the web UI
listen in C{privilegedStartService} instead, and stop the start-up with a
one-line L{ListenError} when they cannot.
"""

from __future__ import annotations

from typing import List

from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.python.failure import Failure

from p2poverlay.errors import ListenError


def listenOn(reactor, description: str, factory, kind: str,
             purpose: str = "") -> "Deferred[IListeningPort]":
    """
    Listen at the server endpoint C{description}.

    @param kind: names the endpoint in "bad I{kind} endpoint ...".
    @param purpose: follows "cannot listen" (e.g. " for the web UI").
    @return: fires with the port, or fails with a L{ListenError} whose text
        is one line.
    """
    try:
        endpoint = serverFromString(reactor, description)
    except (ValueError, KeyError, TypeError) as e:
        return fail(ListenError(f"bad {kind} endpoint {description!r}: {e}"))

    def failed(reason: Failure) -> Failure:
        # CannotListenError's own text repeats the address; its socket
        # error says what went wrong ("Address already in use").
        why = getattr(reason.value, "socketError", None)
        why = getattr(why, "strerror", None) or reason.getErrorMessage()
        return Failure(ListenError(
            f"cannot listen{purpose} on {description}: {why}"))

    return endpoint.listen(factory).addErrback(failed)


def raiseIfFailed(listening: "Deferred[IListeningPort]") -> None:
    """
    From C{privilegedStartService}: if listening has already failed (as it
    does at once for TCP and UNIX endpoints), raise its L{ListenError}.
    """
    if not listening.called:
        return
    failure: List[Failure] = []
    listening.addErrback(failure.append)
    if failure:
        failure[0].raiseException()


class ListensBeforeRunning:
    """
    Mixin for a L{twisted.application.service.Service} that listens in
    C{privilegedStartService}.  The class provides C{reactor},
    C{listening} (a Deferred), C{port} and C{_listenPending} (False), a
    C{listenTarget()} giving the arguments of L{listenOn} after the
    reactor, and a C{_listened(port)} that fires C{listening}.
    """

    def privilegedStartService(self) -> None:
        """
        Listen before the reactor runs, so that a port in use stops the
        program at start-up.

        @raise ListenError: if the endpoint cannot listen.
        """
        super().privilegedStartService()  # type: ignore[misc]
        self._listen()
        raiseIfFailed(self.listening)

    def _listen(self) -> None:
        if self.port is not None or self.listening.called \
                or self._listenPending:
            return
        self._listenPending = True
        d = listenOn(self.reactor, *self.listenTarget())
        d.addCallbacks(self._listened, self.listening.errback)
