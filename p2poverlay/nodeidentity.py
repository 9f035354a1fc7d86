"""
Who a new node is: its key, its node id, and the network it speaks on.

A node takes its id from its key (L{p2poverlay.identity}): the one in its
data directory, made there the first time, or a new one.  Over TCP it
speaks TLS with that key unless its settings ask for plaintext.  A node
id of one's choosing (for a node in memory, or plaintext) has no key.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

from twisted.logger import Logger

from p2poverlay.config import NodeConfig
from p2poverlay.identity import KEY_FILE, NodeKey
from p2poverlay.network import INetwork, TCPNetwork
from p2poverlay.store import NodeStore
from p2poverlay.tls import NodeTLS

log = Logger("p2poverlay.node")


def storedKey(store: NodeStore) -> NodeKey:
    """
    The key in C{store}'s directory, made the first time; a node id saved
    there before keys is dropped, and said so once.

    @raise p2poverlay.identity.KeyFileError: if the key file cannot be used.
    """
    key, made = NodeKey.loadOrCreate(os.path.join(store.directory, KEY_FILE))
    if made:
        former = store.forgetIdentity()
        if former is not None:
            log.warn("this data directory held node id {former}, from before "
                     "node keys: the node has a new key and id {nodeId}",
                     former=former, nodeId=key.nodeId)
    return key


def identityOf(config: NodeConfig, reactor, store: Optional[NodeStore],
               nodeId: Optional[str], key: Optional[NodeKey],
               network: Optional[INetwork]
               ) -> Tuple[Optional[NodeKey], str, INetwork]:
    """
    The key, node id and network of a node made with these arguments (see
    L{p2poverlay.node.Node}).

    @raise ValueError: for a chosen node id that is not the key's, or one
        without a key on TLS.
    """
    if nodeId is None:
        key = key or (storedKey(store) if store is not None
                      else NodeKey.generate())
        nodeId = key.nodeId
    elif key is not None and key.nodeId != nodeId:
        raise ValueError(f"node id {nodeId} is not that of the key")
    if network is None:
        tls = None
        if not config.plaintext:
            if key is None:
                raise ValueError(
                    "a node id of one's choosing proves nothing over TLS: "
                    "give the node a key, or make it plaintext")
            tls = NodeTLS(key)
        network = TCPNetwork(reactor, tls=tls)
    return key, nodeId, network
