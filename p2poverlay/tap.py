"""
The twistd plugin's options and service: ``twistd -n p2p --port 9000``.
"""

from __future__ import annotations

import os
import re
import sys
from typing import List, Optional

from twisted.application.service import IService, MultiService
from twisted.python import usage

from p2poverlay.collector import tuneCollector
from p2poverlay.console import ConsoleService, stdinIsNull
from p2poverlay.control import ControlService
from p2poverlay.errors import ListenError
from p2poverlay.message import MAX_NAME_LENGTH, isNodeId
from p2poverlay.config import ConfigError, NodeConfig
from p2poverlay.node import Node
from p2poverlay.addresses import parseAddress
from p2poverlay.identity import KeyFileError
from p2poverlay.private import loadAllowList, loadNetworkKey
from p2poverlay.relay.options import RELAY_FLAGS, RELAY_SETTINGS
from p2poverlay.store import NodeStore, StoreLocked
from p2poverlay.tapendpoints import (
    checkListening, controlDescription, listenDescription, portLabel,
    webDescription,
)
from p2poverlay.taphelp import (
    BYTES, COUNT, HOPS, MODE, RATE, SECONDS, SYNOPSIS, formatHelp,
)
from p2poverlay.whereabouts import Whereabouts, logDestination

# twistd's own default; left as it is, it is replaced (see _adjustTwistd).
_TWISTD_DEFAULT_PIDFILE = "twistd.pid"
_DEFAULTS = NodeConfig()


# Options that set a NodeConfig field: (option, field, kind, help).
_NODE_SETTINGS = [
    ("min-peers", "minPeers", COUNT,
     "Neighbours this node dials until it has at least this many."),
    ("max-peers", "maxPeers", COUNT,
     "Most neighbours; beyond it, newcomers are sent other addresses."),
    ("max-direct-links", "maxDirectLinks", COUNT,
     "Most extra connections kept for direct messages to nodes that are "
     "not neighbours (closed after a minute unused)."),
    ("broadcast", "broadcastMode", MODE,
     "How broadcasts spread: 'tree' (payload along a spanning tree, ids to "
     "the other neighbours) or 'flood' (payload to every neighbour)."),
    ("max-line-length", "maxLineLength", BYTES,
     "Largest message accepted from a peer, in bytes; a peer that sends a "
     "longer one is disconnected."),
    ("handshake-timeout", "handshakeTimeout", SECONDS,
     "Seconds a new connection has to complete its HELLO handshake."),
    ("broadcast-ttl", "broadcastTTL", HOPS,
     "How many hops a broadcast travels at most."),
    ("ping-interval", "pingInterval", SECONDS,
     "Seconds between liveness probes (PING) to each peer."),
    ("peer-timeout", "peerTimeout", SECONDS,
     "Seconds of silence after which a peer is taken for dead and dropped."),
    ("reconnect-max-delay", "reconnectMaxDelay", SECONDS,
     "Longest wait, in seconds, between two tries to redial a lost peer "
     "(the wait doubles from half a second, plus jitter)."),
    ("forget-after", "forgetAfter", SECONDS,
     "Seconds a lost peer may stay unreachable before it is forgotten."),
    ("max-inbound", "maxInbound", COUNT,
     "Most connections accepted from other nodes."),
    ("max-outbound", "maxOutbound", COUNT,
     "Most connections this node dials."),
    ("max-inbound-per-address", "maxInboundPerAddress", COUNT,
     "Most connections accepted from one address (twice as many from one "
     "/16 or IPv6 /32); none bind this host's own address."),
    ("max-neighbours-per-address", "maxNeighboursPerAddress", COUNT,
     "Most neighbours at one address (twice as many in one /16 or IPv6 "
     "/32); none bind this host's own address."),
    ("max-peers-per-exchange", "maxPeersPerExchange", COUNT,
     "Most addresses read from one PEERS message."),
    ("address-book-size", "addressBookSize", COUNT,
     "Most nodes remembered in the address book (a sample of the "
     "overlay, enough to find neighbours again)."),
    ("seen-cache-size", "seenCacheSize", COUNT,
     "Most broadcast ids remembered for duplicate suppression."),
    ("rate-limit", "messageRate", RATE,
     "Messages per second a peer may send; beyond it, reading from the "
     "peer pauses (TCP slows the sender down; nothing is lost, and it is "
     "no misbehaviour).  The default is above what an honest sender, "
     "which paces itself, reaches: it bounds the share of the node one "
     "flooding peer takes."),
    ("rate-burst", "messageBurst", RATE,
     "Messages a peer may send at once, beyond the rate limit."),
    ("ban-time", "banTime", SECONDS,
     "Seconds a node id or an address that misbehaves is banned (a banned "
     "address still gets one new connection every 10 s)."),
    ("max-send-buffer", "maxSendBuffer", BYTES,
     "Bytes queued for a peer that reads slowly; beyond it broadcasts to it "
     "are dropped and direct messages fail."),
    ("dht-k", "dhtK", COUNT, "Contacts per bucket of the routing table, and "
     "how many nodes a lookup ends with (Kademlia's k)."),
    ("dht-b", "dhtB", COUNT, "Bits of id each hop of a lookup gains beyond "
     "log2 k (Kademlia's b): buckets away from the node's own id split into "
     "up to 2^b - 1 per b bits of prefix, for fewer hops at the cost of a "
     "larger table (1: only the bucket of the own id splits)."),
    ("dht-alpha", "dhtAlpha", COUNT, "Requests a lookup keeps in flight."),
    ("dht-max-lookups", "dhtMaxLookups", COUNT, "Most lookups under way at "
     "once; more fail at once."),
    ("dht-request-timeout", "dhtRequestTimeout", SECONDS, "Seconds a DHT "
     "request waits for its answer, the link to its node included (up to "
     "four times as long where answers come late)."),
    ("dht-refresh-interval", "dhtRefreshInterval", SECONDS, "Seconds after "
     "which a bucket no lookup went into is refreshed by one."),
    ("dht-request-rate", "dhtRequestRate", RATE, "DHT requests answered per "
     "peer per second (the rest are not answered)."),
] + RELAY_SETTINGS


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run a p2poverlay node: listen for peers, join an overlay through "
        "any member with --join, and (in the foreground) read commands "
        "from a console on standard input.")

    optParameters = [
        ["port", "p", "9000",
         "Port to listen on for peers (0 picks a free one), or a Twisted "
         "server endpoint such as tcp:9000:interface=127.0.0.1."],
        ["name", None, "",
         f"A human label for this node, shown to peers (at most "
         f"{MAX_NAME_LENGTH} characters)."],
        ["data-dir", None, None,
         "Directory for this node's identity and saved peers (created if "
         "needed; '' for none). Default: p2p-PORT in the current directory, "
         "none with --port 0."],
        ["network-key-file", None, None,
         "A private overlay: admit only nodes that hold the secret in this "
         "file (at least 16 bytes, readable by its owner only)."],
        ["allow-file", None, None,
         "Admit only the node ids listed in this file, one a line."],
        ["control", None, None,
         "Where to listen for p2p-console: a Twisted server endpoint such as "
         "unix:/path/ctl.sock or tcp:7001 (a bare port, or TCP without an "
         "interface, listens on 127.0.0.1 only; TCP asks clients for the "
         "cookie in DATA-DIR/control.cookie), or 'none'. Default: the socket "
         "control.sock in the data directory (none without a data "
         "directory)."],
        ["web", None, None,
         "Serve the web UI, JSON API and /metrics on this endpoint, such as "
         "tcp:8080:interface=127.0.0.1 (a bare port number listens on "
         "127.0.0.1 only). Off by default."],
        ["web-token", None, None,
         "Require this token of every API request (Authorization: Bearer "
         "TOKEN, or ?token=TOKEN)."],
        ["web-token-file", None, None,
         "Read the web token from this file (keeps it out of the process "
         "list)."],
    ] + [[option, None, getattr(_DEFAULTS, field), help,
          kind.forOption(option)]
         for option, field, kind, help in _NODE_SETTINGS]
    optFlags = [
        ["no-console", None,
         "Do not read commands from standard input (there is never a "
         "console when twistd runs as a daemon)."],
        ["no-dht", None,
         "Take no part in routing by id: look nothing up (send reaches "
         "only nodes this node knows of), join no DHT, and tell peers to "
         "keep this node out of their routing tables."],
        ["insecure-plaintext", None,
         "Peer links without TLS, for debugging or as a benchmark baseline "
         "only: anyone on the path can read and change them, and any node "
         "can claim any node id."],
    ] + RELAY_FLAGS

    def __init__(self) -> None:
        super().__init__()
        self["join"] = []  # (host, port) pairs
        self["pins"] = []  # (host, port, node id) of ID@HOST:PORT joins

    def getSynopsis(self) -> str:
        return SYNOPSIS

    def getUsage(self, width: Optional[int] = None) -> str:
        return formatHelp(self, width or 79)

    def parseOptions(self, options: Optional[List[str]] = None) -> None:
        """
        Parse the options; under twistd, a bad one stops the program with
        one line naming it and a hint, not the whole usage.
        """
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            if self.parent is None:
                raise
            print(f"twistd p2p: {e}\nsee 'twistd p2p --help'",
                  file=sys.stderr, flush=True)
            raise SystemExit(1) from None

    def opt_join(self, address: str) -> None:
        """Join the overlay through the member at HOST:PORT (repeatable; IPv6 as [::1]:9000); as ID@HOST:PORT, only if it is node ID."""  # noqa: E501
        nodeId, at, address = address.rpartition("@")
        try:
            host, port = parseAddress(address)
        except ValueError as e:
            raise usage.UsageError(f"--join: {e}") from None
        if at and not isNodeId(nodeId):
            raise usage.UsageError(f"--join: {nodeId!r} is not a node id "
                                   f"(64 lowercase hex digits)")
        self["join"].append((host, port))
        if at:
            self["pins"].append((host, port, nodeId))

    def postOptions(self) -> None:
        self["listen"] = listenDescription(self["port"])
        if self["data-dir"] is None:
            label = portLabel(self["listen"])
            self["data-dir"] = "" if label.startswith("pid") else f"p2p-{label}"
        if self["data-dir"]:
            # twistd may change directory (--rundir) before the node starts.
            self["data-dir"] = os.path.abspath(self["data-dir"])
        self["control-default"] = self["control"] is None
        self["control"] = controlDescription(self["control"], self["data-dir"])
        self._webOptions()
        try:
            nodeConfig(self).check()
        except ConfigError as e:
            raise usage.UsageError(optionNames(e)) from None
        except KeyFileError as e:
            raise usage.UsageError(str(e)) from None
        self._adjustTwistd()

    def _webOptions(self) -> None:
        web, tokenFile = self["web"], self["web-token-file"]
        if web is not None:
            self["web"] = webDescription(web)
        if tokenFile is not None:
            if self["web-token"] is not None:
                raise usage.UsageError(
                    "give --web-token or --web-token-file, not both")
            try:
                with open(tokenFile, encoding="utf-8") as f:
                    self["web-token"] = f.read().strip()
            except (OSError, UnicodeDecodeError) as e:
                raise usage.UsageError(f"--web-token-file: {e}") from None
        token = self["web-token"]
        if token is not None and (not token or not token.isprintable()
                                  or " " in token):
            raise usage.UsageError(
                "the web token must be printable characters without spaces")
        if token is not None and web is None:
            raise usage.UsageError("a web token needs --web")

    def _adjustTwistd(self) -> None:
        """
        Fit twistd's defaults to nodes that share a working directory.

        twistd writes C{twistd.pid} there by default and refuses to start a
        second server: unless C{--pidfile} was given, a node in the
        foreground writes no pid file and a daemon writes C{node.pid} in its
        data directory.

        A daemon logs to C{twistd.log} by default, which daemons sharing the
        directory would all write at once; in the foreground twistd logs to
        standard output, where the console is.  Unless C{--logfile} was
        given, a daemon and a node with a console log to C{node.log} in
        their data directory (and the console shows warnings and errors).
        A node without a data directory uses C{p2p-PORT.pid} and
        C{p2p-PORT.log} in the working directory instead.
        """
        parent = self.parent
        self["foreground"] = bool(parent and parent.get("nodaemon"))
        self["console"] = (self["foreground"] and not self["no-console"]
                           and not stdinIsNull())
        if parent is None:
            return
        # Each node's files under its one directory, where it has one.
        if self["data-dir"]:
            pidFile = os.path.join(self["data-dir"], "node.pid")
            logFile = os.path.join(self["data-dir"], "node.log")
        else:
            label = portLabel(self["listen"])
            pidFile, logFile = f"p2p-{label}.pid", f"p2p-{label}.log"
        # twistd makes the pid file's path absolute only after this runs,
        # so its default still reads exactly "twistd.pid" here.
        if parent.get("pidfile") == _TWISTD_DEFAULT_PIDFILE:
            parent["pidfile"] = "" if self["foreground"] else pidFile
        if (self["console"] or not self["foreground"]) \
                and parent.get("logfile") is None:
            parent["logfile"] = logFile


class P2PService(MultiService):
    """
    The root service: a L{Node}, in the foreground its console, and its
    control endpoint.  A node that cannot listen stops the program with a
    one-line error.
    """

    def __init__(self, node: Node, foreground: bool,
                 console: bool = False, control: str = "",
                 controlOptional: bool = False,
                 whereabouts: Optional[Whereabouts] = None) -> None:
        super().__init__()
        self.node = node
        self.foreground = foreground
        # What the console's first screen shows; filled in below.
        self.whereabouts = whereabouts if whereabouts is not None \
            else Whereabouts()
        if console:
            # Started before the node, so that it shows what the node
            # reports as it starts (a corrupt file of saved peers).
            ConsoleService(node, whereabouts=self.whereabouts
                           ).setServiceParent(self)
        node.setServiceParent(self)
        if control:
            # After the node: it listens once the node does, and when the
            # process stops its clients are told before the node leaves.
            self.whereabouts.control = ControlService(
                node, control, optional=controlOptional,
                whereabouts=self.whereabouts)
            self.whereabouts.control.setServiceParent(self)

    def privilegedStartService(self) -> None:
        tuneCollector()  # This process serves the node.
        try:
            super().privilegedStartService()
        except ListenError as e:
            if self.foreground:
                # twistd has sent sys.stderr to its log, which is a file
                # when there is a console: tell the terminal itself.
                print(f"p2p: {e}", file=sys.__stderr__, flush=True)
                raise SystemExit(1) from None
            raise


def openStore(directory: str) -> NodeStore:
    """Open and lock the data directory, or stop with a one-line error."""
    store = NodeStore(directory)
    try:
        store.open()
    except (StoreLocked, OSError) as e:
        raise SystemExit(f"p2p: {e}") from None
    return store


def nodeConfig(options: Options) -> NodeConfig:
    """The node's settings, from the parsed options."""
    return NodeConfig(
        listen=options["listen"],
        name=options["name"],
        join=tuple(options["join"]),
        pins=tuple(options["pins"]),
        networkKey=(loadNetworkKey(options["network-key-file"])
                    if options["network-key-file"] else None),
        allowed=(loadAllowList(options["allow-file"])
                 if options["allow-file"] else None),
        plaintext=bool(options["insecure-plaintext"]),
        dht=not options["no-dht"],
        relay=not options["no-relay"],
        **{field: options[option] for option, field, _, _ in _NODE_SETTINGS})


_OPTION_OF = dict({field: option for option, field, _, _ in _NODE_SETTINGS},
                  name="name", join="join", listen="port",
                  networkKey="network-key-file",
                  plaintext="insecure-plaintext", dht="no-dht",
                  relay="no-relay")


def optionNames(error: ConfigError) -> str:
    """The text of C{error}, naming the options instead of the settings."""
    text = str(error)
    for field in error.fields:
        text = re.sub(rf"\b{field}\b", f"--{_OPTION_OF.get(field, field)}",
                      text)
    return text


def makeService(options: Options) -> IService:
    if options.parent is not None and not options.get("foreground", False):
        checkListening(options)
    try:
        config = nodeConfig(options)
        store = openStore(options["data-dir"]) if options["data-dir"] else None
        node = Node(config, store=store)
    except KeyFileError as e:
        raise SystemExit(f"p2p: {e}") from None
    except ConfigError as e:
        raise SystemExit(f"p2p: {optionNames(e)}") from None
    if config.plaintext:
        Node.log.warn("WARNING: --insecure-plaintext: peer links are not "
                      "encrypted, and nothing proves a node id")
    whereabouts = Whereabouts(log=logDestination(options.parent),
                              dataDir=options["data-dir"] or None)
    service = P2PService(node, options.get("foreground", False),
                         console=options.get("console", False),
                         control=options.get("control", ""),
                         controlOptional=options.get("control-default", False),
                         whereabouts=whereabouts)
    if options.get("web"):
        from p2poverlay.web import WebService
        whereabouts.web = WebService(node, options["web"],
                                     token=options.get("web-token"))
        whereabouts.webToken = bool(options.get("web-token"))
        whereabouts.web.setServiceParent(service)
    return service
