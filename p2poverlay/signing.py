"""
What a node signs with its key, and how every other node checks it.

Two things travel through the overlay on behalf of a node that is not the
sender: broadcasts (relayed hop by hop) and addresses (told in peer
exchange).  The node they are about signs each one with its Ed25519 key,
and carries its raw public key beside the signature, so that a receiver
who never met it can check both that the key is the one the node id is
derived from (the SHA-256 of the key) and that the key signed the bytes.
Signatures are made and checked with PyNaCl (libsodium), which checks
about three times as fast as C{cryptography} (which keeps the key, and
does TLS).

The signed bytes are a context string, then the fields in a fixed order,
numbers big-endian and texts length-prefixed, so that no two messages
sign the same bytes; ``docs/protocol.rst`` gives the layout.  Texts go as
UTF-8, a lone surrogate (which JSON can carry) as its three-byte form.

A node without a key (in memory, or a plaintext node given an id) signs
nothing; such unsigned records are taken only by nodes that do not insist
on signatures (L{Verifier.acceptUnsigned}).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Callable, List, Optional, Tuple

from cryptography.hazmat.primitives.serialization import (
    Encoding, NoEncryption, PrivateFormat,
)
from nacl.bindings import crypto_sign_open
from nacl.exceptions import CryptoError
from nacl.signing import SigningKey

from p2poverlay.identity import NodeKey, nodeIdOf
from p2poverlay.message import Broadcast, PeerAddress

BROADCAST_CONTEXT = b"p2poverlay/broadcast/1\x00"
ADDRESS_CONTEXT = b"p2poverlay/address/1\x00"
RELAYED_ADDRESS_CONTEXT = b"p2poverlay/relayed-address/1\x00"
# This many of the address records that checked last are remembered,
# besides those the node keeps.
RECENT_ADDRESSES = 64


def _text(value: str) -> bytes:
    data = value.encode("utf-8", "surrogatepass")
    return len(data).to_bytes(2, "big") + data


def broadcastBytes(message: Broadcast) -> bytes:
    """What the origin of a broadcast signs: everything but C{ttl}."""
    return b"".join((
        BROADCAST_CONTEXT, bytes.fromhex(message.id),
        bytes.fromhex(message.origin), message.time.to_bytes(8, "big"),
        _text(message.origin_name),
        message.body.encode("utf-8", "surrogatepass")))


def addressBytes(address: PeerAddress) -> bytes:
    """What a node signs of its own address record (reached through a
    relay: the relay's id too, after a context of its own)."""
    fields = (bytes.fromhex(address.node_id), address.seq.to_bytes(8, "big"),
              address.port.to_bytes(2, "big"), _text(address.host),
              _text(address.name))
    if address.relay:
        return b"".join((RELAYED_ADDRESS_CONTEXT, *fields,
                         _text(address.relay)))
    return b"".join((ADDRESS_CONTEXT, *fields))


def isKeyed(nodeId: str) -> bool:
    """Is C{nodeId} derived from a key (64 hex digits, not 32)?"""
    return len(nodeId) == 64


def publicKeyOf(nodeId: str, keyHex: str) -> Optional[bytes]:
    """The raw public key C{keyHex}, or L{None} if it is not C{nodeId}'s
    (the node id is the SHA-256 of the key).  Worked out at each check:
    the hash is about 1 % of the signature's check, too little to keep a
    cache of keys for (about 0.1 KiB a key)."""
    raw = bytes.fromhex(keyHex)
    return raw if nodeIdOf(raw) == nodeId else None


def signedBy(publicKey: bytes, data: bytes, signatureHex: str) -> bool:
    """Did the raw Ed25519 key C{publicKey} sign C{data}?"""
    try:
        crypto_sign_open(bytes.fromhex(signatureHex) + data, publicKey)
    except CryptoError:
        return False
    return True


class Signer:
    """Signs what a node with the key C{key} sends on its own behalf."""

    def __init__(self, key: NodeKey) -> None:
        self.key = key
        self.keyHex = key.publicBytes.hex()
        # The same key in libsodium, which signs faster (Ed25519 signatures
        # are deterministic: the same either way).
        self._signingKey = SigningKey(key.private.private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    def _sign(self, data: bytes) -> str:
        return self._signingKey.sign(data).signature.hex()

    def broadcast(self, message: Broadcast) -> Broadcast:
        """C{message}, with this node's key and signature."""
        return replace(message, key=self.keyHex,
                       signature=self._sign(broadcastBytes(message)))

    def address(self, address: PeerAddress) -> PeerAddress:
        """C{address} (this node's own), with its key and signature."""
        return replace(address, key=self.keyHex,
                       signature=self._sign(addressBytes(address)))


class Verifier:
    """
    Checks signed broadcasts and addresses.  An address record equal to
    one the node keeps (see L{holders}) or to one of the last
    L{RECENT_ADDRESSES} that checked is not checked again: peer exchange
    passes the same records on again and again.

    @ivar acceptUnsigned: whether a record about a node without a key
        (a 32-digit id) counts, unsigned; a node over TLS insists.
    @ivar holders: where the node keeps the records it took (its address
        book, its routing table): each gives the record it holds of a
        node id, or L{None}.  Every record in them checked before it got
        there (or came from the node's own saved peers), and they decide
        how long it is kept, not this verifier.
    """

    def __init__(self, acceptUnsigned: bool) -> None:
        self.acceptUnsigned = acceptUnsigned
        self.holders: List[Callable[[str], Optional[PeerAddress]]] = []
        # Each record is its own key: L{shared} gives holders one copy.
        self._recent: "OrderedDict[PeerAddress, PeerAddress]" = \
            OrderedDict()

    def checkBroadcast(self, message: Broadcast) -> Optional[str]:
        """Why C{message} is not its origin's (a phrase: "has a bad
        signature"), or C{None} if it is."""
        return self._check(message.origin, message.key, message.signature,
                           broadcastBytes, message)

    def checkAddress(self, address: PeerAddress) -> Optional[str]:
        """Why C{address} is not one its node signed, or C{None}."""
        if self._held(address) is not None:
            return None
        recent = self._recent
        if address in recent:  # Every field the same: signed, as before.
            recent.move_to_end(address)
            return None
        why = self._check(address.node_id, address.key, address.signature,
                          addressBytes, address)
        if why is None and address.key:
            recent[address] = address
            if len(recent) > RECENT_ADDRESSES:
                recent.popitem(last=False)
        return why

    def shared(self, address: Optional[PeerAddress]
               ) -> Optional[PeerAddress]:
        """
        The checked record equal to C{address} that the node keeps or
        this verifier saw last, else C{address}: the book, the registry
        and the DHT then hold one copy of a record that came in several
        messages (its key and its signature are most of a peer's memory).
        """
        if address is None:
            return None
        held = self._held(address)
        if held is not None:
            return held
        return self._recent.get(address, address)

    def _held(self, address: PeerAddress) -> Optional[PeerAddress]:
        for recordOf in self.holders:
            record = recordOf(address.node_id)
            if record is not None and record == address:
                return record
        return None

    def _check(self, nodeId: str, keyHex: str, signatureHex: str,
               signedBytes, record) -> Optional[str]:
        if not keyHex:
            if isKeyed(nodeId):
                return "is not signed"
            return None if self.acceptUnsigned else \
                "is not signed, and its node has no key"
        publicKey = publicKeyOf(nodeId, keyHex)
        if publicKey is None:
            return "is signed with a key that is not its node's"
        if not signedBy(publicKey, signedBytes(record), signatureHex):
            return "has a bad signature"
        return None


def signingFor(key: Optional[NodeKey], plaintext: bool
               ) -> Tuple[Optional[Signer], Verifier]:
    """
    The signer of a node with C{key} (none without one) and its verifier.
    Over TLS every node has a key: a record that is not signed is forged.
    """
    signer = Signer(key) if key is not None else None
    return signer, Verifier(acceptUnsigned=key is None or plaintext)
