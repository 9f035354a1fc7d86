"""
Sending: every line a L{p2poverlay.protocol.PeerConnection} writes goes
through here, into its outbox, and is counted.
"""

from __future__ import annotations

from typing import Any, List

from p2poverlay.message import P2PMessage


class LineSending:
    """The sending half of a connection (with C{closing}, C{outbox} and
    C{metrics} of its own)."""

    closing: bool
    outbox: Any
    metrics: Any

    def sendMessage(self, message: P2PMessage) -> None:
        """Send a small control message; it is queued even when full."""
        if not self.closing:
            self._write([message.encode()], message.TYPE, force=True)

    def sendEncoded(self, line: bytes, messageType: str,
                    force: bool = False) -> bool:
        """
        Send a message already encoded (once, for several connections);
        C{force} queues it even when the send buffer is full.

        @return: False if dropped: the peer reads too slowly, or closing.
        """
        return not self.closing and self._write([line], messageType, force) > 0

    def sendEncodedLines(self, lines: List[bytes], messageType: str) -> int:
        """Send encoded lines of one type in one write: how many went."""
        return 0 if self.closing else self._write(lines, messageType)

    def _write(self, lines: List[bytes], messageType: str,
               force: bool = False) -> int:
        """Every line this connection sends goes out (and is counted) here."""
        taken = self.outbox.writeLines(lines, force)
        for line in lines[:taken]:
            self.metrics.sent(messageType, len(line) + 1)
        return taken
