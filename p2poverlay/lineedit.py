"""
A line editor for a terminal in raw mode, on Twisted's insults and
recvline: a prompt, editing keys, history and reverse search; lines
printed meanwhile go above the line being typed, which is redrawn intact.

L{p2poverlay.terminal} puts it on standard input and output.
"""

from __future__ import annotations

import codecs
from typing import Callable, List, Optional, Sequence

from twisted.conch.insults import insults
from twisted.conch.recvline import HistoricRecvLine

from p2poverlay.linesearch import ReverseSearch, complete
from p2poverlay.lineview import CSI, LineView, textColumns

HISTORY_SIZE = 1000
# The modifier insults gives a key typed with Alt (or after Escape).
ALT = insults.ServerProtocol.ALT  # type: ignore[attr-defined]


def _isText(keyID) -> bool:
    """Whether a key is a character to type (a byte of one, in UTF-8)."""
    return isinstance(keyID, bytes) and len(keyID) == 1 and (
        keyID >= b"\x80" or b" " <= keyID < b"\x7f")


class LineEditor(HistoricRecvLine):
    """
    Reads lines at a terminal (an L{insults.ServerProtocol}).

    Keys: arrows, Home and End; Ctrl-A, Ctrl-E, Ctrl-B, Ctrl-F to move,
    Alt-B and Alt-F (or Ctrl-arrows) by words; Backspace, Delete, Ctrl-K,
    Ctrl-U, Ctrl-W, Alt-D to delete, Ctrl-Y to paste what was deleted;
    Up, Down, Ctrl-P, Ctrl-N for the history and Ctrl-R to search it; Tab
    completes a command name; Ctrl-L redraws.  Ctrl-D on an empty line is
    the end of input, Ctrl-C interrupts.

    @ivar shown: whether the prompt and the line are on the screen.
    @ivar closed: whether input has ended; nothing more is read or drawn.
    """

    def __init__(self, prompt: str, onLine: Callable[[str], None],
                 onEnd: Callable[[], None], onInterrupt: Callable[[], None],
                 onSuspend: Optional[Callable[[], None]] = None,
                 completions: Sequence[str] = (),
                 columns: Callable[[], int] = lambda: 80) -> None:
        """
        @param prompt: shown before the line, printable text.
        @param onLine: called with each line entered.
        @param onEnd: called once, for Ctrl-D on an empty line.
        @param onInterrupt: called once, for Ctrl-C.
        @param onSuspend: called for Ctrl-Z, if given.
        @param completions: the words Tab completes at the start of a line.
        @param columns: the terminal's width now.
        """
        self.prompt = prompt.encode("utf-8")
        self._promptColumns = textColumns(prompt)
        self.onLine = onLine
        self.onEnd = onEnd
        self.onInterrupt = onInterrupt
        self.onSuspend = onSuspend
        self.completions = tuple(completions)
        self.columns = columns
        self.shown = False
        self.closed = False
        self.view = LineView()
        self.killed: List[bytes] = []
        self.search: Optional[ReverseSearch] = None
        self.draft: List[bytes] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    # -- connection -------------------------------------------------------

    def connectionMade(self) -> None:
        HistoricRecvLine.connectionMade(self)
        t = self.terminal
        self.keyHandlers.update({
            b"\x01": self.handle_HOME, b"\x05": self.handle_END,
            b"\x02": self.handle_LEFT, b"\x06": self.handle_RIGHT,
            b"\x10": self.handle_UP, b"\x0e": self.handle_DOWN,
            b"\x08": self.handle_BACKSPACE, b"\x04": self.handle_CTRL_D,
            b"\x03": self.handle_CTRL_C, b"\x0b": self.handle_KILL_END,
            b"\x15": self.handle_KILL_START, b"\x17": self.handle_KILL_WORD,
            b"\x19": self.handle_YANK, b"\x0c": self.handle_REDRAW,
            b"\x12": self.handle_SEARCH, b"\x07": self.handle_CANCEL,
            b"\x1a": self.handle_SUSPEND, t.TAB: self.handle_TAB,
        })
        self.altHandlers = {
            b"b": self.handle_WORD_LEFT, b"f": self.handle_WORD_RIGHT,
            b"d": self.handle_KILL_NEXT_WORD, b"\x7f": self.handle_KILL_WORD,
        }
        self.sequenceHandlers = {
            b"\x1b[1;5D": self.handle_WORD_LEFT,
            b"\x1b[1;5C": self.handle_WORD_RIGHT,
            b"\x1b[OH": self.handle_HOME, b"\x1b[OF": self.handle_END,
            b"\x1b[OA": self.handle_UP, b"\x1b[OB": self.handle_DOWN,
            b"\x1b[OC": self.handle_RIGHT, b"\x1b[OD": self.handle_LEFT,
        }

    def initializeScreen(self) -> None:
        # Unlike RecvLine, leave the screen as it is: draw the prompt only.
        self.mode = "insert"
        self.show()

    def setInsertMode(self) -> None:
        self.mode = "insert"

    def setTypeoverMode(self) -> None:
        self.mode = "typeover"

    def terminalSize(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.redraw()

    def connectionLost(self, reason=None) -> None:
        self.closed = True
        self.shown = False

    # -- drawing ------------------------------------------------------------

    def _drawBytes(self) -> bytes:
        """Draw the prompt and the line from where the prompt starts."""
        if self.search is None:
            prompt, columns = self.prompt, self._promptColumns
        else:
            text = self.search.prompt()
            prompt, columns = text.encode("utf-8"), textColumns(text)
        return self.view.draw(prompt, columns, self.lineBuffer,
                              self.lineBufferIndex, self.columns())

    def show(self) -> None:
        """Draw the prompt and the line being typed, unless input is closed."""
        if not self.closed:
            self.terminal.write(self._drawBytes())
            self.shown = True

    def redraw(self) -> None:
        if self.shown:
            self.terminal.write(self.view.erase() + self._drawBytes())

    def hide(self) -> None:
        """Take the prompt and the line off the screen."""
        self.terminal.write(self.hiddenBytes())

    def hiddenBytes(self) -> bytes:
        """
        Take the prompt off the screen by what this returns, which the
        caller writes itself.
        """
        if not self.shown:
            return b""
        self.shown = False
        return self.view.erase()

    def printAbove(self, lines: Sequence[bytes]) -> None:
        """
        Print C{lines} (printable text, one line each) above the line
        being typed, and draw that line again under them.
        """
        out = self.view.erase() if self.shown else b""
        out += b"".join(line + b"\n" for line in lines)
        if self.shown:
            out += self._drawBytes()
        self.terminal.write(out)

    def close(self) -> None:
        """Read no more: take the prompt off the screen for good."""
        self.hide()
        self.closed = True

    def _finishLine(self, mark: bytes = b"") -> None:
        """Leave the line on the screen as typed, and go to the next."""
        if self.shown:
            self.lineBufferIndex = len(self.lineBuffer)
            self.terminal.write(self.view.erase() + self._drawBytes()
                                + mark + b"\n")
        self.shown = False
        self.view.cursorRow = 0

    # -- keys -----------------------------------------------------------------

    def keystrokeReceived(self, keyID, modifier) -> None:
        if self.closed:
            return
        if self.search is not None and self._searchKey(keyID, modifier):
            return
        if modifier == ALT:
            handler = self.altHandlers.get(keyID)
            if handler is not None:
                handler()
            return
        handler = self.keyHandlers.get(keyID)
        if handler is not None:
            handler()
        elif _isText(keyID):
            self._type(self._decoder.decode(keyID))

    def unhandledControlSequence(self, seq: bytes) -> None:
        handler = self.sequenceHandlers.get(seq)
        if handler is not None and not self.closed:
            self._leaveSearch()
            handler()

    def _type(self, text: str) -> None:
        chars = [ch.encode("utf-8") for ch in text if ch.isprintable()]
        if not chars:
            return
        index = self.lineBufferIndex
        atEnd = index == len(self.lineBuffer)
        if self.mode == "insert" or atEnd:
            self.lineBuffer[index:index] = chars
        else:
            self.lineBuffer[index:index + len(chars)] = chars
        self.lineBufferIndex += len(chars)
        self.redraw()

    def characterReceived(self, ch, moreCharactersComing) -> None:
        self._type(ch.decode("utf-8", "replace"))

    def _move(self, index: int) -> None:
        index = max(0, min(index, len(self.lineBuffer)))
        if index != self.lineBufferIndex:
            self.lineBufferIndex = index
            self.redraw()

    def _replace(self, chars: List[bytes], index: Optional[int] = None) -> None:
        self.lineBuffer = list(chars)
        self.lineBufferIndex = len(chars) if index is None else index
        self.redraw()

    def handle_HOME(self) -> None:
        self._move(0)

    def handle_END(self) -> None:
        self._move(len(self.lineBuffer))

    def handle_LEFT(self) -> None:
        self._move(self.lineBufferIndex - 1)

    def handle_RIGHT(self) -> None:
        self._move(self.lineBufferIndex + 1)

    def _wordStart(self) -> int:
        index, buffer = self.lineBufferIndex, self.lineBuffer
        while index > 0 and bytes.isspace(buffer[index - 1]):
            index -= 1
        while index > 0 and not bytes.isspace(buffer[index - 1]):
            index -= 1
        return index

    def _wordEnd(self) -> int:
        index, buffer = self.lineBufferIndex, self.lineBuffer
        while index < len(buffer) and bytes.isspace(buffer[index]):
            index += 1
        while index < len(buffer) and not bytes.isspace(buffer[index]):
            index += 1
        return index

    def handle_WORD_LEFT(self) -> None:
        self._move(self._wordStart())

    def handle_WORD_RIGHT(self) -> None:
        self._move(self._wordEnd())

    def _kill(self, start: int, end: int) -> None:
        if start < end:
            self.killed = self.lineBuffer[start:end]
            self._replace(self.lineBuffer[:start] + self.lineBuffer[end:],
                          start)

    def handle_BACKSPACE(self) -> None:
        index = self.lineBufferIndex
        if index > 0:
            self._replace(self.lineBuffer[:index - 1] + self.lineBuffer[index:],
                          index - 1)

    def handle_DELETE(self) -> None:
        index = self.lineBufferIndex
        if index < len(self.lineBuffer):
            self._replace(self.lineBuffer[:index] + self.lineBuffer[index + 1:],
                          index)

    def handle_KILL_END(self) -> None:
        self._kill(self.lineBufferIndex, len(self.lineBuffer))

    def handle_KILL_START(self) -> None:
        self._kill(0, self.lineBufferIndex)

    def handle_KILL_WORD(self) -> None:
        self._kill(self._wordStart(), self.lineBufferIndex)

    def handle_KILL_NEXT_WORD(self) -> None:
        self._kill(self.lineBufferIndex, self._wordEnd())

    def handle_YANK(self) -> None:
        if self.killed:
            self._type(b"".join(self.killed).decode("utf-8", "replace"))

    def handle_TAB(self) -> None:
        typed = b"".join(self.lineBuffer[:self.lineBufferIndex])
        more, candidates = complete(typed.decode("utf-8", "replace"),
                                    self.completions)
        if more:
            self._type(more)
        elif len(candidates) > 1:
            self.printAbove([" ".join(candidates).encode("utf-8")])

    def handle_REDRAW(self) -> None:
        if self.shown:
            self.view.cursorRow = 0
            self.terminal.write(CSI + b"H" + CSI + b"2J" + self._drawBytes())

    def handle_INSERT(self) -> None:
        if self.mode == "insert":
            self.setTypeoverMode()
        else:
            self.setInsertMode()

    # -- history ----------------------------------------------------------------

    def _recall(self, position: int) -> None:
        end = len(self.historyLines)
        if self.historyPosition == end:
            self.draft = list(self.lineBuffer)
        self.historyPosition = position
        if position == end:
            self._replace(self.draft)
        else:
            self._replace(self._chars(self.historyLines[position]))

    @staticmethod
    def _chars(line: bytes) -> List[bytes]:
        return [ch.encode("utf-8") for ch in line.decode("utf-8", "replace")]

    def handle_UP(self) -> None:
        if self.historyPosition > 0:
            self._recall(self.historyPosition - 1)

    def handle_DOWN(self) -> None:
        if self.historyPosition < len(self.historyLines):
            self._recall(self.historyPosition + 1)

    def handle_RETURN(self) -> None:
        self._leaveSearch()
        line = b"".join(self.lineBuffer)
        if line.strip() and (not self.historyLines
                             or self.historyLines[-1] != line):
            self.historyLines.append(line)
            del self.historyLines[:-HISTORY_SIZE]
        self.historyPosition = len(self.historyLines)
        self._finishLine()
        self.lineBuffer, self.lineBufferIndex, self.draft = [], 0, []
        self.onLine(line.decode("utf-8", "replace"))
        self.show()

    # -- reverse search -----------------------------------------------------------

    def handle_SEARCH(self) -> None:
        self.search = ReverseSearch(self.historyLines, self.lineBuffer,
                                    self.lineBufferIndex)
        self.redraw()

    def _searchKey(self, keyID, modifier) -> bool:
        """Handle a key of a search; C{False} if it ends the search instead."""
        search = self.search
        assert search is not None
        if keyID == b"\x12":
            found = search.older()
        elif keyID == b"\x07":
            self.search = None
            self._replace(search.draft, search.draftIndex)
            return True
        elif keyID in (self.terminal.BACKSPACE, b"\x08"):
            found = search.backspace()
        elif modifier is None and _isText(keyID):
            found = search.type(self._decoder.decode(keyID))
        else:
            self._leaveSearch()
            return False
        if found is not None:
            line, index = found
            self.lineBuffer, self.lineBufferIndex = self._chars(line), index
        self.redraw()
        return True

    def _leaveSearch(self) -> None:
        if self.search is not None:
            self.search = None
            self.redraw()

    def handle_CANCEL(self) -> None:
        pass  # Ctrl-G outside a search.

    # -- the end ---------------------------------------------------------------

    def handle_CTRL_D(self) -> None:
        if self.lineBuffer:
            self.handle_DELETE()
            return
        self._finishLine()
        self.closed = True
        self.onEnd()

    def handle_CTRL_C(self) -> None:
        self._leaveSearch()
        self._finishLine(b"^C")
        self.closed = True
        self.onInterrupt()

    def handle_SUSPEND(self) -> None:
        if self.onSuspend is not None:
            self.onSuspend()
