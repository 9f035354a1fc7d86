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

import dataclasses
import json
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Tuple, Type

PROTOCOL_VERSION = 1

MAX_NAME_LENGTH = 64
MAX_HOST_LENGTH = 255
MAX_REASON_LENGTH = 200
MAX_CODE_LENGTH = 32
MAX_TTL = 255
MAX_IDS = 1000

# What a connection is for, as its dialer says in HELLO.
NEIGHBOUR = "neighbour"  # part of the overlay: counts towards the degree
DIRECT = "direct"  # opened to deliver direct messages to a non-neighbour
ROLES = (NEIGHBOUR, DIRECT)

# 64 digits: the SHA-256 of the node's key; 32: a node without one (in
# memory, or plaintext).
_NODE_ID = re.compile(r"\A(?:[0-9a-f]{32}){1,2}\Z")
_MESSAGE_ID = re.compile(r"\A[0-9a-f]{32}\Z")
_PROOF = re.compile(r"\A[0-9a-f]{64}\Z")


class MessageError(ValueError):
    """A line that is no valid message; C{str()} of it is a one-line reason."""


def newNodeId() -> str:
    """A fresh random node id: 128 bits as 32 lowercase hex digits."""
    return uuid.uuid4().hex


def newMessageId() -> str:
    """A fresh random message id: 32 lowercase hex digits."""
    return os.urandom(16).hex()  # uuid4's source, without the UUID object


def isNodeId(value: str) -> bool:
    """Is C{value} a node id in its wire form?"""
    return bool(_NODE_ID.match(value))


def checkNodeId(value: str, field: str) -> None:
    if not _NODE_ID.match(value):
        raise MessageError(f"{field} must be 64 (or 32) lowercase hex digits")


def _checkMessageId(value: str, field: str = "id") -> None:
    if not _MESSAGE_ID.match(value):
        raise MessageError(f"{field} must be 32 lowercase hex digits")


def _checkPort(value: int, field: str, allowZero: bool = False) -> None:
    low = 0 if allowZero else 1
    if not low <= value <= 65535:
        raise MessageError(f"{field} out of range: {value}")


def _checkLength(value: str, field: str, limit: int) -> None:
    if len(value) > limit:
        raise MessageError(f"{field} longer than {limit} characters")


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
        for name, expected, _ in _fieldSpecs(type(self)):
            value = getattr(self, name)
            fields[name] = value if expected is str or expected is int \
                else _toJSON(value)
        return fields

    def encode(self) -> bytes:
        """
        Encode as one line of compact JSON in UTF-8, without the delimiter.
        A lone surrogate, which UTF-8 cannot carry, goes as its JSON escape.
        """
        return _encodeJSON(self.toDict()).encode("utf-8", "backslashreplace")

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
            obj = _decodeJSON(text)
        except (ValueError, RecursionError):
            raise MessageError("not valid JSON") from None
        return P2PMessage.fromDict(obj)

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
        values = {}
        for name, expected, required in _fieldSpecs(cls):
            if name not in obj:
                if required:
                    raise MessageError(f"{kind} lacks field {name!r}")
                continue
            value = obj[name]
            # The common cases inline; _fromJSON checks the rest.
            if expected is str and value.__class__ is str:
                values[name] = value
            else:
                values[name] = _fromJSON(kind, name, expected, value)
        message = cls(**values)
        message.validate()
        return message


# Compact JSON, without building an encoder for every message.  Text goes
# as UTF-8, not as \u escapes: a relayed message is never larger than the
# line it came in (an escape takes up to six bytes for one or two).
_encodeJSON = json.JSONEncoder(separators=(",", ":"),
                               ensure_ascii=False).encode
_decodeJSON = json.JSONDecoder().decode

# Message class -> ((field name, expected type, required), ...).
_SPECS: Dict[type, Tuple[Tuple[str, type, bool], ...]] = {}


def _fieldSpecs(cls: type) -> Tuple[Tuple[str, type, bool], ...]:
    """The wire fields of a message class, worked out once per class."""
    specs = _SPECS.get(cls)
    if specs is None:
        specs = _SPECS[cls] = tuple(
            (f.name, _FIELD_TYPES[str(f.type)],
             f.default is dataclasses.MISSING
             and f.default_factory is dataclasses.MISSING)
            for f in dataclasses.fields(cls))
    return specs


def _toJSON(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_toJSON(v) for v in value]
    if isinstance(value, PeerAddress):
        return value.toDict()
    return value


def _fromJSON(kind: str, name: str, expected: type, value: Any) -> Any:
    if expected is int:
        # bool is a subclass of int in Python, but not a number on the wire.
        if isinstance(value, bool) or not isinstance(value, int):
            raise MessageError(f"{kind} field {name!r} must be an integer")
        return value
    if expected is str:
        if not isinstance(value, str):
            raise MessageError(f"{kind} field {name!r} must be a string")
        return value
    if not isinstance(value, list):
        raise MessageError(f"{kind} field {name!r} must be a list")
    if expected is _StrList:
        if not all(isinstance(item, str) for item in value):
            raise MessageError(f"{kind} field {name!r} must be a list of "
                               f"strings")
        return tuple(value)
    return tuple(PeerAddress.fromDict(kind, item) for item in value)


@dataclass(frozen=True)
class PeerAddress:
    """One entry of a L{Peers} message: a node and where it listens."""

    node_id: str
    host: str
    port: int
    name: str = ""

    def toDict(self) -> Dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies, and PEERS carry dozens.
        return {"node_id": self.node_id, "host": self.host, "port": self.port,
                "name": self.name}

    @classmethod
    def fromDict(cls, kind: str, item: Any) -> "PeerAddress":
        if not isinstance(item, dict):
            raise MessageError(f"{kind} entry is not an object")
        try:
            node_id, host, port = item["node_id"], item["host"], item["port"]
        except KeyError as e:
            raise MessageError(f"{kind} entry lacks field {e.args[0]!r}") from None
        name = item.get("name", "")
        if not (isinstance(node_id, str) and isinstance(host, str)
                and isinstance(name, str)):
            raise MessageError(f"{kind} entry has a non-string field")
        if isinstance(port, bool) or not isinstance(port, int):
            raise MessageError(f"{kind} entry port must be an integer")
        checkNodeId(node_id, "node_id")
        _checkPort(port, "port")
        if not host:
            raise MessageError(f"{kind} entry has an empty host")
        _checkLength(host, "host", MAX_HOST_LENGTH)
        _checkLength(name, "name", MAX_NAME_LENGTH)
        return cls(node_id, host, port, name)


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

    def toDict(self) -> Dict[str, Any]:
        fields = super().toDict()
        if not self.network_proof:  # Outside private overlays.
            del fields["network_proof"]
        return fields

    def validate(self) -> None:
        checkNodeId(self.node_id, "node_id")
        if self.network_proof and not _PROOF.match(self.network_proof):
            raise MessageError("network_proof must be 64 lowercase hex digits")
        if self.version < 1:
            raise MessageError(f"bad protocol version {self.version}")
        # Port 0 announces a node that accepts no connections.
        _checkPort(self.port, "port", allowZero=True)
        _checkLength(self.name, "name", MAX_NAME_LENGTH)
        if self.role not in ROLES:
            raise MessageError(f"unknown role {self.role[:32]!r}")


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
        _checkMessageId(self.id)


@dataclass(frozen=True)
class Ack(P2PMessage):
    """Confirms that the L{Data} with this id reached the application."""

    TYPE: ClassVar[str] = "ACK"
    id: str

    def validate(self) -> None:
        _checkMessageId(self.id)


@dataclass(frozen=True)
class Broadcast(P2PMessage):
    """A message for every node; relayed while C{ttl} stays positive."""

    TYPE: ClassVar[str] = "BROADCAST"
    id: str
    origin: str
    ttl: int
    body: str
    origin_name: str = ""

    def validate(self) -> None:
        _checkMessageId(self.id)
        checkNodeId(self.origin, "origin")
        if not 0 <= self.ttl <= MAX_TTL:
            raise MessageError(f"ttl out of range: {self.ttl}")
        _checkLength(self.origin_name, "origin_name", MAX_NAME_LENGTH)


def _checkIds(ids: Tuple[str, ...]) -> None:
    if not ids:
        raise MessageError("ids is empty")
    if len(ids) > MAX_IDS:
        raise MessageError(f"more than {MAX_IDS} ids")
    for messageId in ids:
        _checkMessageId(messageId, "ids")


@dataclass(frozen=True)
class IHave(P2PMessage):
    """Tree broadcast: the sender has these broadcasts (ids only)."""

    TYPE: ClassVar[str] = "IHAVE"
    ids: Tuple[str, ...]

    def validate(self) -> None:
        _checkIds(self.ids)


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
            _checkIds(self.ids)


@dataclass(frozen=True)
class Prune(P2PMessage):
    """Tree broadcast: send me only ids from now on (leave the tree)."""

    TYPE: ClassVar[str] = "PRUNE"


@dataclass(frozen=True)
class Ping(P2PMessage):
    """Liveness probe; answered by a L{Pong} with the same nonce."""

    TYPE: ClassVar[str] = "PING"
    nonce: int


@dataclass(frozen=True)
class Pong(P2PMessage):
    """Answer to a L{Ping}."""

    TYPE: ClassVar[str] = "PONG"
    nonce: int


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
        _checkLength(self.reason, "reason", MAX_REASON_LENGTH)
        _checkLength(self.code, "code", MAX_CODE_LENGTH)


# Field annotations are strings (from __future__ import annotations).
class _StrList(tuple):
    pass


_FIELD_TYPES = {
    "str": str,
    "int": int,
    "Tuple[PeerAddress, ...]": tuple,
    "Tuple[str, ...]": _StrList,
}
