"""
Where a line being edited sits on a terminal: the bytes that draw a
prompt and a line (wrapped over as many rows as it needs) and put the
cursor in it, and those that take them off the screen again.
"""

from __future__ import annotations

import unicodedata
from typing import Sequence

__all__ = ["LineView", "textColumns"]

CSI = b"\x1b["


def textColumns(text: str) -> int:
    """How many terminal columns C{text} takes (wide characters take two)."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
    return width


def _columns(chars: Sequence[bytes]) -> int:
    return textColumns(b"".join(chars).decode("utf-8", "replace"))


class LineView:
    """
    Draws a prompt and a line from the start of the row the prompt is on.

    @ivar cursorRow: the row of the cursor, counted from the prompt's.
    """

    def __init__(self) -> None:
        self.cursorRow = 0

    def erase(self) -> bytes:
        """Take the cursor back to where the prompt starts, and clear below."""
        up = CSI + b"%dA" % (self.cursorRow,) if self.cursorRow else b""
        self.cursorRow = 0
        return up + b"\r" + CSI + b"J"

    def draw(self, prompt: bytes, promptColumns: int, chars: Sequence[bytes],
             index: int, width: int) -> bytes:
        """
        Draw C{prompt} and C{chars} from where the prompt starts, on a
        terminal C{width} columns wide, and put the cursor before
        C{chars[index]}.

        @param promptColumns: how many columns the prompt takes.
        @param chars: the line, one UTF-8 encoded character each.
        """
        width = max(width, 1)
        total = promptColumns + _columns(chars)
        out = prompt + b"".join(chars)
        if total and total % width == 0:
            out += b"\n"  # Out of the last column, onto the next row.
        out += CSI + b"J"
        cursor = promptColumns + _columns(chars[:index])
        endRow, row, column = total // width, cursor // width, cursor % width
        if endRow > row:
            out += CSI + b"%dA" % (endRow - row,)
        out += b"\r"
        if column:
            out += CSI + b"%dC" % (column,)
        self.cursorRow = row
        return out
