"""
p2poverlay: a decentralized peer-to-peer overlay network on Twisted.

The names an application uses are importable from here::

    from p2poverlay import Node, NodeConfig, NodeObserver

Each is imported on first use, so that a program that needs only a small
part (the C{p2p-console} client) does not load the node.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "Node": "p2poverlay.node",
    "NodeConfig": "p2poverlay.config",
    "ConfigError": "p2poverlay.config",
    "INodeObserver": "p2poverlay.events",
    "NodeObserver": "p2poverlay.events",
    "ReceivedMessage": "p2poverlay.events",
    "NodeStats": "p2poverlay.events",
    "PeerInfo": "p2poverlay.records",
    "KnownPeer": "p2poverlay.records",
    "BlockingNode": "p2poverlay.threads",
    "NodeStore": "p2poverlay.store",
    "INetwork": "p2poverlay.network",
    "TCPNetwork": "p2poverlay.network",
    "formatAddress": "p2poverlay.addresses",
    "parseAddress": "p2poverlay.addresses",
    "OverlayError": "p2poverlay.errors",
    "PeerUnreachable": "p2poverlay.errors",
    "HandshakeFailed": "p2poverlay.errors",
    "SelfConnection": "p2poverlay.errors",
    "PeerFull": "p2poverlay.errors",
    "DeliveryFailed": "p2poverlay.errors",
    "UnknownPeer": "p2poverlay.errors",
    "MessageTooLarge": "p2poverlay.errors",
    "SendQueueFull": "p2poverlay.errors",
    "ListenError": "p2poverlay.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:
    from p2poverlay.addresses import formatAddress, parseAddress
    from p2poverlay.config import ConfigError, NodeConfig
    from p2poverlay.errors import (
        DeliveryFailed, HandshakeFailed, ListenError, MessageTooLarge,
        OverlayError, PeerFull, PeerUnreachable, SelfConnection,
        SendQueueFull, UnknownPeer,
    )
    from p2poverlay.events import (
        INodeObserver, NodeObserver, NodeStats, ReceivedMessage,
    )
    from p2poverlay.network import INetwork, TCPNetwork
    from p2poverlay.node import Node
    from p2poverlay.records import KnownPeer, PeerInfo
    from p2poverlay.store import NodeStore
    from p2poverlay.threads import BlockingNode


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'p2poverlay' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(list(globals()) + list(_EXPORTS))
