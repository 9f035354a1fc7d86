"""
A front end's input, paced by the node's backlog of direct messages.

The console and the control endpoint read commands from a stream.  While
the node's backlog is high (L{p2poverlay.node.Node.whenSendable} has not
fired), L{InputPacer} has them stop reading, and go on once it is low
again: the pipe or socket then holds the writer back, and no command is
refused for it.
"""

from __future__ import annotations

from typing import Callable


class InputPacer:
    """
    Stops and restarts one front end's input.

    @param stop: stops reading input.
    @param goOn: reads input again (if nothing else holds it).
    @ivar holding: whether the backlog holds the input now.
    """

    def __init__(self, node, stop: Callable[[], None],
                 goOn: Callable[[], None]) -> None:
        self.node = node
        self._stop = stop
        self._goOn = goOn
        self.holding = False

    def check(self) -> None:
        """After a command: stop the input while the backlog is high."""
        if self.holding:
            return
        room = self.node.whenSendable()
        if not room.called:
            self.holding = True
            self._stop()
            room.addCallback(self._room)

    def _room(self, _: None) -> None:
        self.holding = False
        self._goOn()
