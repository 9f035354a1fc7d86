"""
A small terminal screen for tests: it reads the bytes a program writes
to its terminal and keeps the characters where a VT100 would show them.

It knows what the console writes (printable text with automatic
wrapping, CR, LF, backspace, cursor moves, erasing lines and the display,
deleting characters, reset) and ignores other escape sequences.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from typing import List

_CSI = re.compile(r"\x1b\[([?0-9;]*)([@-~])")


class Screen:
    """C{rows} lines of C{columns} characters and a cursor."""

    def __init__(self, columns: int = 80, rows: int = 24) -> None:
        self.columns = columns
        self.rows = rows
        self.lines: List[List[str]] = [self._blank() for _ in range(rows)]
        self.x = self.y = 0
        self.pendingWrap = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._held = ""

    def _blank(self) -> List[str]:
        return [" "] * self.columns

    # -- reading ---------------------------------------------------------

    def feed(self, data: bytes) -> None:
        text = self._held + self._decoder.decode(data)
        self._held = ""
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "\x1b":
                if i + 1 >= len(text):
                    self._held = text[i:]
                    return
                if text[i + 1] == "[":
                    match = _CSI.match(text, i)
                    if match is None:
                        if re.match(r"\x1b\[[?0-9;]*$", text[i:]):
                            self._held = text[i:]
                            return
                        i += 2
                        continue
                    self._csi(match.group(1), match.group(2))
                    i = match.end()
                    continue
                if text[i + 1] == "c":
                    self.__init__(self.columns, self.rows)  # type: ignore[misc]
                i += 2
                continue
            self._char(ch)
            i += 1

    def _char(self, ch: str) -> None:
        if ch == "\r":
            self.x, self.pendingWrap = 0, False
        elif ch == "\n":
            self._lineFeed()
        elif ch == "\b":
            self.x, self.pendingWrap = max(self.x - 1, 0), False
        elif ch in "\x07\x00":
            pass
        elif unicodedata.combining(ch):
            pass
        else:
            if self.pendingWrap:
                self.x, self.pendingWrap = 0, False
                self._lineFeed()
            self.lines[self.y][self.x] = ch
            if self.x == self.columns - 1:
                self.pendingWrap = True
            else:
                self.x += 1

    def _lineFeed(self) -> None:
        self.pendingWrap = False
        if self.y == self.rows - 1:
            del self.lines[0]
            self.lines.append(self._blank())
        else:
            self.y += 1

    def _csi(self, params: str, final: str) -> None:
        numbers = [int(p) if p.isdigit() else 0
                   for p in params.lstrip("?").split(";")]
        n = max(numbers[0], 1)
        self.pendingWrap = False
        if final == "A":
            self.y = max(self.y - n, 0)
        elif final == "B":
            self.y = min(self.y + n, self.rows - 1)
        elif final == "C":
            self.x = min(self.x + n, self.columns - 1)
        elif final == "D":
            self.x = max(self.x - n, 0)
        elif final == "H":
            row = numbers[0] if numbers[0] else 1
            column = numbers[1] if len(numbers) > 1 and numbers[1] else 1
            self.y, self.x = row - 1, column - 1
        elif final == "K":
            line = self.lines[self.y]
            if numbers[0] == 0:
                line[self.x:] = [" "] * (self.columns - self.x)
            elif numbers[0] == 1:
                line[:self.x + 1] = [" "] * (self.x + 1)
            else:
                self.lines[self.y] = self._blank()
        elif final == "J":
            if numbers[0] == 0:
                self.lines[self.y][self.x:] = [" "] * (self.columns - self.x)
                for row in range(self.y + 1, self.rows):
                    self.lines[row] = self._blank()
            elif numbers[0] == 2:
                self.lines = [self._blank() for _ in range(self.rows)]
        elif final == "P":
            line = self.lines[self.y]
            del line[self.x:self.x + n]
            line.extend([" "] * (self.columns - len(line)))

    # -- what it shows -----------------------------------------------------

    def text(self) -> List[str]:
        """Every row, without trailing blanks."""
        return ["".join(line).rstrip() for line in self.lines]

    def shown(self) -> List[str]:
        """The rows up to the last one that is not blank."""
        rows = self.text()
        while rows and not rows[-1]:
            rows.pop()
        return rows

    def cursorRow(self) -> str:
        return "".join(self.lines[self.y]).rstrip()
