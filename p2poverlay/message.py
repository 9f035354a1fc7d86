"""
The p2poverlay wire format: one JSON object per line.

Every message is an object with a ``"type"`` field naming one of the
classes below; the other fields are that class's dataclass fields.  This
module is the only place where bytes become messages and back: decoding
validates every field and raises L{MessageError} with a one-line reason.

Unknown extra fields are ignored so that later protocol versions can add
optional fields; an unknown ``type`` is an error.  See ``docs/protocol.rst``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, Optional, Tuple, Type

from p2poverlay.wirevalues import (  # noqa: F401 (the wire's values, here too)
    MAX_CODE_LENGTH, MAX_HOST_LENGTH, MAX_IDS, MAX_INTEGER, MAX_NAME_LENGTH,
    MAX_PEER_ENTRIES, MAX_REASON_LENGTH, MAX_TTL, MessageError, areMessageIds,
    checkHex, checkIds, checkLength, checkMessageId, checkNodeId, checkPort,
    checkRange, checkSigned, isMessageId, isNodeId, newMessageId, newNodeId,
)
from p2poverlay.addresses import parseAddress
from p2poverlay.peeraddress import PeerAddress
from p2poverlay.wirefields import (  # noqa: F401 (registerEntryType: here too)
    fieldSpecs, fromJSON, registerEntryType, toJSON,
)
from p2poverlay.wirejson import dumps, loads, quoted

# 2: ACKS, confirming several DATA at once; 3: query connections (HELLO's
# query: a connection for DHT requests only, see p2poverlay.queries).
PROTOCOL_VERSION = 3
# An optional count a message leaves out (on the wire, counts are >= 0).
UNSAID = -1

# What a connection is for, as its dialer says in HELLO.
NEIGHBOUR = "neighbour"  # part of the overlay: counts towards the degree
DIRECT = "direct"  # opened to deliver direct messages to a non-neighbour
PROBE = "probe"  # a dial-back: is the node reachable where it asked?
ROLES = (NEIGHBOUR, DIRECT, PROBE)


_REGISTRY: Dict[str, Type["P2PMessage"]] = {}


@dataclass(frozen=True)
class P2PMessage:
    """
    Base of all wire messages.  Subclasses set C{TYPE} and declare their
    fields; L{P2PMessage.decode} picks the subclass from the ``type`` field.
    """

    TYPE: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.TYPE:
            _REGISTRY[cls.TYPE] = cls

    def validate(self) -> None:
        """Check value ranges beyond the field types; raise L{MessageError}."""

    def toDict(self) -> Dict[str, Any]:
        """The JSON object for this message, ``type`` included."""
        fields = {"type": self.TYPE}
        for name, expected, _ in fieldSpecs(type(self)):
            value = getattr(self, name)
            fields[name] = value if expected is str or expected is int \
                else toJSON(value)
        return fields

    def encode(self) -> bytes:
        """
        Encode as one line of compact JSON in UTF-8, without the delimiter.
        A lone surrogate, which UTF-8 cannot carry, goes as its JSON escape.
        """
        return dumps(self.toDict()).encode("utf-8", "backslashreplace")

    @staticmethod
    def decode(line: bytes) -> "P2PMessage":
        """
        Decode and validate one line (without its delimiter).

        @raise MessageError: for anything that is not a valid message.
        """
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise MessageError("not valid UTF-8") from None
        try:
            obj = loads(text)
        except (ValueError, RecursionError):
            raise MessageError("not valid JSON") from None
        kind = obj.get("type") if obj.__class__ is dict else None
        quick = _QUICK.get(kind) if kind.__class__ is str else None
        message = quick(obj) if quick is not None else None
        return message if message is not None else P2PMessage.fromDict(obj)

    @staticmethod
    def fromDict(obj: Any) -> "P2PMessage":
        """Build and validate a message from a decoded JSON value."""
        if not isinstance(obj, dict):
            raise MessageError("message is not a JSON object")
        kind = obj.get("type")
        if not isinstance(kind, str):
            raise MessageError("missing or non-string 'type'")
        cls = _REGISTRY.get(kind)
        if cls is None:
            raise MessageError(f"unknown message type {kind[:32]!r}")
        values: Dict[str, Any] = {}
        for name, expected, required in fieldSpecs(cls):
            if name not in obj:
                if required:
                    raise MessageError(f"{kind} lacks field {name!r}")
                continue
            value = obj[name]
            # The common cases inline; fromJSON checks the rest.
            if expected is str and value.__class__ is str:
                values[name] = value
            elif expected is int and value.__class__ is int \
                    and 0 <= value <= MAX_INTEGER:
                values[name] = value
            else:
                values[name] = fromJSON(kind, name, expected, value)
        message = cls(**values)
        message.validate()
        return message


@dataclass(frozen=True)
class Hello(P2PMessage):
    """First message on every connection, sent by both sides."""

    TYPE: ClassVar[str] = "HELLO"
    node_id: str
    version: int
    port: int
    name: str = ""
    role: str = NEIGHBOUR
    # In a private overlay: the proof that the sender holds its key.
    network_proof: str = ""
    # The sender's signed record of its address (a PeerAddress with
    # node_id, port and name from above); none from a node without a key.
    host: str = ""
    seq: int = 0
    key: str = ""
    signature: str = ""
    # How many overlay neighbours the sender has (absent: it does not say).
    neighbours: int = UNSAID
    # The receiver's end of the connection, as the sender sees it
    # (``host:port``): behind a NAT, the router's side of the mapping.
    observed: str = ""
    # On a prober's probe: the nonce the probed node asked to be dialed
    # back with (the probed node's own HELLO carries none).
    nonce: str = ""
    # 1: a query connection.  The dialer's DHT request follows this HELLO;
    # it carries DHT requests only, and neither end registers the other.
    # A node of version 2 ignores it and keeps a direct link, which
    # answers the request all the same.
    query: int = 0
    # 0: the sender serves no DHT requests (its routing by id is off);
    # nodes keep it out of their routing tables, as kad-dht's client mode.
    dht: int = 1

    def toDict(self) -> Dict[str, Any]:
        fields = super().toDict()
        if not self.network_proof:  # Outside private overlays.
            del fields["network_proof"]
        if self.neighbours == UNSAID:
            del fields["neighbours"]
        if not self.key:
            del fields["host"], fields["seq"], fields["key"], \
                fields["signature"]
        for optional in ("observed", "nonce", "query"):
            if not fields[optional]:
                del fields[optional]
        if self.dht == 1:
            del fields["dht"]
        return fields

    def validate(self) -> None:
        checkNodeId(self.node_id, "node_id")
        checkHex(self.network_proof, "network_proof", 64)
        checkSigned(self.key, self.signature)
        checkLength(self.host, "host", MAX_HOST_LENGTH)
        if self.key and not self.host:
            raise MessageError("HELLO has a signed address without a host")
        if self.version < 1:
            raise MessageError(f"bad protocol version {self.version}")
        # Port 0 announces a node that accepts no connections.
        checkPort(self.port, "port", allowZero=True)
        checkLength(self.name, "name", MAX_NAME_LENGTH)
        if self.role not in ROLES:
            raise MessageError(f"unknown role {self.role[:32]!r}")
        if self.observed:
            checkLength(self.observed, "observed", MAX_HOST_LENGTH + 8)
            try:
                parseAddress(self.observed)
            except ValueError as e:
                raise MessageError(f"HELLO field 'observed': {e}") from None
        checkHex(self.nonce, "nonce", 64)
        if self.nonce and self.role != PROBE:
            raise MessageError("HELLO has a nonce but does not probe")
        checkRange(self.query, "query", 1)
        checkRange(self.dht, "dht", 1)
        if self.query and self.role != DIRECT:
            raise MessageError("HELLO of a query connection is not direct")


@dataclass(frozen=True)
class Peers(P2PMessage):
    """Peer exchange: nodes the sender is connected to."""

    TYPE: ClassVar[str] = "PEERS"
    peers: Tuple[PeerAddress, ...]


@dataclass(frozen=True)
class Data(P2PMessage):
    """A direct message; the receiver answers with an L{Ack}."""

    TYPE: ClassVar[str] = "DATA"
    id: str
    body: str

    def validate(self) -> None:
        checkMessageId(self.id)

    def encode(self) -> bytes:
        # What the generic encoder writes, without building a dict.
        return ('{"type":"DATA","id":%s,"body":%s}' % (
            quoted(self.id), quoted(self.body))
        ).encode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Ack(P2PMessage):
    """Confirms that the L{Data} with this id reached the application."""

    TYPE: ClassVar[str] = "ACK"
    id: str

    def validate(self) -> None:
        checkMessageId(self.id)


@dataclass(frozen=True)
class Acks(P2PMessage):
    """Confirms several L{Data}, as an L{Ack} of each would (version 2)."""

    TYPE: ClassVar[str] = "ACKS"
    ids: Tuple[str, ...]

    def validate(self) -> None:
        checkIds(self.ids)


@dataclass(frozen=True)
class Broadcast(P2PMessage):
    """A message for every node; relayed while C{ttl} stays positive."""

    TYPE: ClassVar[str] = "BROADCAST"
    id: str
    origin: str
    ttl: int
    body: str
    origin_name: str = ""
    # When the origin sent it: milliseconds since the Unix epoch.
    time: int = 0
    # The origin's raw Ed25519 key and its signature of the message (see
    # p2poverlay.signing), in hex; empty from an origin without a key.
    key: str = ""
    signature: str = ""

    def toDict(self) -> Dict[str, Any]:
        fields = super().toDict()
        if not self.key:  # An origin without a key signs nothing.
            del fields["key"], fields["signature"]
        return fields

    def validate(self) -> None:
        checkMessageId(self.id)
        checkNodeId(self.origin, "origin")
        checkRange(self.ttl, "ttl", MAX_TTL)
        checkLength(self.origin_name, "origin_name", MAX_NAME_LENGTH)
        checkSigned(self.key, self.signature)


@dataclass(frozen=True)
class IHave(P2PMessage):
    """Tree broadcast: the sender has these broadcasts (ids only)."""

    TYPE: ClassVar[str] = "IHAVE"
    ids: Tuple[str, ...]

    def validate(self) -> None:
        checkIds(self.ids)


@dataclass(frozen=True)
class Graft(P2PMessage):
    """
    Tree broadcast: send me these broadcasts, and from now on send me
    every broadcast in full (join the tree through this link).
    """

    TYPE: ClassVar[str] = "GRAFT"
    ids: Tuple[str, ...] = ()

    def validate(self) -> None:
        if self.ids:
            checkIds(self.ids)


@dataclass(frozen=True)
class Prune(P2PMessage):
    """Tree broadcast: send me only ids from now on (leave the tree)."""

    TYPE: ClassVar[str] = "PRUNE"


@dataclass(frozen=True)
class _Probe(P2PMessage):
    """What L{Ping} and L{Pong} carry."""

    nonce: int
    # How many overlay neighbours the sender has (absent: it does not say).
    neighbours: int = UNSAID

    def toDict(self) -> Dict[str, Any]:
        fields = super().toDict()
        if self.neighbours == UNSAID:
            del fields["neighbours"]
        return fields


@dataclass(frozen=True)
class Ping(_Probe):
    """Liveness probe; answered by a L{Pong} with the same nonce."""

    TYPE: ClassVar[str] = "PING"


@dataclass(frozen=True)
class Pong(_Probe):
    """Answer to a L{Ping}."""

    TYPE: ClassVar[str] = "PONG"


@dataclass(frozen=True)
class Bye(P2PMessage):
    """
    The sender is closing this connection: C{reason} for people, C{code}
    (a L{p2poverlay.reasons.CloseKind} value) for the receiver to act on.
    """

    TYPE: ClassVar[str] = "BYE"
    reason: str = ""
    code: str = ""

    def validate(self) -> None:
        checkLength(self.reason, "reason", MAX_REASON_LENGTH)
        checkLength(self.code, "code", MAX_CODE_LENGTH)


# Quick builders of the messages that come by the thousand, from objects in
# the common form; None leaves the object (and its error) to fromDict.
def _quickData(obj: Dict[str, Any]) -> Optional[Data]:
    messageId, body = obj.get("id", ""), obj.get("body")
    if body.__class__ is str and isMessageId(messageId):
        return Data(messageId, body)
    return None


def _quickAcks(obj: Dict[str, Any]) -> Optional[Acks]:
    ids = obj.get("ids")
    if ids.__class__ is list and 0 < len(ids) <= MAX_IDS \
            and areMessageIds(ids):
        return Acks(tuple(ids))
    return None


_QUICK: Dict[str, Callable[[Dict[str, Any]], Optional[P2PMessage]]] = {
    Data.TYPE: _quickData, Acks.TYPE: _quickAcks}
