"""
The DHT's key space: 256-bit ids and the XOR distance between them.

A node with a key has a 64-digit id, the SHA-256 of its public key, and
that is its place in the key space; a node without one (32 digits, in
memory or plaintext) is placed at the SHA-256 of its id, so that every
id lands uniformly in the same 256-bit space.
"""

from __future__ import annotations

import hashlib
import random
from typing import Tuple

ID_BITS = 256
ID_SPACE = 1 << ID_BITS


def dhtIdOf(nodeId: str) -> int:
    """
    Where the node with C{nodeId} (64 or 32 hex digits) sits in the key
    space.
    """
    if len(nodeId) == 64:
        return int(nodeId, 16)
    return int.from_bytes(hashlib.sha256(bytes.fromhex(nodeId)).digest(),
                          "big")


def distance(a: int, b: int) -> int:
    """Kademlia's XOR distance."""
    return a ^ b


def commonPrefixLength(a: int, b: int) -> int:
    """How many leading bits C{a} and C{b} share (256 if equal)."""
    return ID_BITS - (a ^ b).bit_length()


def randomIdIn(low: int, high: int, rng: random.Random) -> int:
    """A uniformly random id in C{[low, high)}."""
    return low + rng.randrange(high - low)


def idRange(prefix: int, length: int) -> Tuple[int, int]:
    """The ids C{[low, high)} whose first C{length} bits are C{prefix}."""
    low = prefix << (ID_BITS - length)
    return low, low + (1 << (ID_BITS - length))
