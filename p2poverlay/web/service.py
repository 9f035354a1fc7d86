"""
WebService: a node's web UI, JSON API and ``/metrics`` on one endpoint.
"""

from __future__ import annotations

import os
import re
from typing import List, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web.http import combinedLogFormatter
from twisted.web.resource import Resource

from p2poverlay.listening import ListeningService
from p2poverlay.addresses import addressOf
from p2poverlay.web.api import APIResource, PrometheusResource
from p2poverlay.web.channel import GuardedSite
from p2poverlay.web.feed import Feed
from p2poverlay.web.guard import Guard, isLoopbackHost
from p2poverlay.web.jsonapi import JSONResource, bodyLimit
from p2poverlay.web.stream import EventsResource

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

# Sent with every static file: the page loads nothing from elsewhere and
# runs no inline script, so injected markup could not run either.
_PAGE_HEADERS = {
    b"content-security-policy":
        b"default-src 'self'; img-src 'self' data:; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
}


_CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
}


class StaticFile(Resource):
    """One file of the page, read once, served with the page's headers."""

    isLeaf = True

    def __init__(self, path: str) -> None:
        super().__init__()
        with open(path, "rb") as f:
            self.data = f.read()
        self.contentType = _CONTENT_TYPES[os.path.splitext(path)[1]]

    def render_GET(self, request) -> bytes:
        request.setHeader(b"content-type", self.contentType)
        for name, value in _PAGE_HEADERS.items():
            request.setHeader(name, value)
        return self.data


_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"]*")


def redactedLogFormatter(timestamp: str, request) -> str:
    """The combined access log format, with any ?token= value hidden."""
    return _TOKEN_IN_QUERY.sub(r"\1REDACTED",
                               combinedLogFormatter(timestamp, request))


class WebService(Service):
    """
    Serves the web UI of C{node} on a server endpoint.

    Listens in L{privilegedStartService}, before the reactor runs: an
    endpoint that cannot listen stops the program at start-up with a
    L{ListenError}.  A server reachable beyond loopback without a token
    logs a warning.

    @ivar listening: fires with the listening port.
    """

    log = Logger()

    def __init__(self, node, endpoint: str, token: Optional[str] = None,
                 reactor=None) -> None:
        self.node = node
        self.endpoint = endpoint
        self.token = token or None
        self.reactor = reactor if reactor is not None else node.reactor
        self.feed = Feed(self.reactor.seconds)
        self._exposed: Optional[str] = None
        self.events = EventsResource(self.feed, self.reactor)
        self._guards: List[Guard] = []
        self.site = self.buildSite()
        self.listener = ListeningService(
            lambda description: serverFromString(self.reactor, description),
            endpoint, self.site, "web", " for the web UI",
            onListening=self._listened)
        self.listening: Deferred[IListeningPort] = self.listener.listening

    @property
    def port(self) -> Optional[IListeningPort]:
        """The listening port, once the web UI listens."""
        return self.listener.port

    def buildSite(self) -> GuardedSite:
        """
        The page's files at the root, the API under C{/api/}, metrics at
        C{/metrics}; the last two behind L{Guard}s.  A request with a body
        must pass the same guard, and be within L{bodyLimit}, before its
        body is read.
        """
        root = JSONResource()
        root.putChild(b"", StaticFile(os.path.join(STATIC, "index.html")))
        for name in sorted(os.listdir(STATIC)):
            if os.path.splitext(name)[1] in _CONTENT_TYPES:
                root.putChild(name.encode("utf-8"),
                              StaticFile(os.path.join(STATIC, name)))
        # Whether the guards check the Host header is settled once the
        # port is bound (see _listened), before any request comes.
        self._guards = [
            Guard(APIResource(self.node, self.feed, self.events), self.token,
                  loopbackOnly=False),
            Guard(PrometheusResource(self.node), self.token,
                  loopbackOnly=False)]
        root.putChild(b"api", self._guards[0])
        root.putChild(b"metrics", self._guards[1])
        site = GuardedSite(root, bodyLimit(self.node.config.maxLineLength),
                           self._guards[0].check,
                           logFormatter=redactedLogFormatter)
        site.displayTracebacks = False
        return site

    def _listened(self, port: IListeningPort) -> None:
        address = port.getHost()
        host = getattr(address, "host", None)
        if host is None:
            where = str(getattr(address, "name", address))
        else:
            where = addressOf(port)
            loopback = isLoopbackHost(host)
            for guard in self._guards:
                guard.loopbackOnly = loopback
            if not loopback and self.token is None:
                self._exposed = where
        self.log.info("web UI on http://{address}/", address=where)

    def privilegedStartService(self) -> None:
        """
        Listen before the reactor runs, so that a port in use stops the
        program at start-up.

        @raise p2poverlay.errors.ListenError: if it cannot listen.
        """
        Service.privilegedStartService(self)
        self.listener.privilegedStartService()

    def startService(self) -> None:
        Service.startService(self)
        self.listener.startService()
        if self._exposed is not None:
            # Here rather than when listening: the console, if any, has
            # started by now and shows it.
            self.log.warn(
                "the web UI on {address} is reachable beyond this machine "
                "and anyone who reaches it can send as this node: give "
                "--web-token-file or listen on 127.0.0.1",
                address=self._exposed)
        self.node.addObserver(self.feed)
        self.events.start()

    def stopService(self) -> "Deferred[None]":
        Service.stopService(self)
        self.node.removeObserver(self.feed)
        self.events.stop()
        return self.listener.stopService()
