"""
Dispatch by table: each part of a node registers the wire messages it
handles, and an established connection's messages go to their handler.
Adding a message type is a L{P2PMessage} class (in L{p2poverlay.message},
or in its part's own module, as L{p2poverlay.dht.wire}) and one
L{Dispatcher.register} call.
"""

from __future__ import annotations

from typing import Callable, Dict, Type

from p2poverlay.message import P2PMessage

Handler = Callable[..., None]


class Dispatcher:
    """Message class -> the handler called with C{(connection, message)}."""

    def __init__(self) -> None:
        self._handlers: Dict[Type[P2PMessage], Handler] = {}

    def register(self, messageType: Type[P2PMessage], handler: Handler) -> None:
        """
        Have C{handler(connection, message)} handle every C{messageType}.

        @raise ValueError: if that type has a handler already.
        """
        if messageType in self._handlers:
            raise ValueError(f"{messageType.TYPE} has a handler already")
        self._handlers[messageType] = handler

    def handler(self, message: P2PMessage) -> "Handler | None":
        """The handler of C{message}, or L{None} if it has none."""
        return self._handlers.get(type(message))
