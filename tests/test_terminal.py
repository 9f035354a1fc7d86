"""
Unit tests of the line editor (L{LineEditor} under insults'
ServerProtocol on a StringTransport, its output shown on a L{Screen}),
of what the console's first screen says, and of the terminal session's
line transport.
"""

import pytest
from twisted.conch.insults import insults
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.testing import StringTransport

from p2poverlay.client import helloFields, helloPrompt
from p2poverlay.controlwire import helloMessage
from p2poverlay.lineedit import LineEditor
from p2poverlay.lineview import textColumns
from p2poverlay.terminal import TerminalSession
from p2poverlay.whereabouts import STANDARD_OUTPUT, Whereabouts, logDestination

from screen import Screen

UP, DOWN, LEFT, RIGHT = b"\x1b[A", b"\x1b[B", b"\x1b[D", b"\x1b[C"
CTRL = {key: bytes([ord(key) - 96]) for key in "abcdefghklnpruwyz"}


class Terminal:
    """A LineEditor at a terminal of C{columns}, and what it was told."""

    def __init__(self, prompt="me> ", columns=80,
                 completions=("send", "broadcast", "peers", "help")):
        self.entered = []
        self.ends = 0
        self.interrupts = 0
        self.server = insults.ServerProtocol(
            LineEditor, prompt, onLine=self.entered.append,
            onEnd=self._end, onInterrupt=self._interrupt,
            completions=completions, columns=lambda: columns)
        self.transport = StringTransport()
        self.server.makeConnection(self.transport)
        self.editor = self.server.terminalProtocol
        self.screen = Screen(columns, 12)
        self._update()

    def _end(self):
        self.ends += 1

    def _interrupt(self):
        self.interrupts += 1

    def _update(self):
        self.screen.feed(self.transport.value())
        self.transport.clear()

    def keys(self, *data):
        for chunk in data:
            self.server.dataReceived(chunk)
        self._update()
        return self

    def printAbove(self, *lines):
        self.editor.printAbove([line.encode("utf-8") for line in lines])
        self._update()

    @property
    def line(self):
        """The row the cursor is on."""
        return self.screen.cursorRow()

    @property
    def column(self):
        return self.screen.x


def test_prompt_and_typing():
    t = Terminal()
    assert t.screen.shown() == ["me>"]
    t.keys(b"peers")
    assert t.line == "me> peers" and t.column == len("me> peers")
    t.keys(b"\r")
    assert t.entered == ["peers"]
    assert t.screen.shown() == ["me> peers", "me>"]


def test_a_line_printed_meanwhile_goes_above_the_half_line():
    t = Terminal()
    t.keys(b"send bob hal")
    t.printAbove("[direct] 127.0.0.1:9001 (c3687017): hi there")
    assert t.screen.shown() == [
        "[direct] 127.0.0.1:9001 (c3687017): hi there", "me> send bob hal"]
    assert t.column == len("me> send bob hal")
    t.keys(b"lo\r")
    assert t.entered == ["send bob hallo"]


def test_printing_above_keeps_the_cursor_where_it_was():
    t = Terminal()
    t.keys(b"abcdef", LEFT, LEFT, LEFT)
    t.printAbove("one", "two")
    assert t.screen.shown() == ["one", "two", "me> abcdef"]
    t.keys(b"X")
    assert t.line == "me> abcXdef"
    assert t.column == len("me> abcX")


def test_a_long_line_wraps_and_is_redrawn_whole():
    t = Terminal(columns=20)
    text = "send bob " + "x" * 25
    t.keys(text.encode())
    t.printAbove("news")
    rows = t.screen.shown()
    assert rows[0] == "news"
    assert "".join(rows[1:]) == "me> " + text
    t.keys(CTRL["a"], b"Z")
    assert "".join(t.screen.shown()[1:]) == "me> Z" + text
    t.keys(b"\r")
    assert t.entered == ["Z" + text]


def test_a_line_that_fills_its_rows_exactly():
    t = Terminal(columns=10)
    t.keys(b"123456")  # "me> " and six: one full row.
    assert t.screen.y == 1 and t.column == 0
    t.printAbove("x")
    assert t.screen.shown() == ["x", "me> 123456"]
    t.keys(b"7")
    assert t.screen.shown() == ["x", "me> 123456", "7"]


def test_history_up_and_down():
    t = Terminal()
    t.keys(b"info\r", b"peers\r", b"half")
    t.keys(UP)
    assert t.line == "me> peers"
    t.keys(UP)
    assert t.line == "me> info"
    t.keys(UP)
    assert t.line == "me> info"
    t.keys(DOWN, DOWN)
    assert t.line == "me> half"
    t.keys(CTRL["p"], b" x\r")
    assert t.entered == ["info", "peers", "peers x"]
    t.keys(CTRL["p"])
    assert t.line == "me> peers x"


def test_blank_and_repeated_lines_are_not_kept():
    t = Terminal()
    t.keys(b"info\r", b"info\r", b"   \r", UP, UP)
    assert t.line == "me> info"
    assert t.editor.historyLines == [b"info"]


def test_moving_and_deleting():
    t = Terminal()
    t.keys(b"send bob hello world", CTRL["a"])
    assert t.column == len("me> ")
    t.keys(CTRL["e"])
    assert t.column == len("me> send bob hello world")
    t.keys(CTRL["w"])
    assert t.line == "me> send bob hello"
    t.keys(CTRL["y"], CTRL["y"])
    assert t.line == "me> send bob hello worldworld"
    t.keys(b"\x1bb", b"\x1bb")
    assert t.column == len("me> send bob ")
    t.keys(CTRL["k"])
    assert t.line == "me> send bob"
    t.keys(CTRL["b"], CTRL["b"], b"\x7f", CTRL["f"], b"!")
    assert t.line == "me> send bb!"
    t.keys(CTRL["u"])
    assert t.line == "me>" and t.column == len("me> ")
    t.keys(b"abc", LEFT, LEFT, b"\x1b[3~")
    assert t.line == "me> ac"


def test_function_keys_type_nothing():
    t = Terminal()
    t.keys(b"\x1bOP", b"\x1b[5~", b"\x1b[24~", b"\x01\x1b[1;5C")
    assert t.line == "me>"


def test_unicode_input():
    t = Terminal()
    t.keys("send bob héllo 日本".encode("utf-8"))
    assert t.line == "me> send bob héllo 日本"
    t.keys(b"\x7f", LEFT, LEFT, LEFT, LEFT, LEFT, b"\x7f")
    assert t.line == "me> send bob hllo 日"
    t.keys(b"\r")
    assert t.entered == ["send bob hllo 日"]
    assert textColumns("日本") == 4


def test_reverse_search():
    t = Terminal()
    t.keys(b"send bob one\r", b"peers\r", b"send carol two\r", b"draft")
    t.keys(CTRL["r"], b"send")
    assert t.line == "(reverse-i-search)`send': send carol two"
    t.keys(CTRL["r"])
    assert t.line == "(reverse-i-search)`send': send bob one"
    t.keys(CTRL["r"])
    assert t.line == "(failed reverse-i-search)`send': send bob one"
    t.keys(b"\r")
    assert t.entered[-1] == "send bob one"
    assert t.line == "me>"

    t.keys(b"draft", CTRL["r"], b"peer")
    assert t.line == "(reverse-i-search)`peer': peers"
    t.keys(b"\x07")
    assert t.line == "me> draft"

    t.keys(CTRL["u"], CTRL["r"], b"car", CTRL["e"], b"!")
    assert t.line == "me> send carol two!"


def test_tab_completes_command_names():
    t = Terminal()
    t.keys(b"br\t")
    assert t.line == "me> broadcast"
    t.keys(CTRL["u"], b"s\t")
    assert t.line == "me> send"
    t.keys(CTRL["u"], b"x\t")
    assert t.line == "me> x"
    t.keys(CTRL["u"], b"send bo\t")
    assert t.line == "me> send bo"


def test_tab_lists_the_candidates():
    t = Terminal(completions=("peers", "ping", "help"))
    t.keys(b"p\t")
    assert t.screen.shown() == ["peers ping", "me> p"]


def test_ctrl_d_ends_input_on_an_empty_line_only():
    t = Terminal()
    t.keys(b"ab", LEFT, CTRL["d"])
    assert t.line == "me> a" and t.ends == 0
    t.keys(CTRL["u"], CTRL["d"])
    assert t.ends == 1
    assert t.screen.shown() == ["me>"] and t.screen.y == 1
    t.keys(b"more", CTRL["d"])
    assert t.ends == 1 and t.screen.shown() == ["me>"]
    t.printAbove("after the end")
    assert t.screen.shown() == ["me>", "after the end"]


def test_ctrl_c_interrupts():
    t = Terminal()
    t.keys(b"half", CTRL["c"])
    assert t.interrupts == 1
    assert t.screen.shown() == ["me> half^C"]
    t.keys(b"x\r")
    assert t.entered == []


def test_control_characters_and_sequences_are_not_typed():
    t = Terminal()
    t.keys(b"a\x1b[31mb\x00c\x1f")
    assert t.line == "me> abc"
    assert b"".join(t.editor.lineBuffer) == b"abc"


# -- the first screen -------------------------------------------------------

class Listening:
    def __init__(self, address):
        self.port = self
        self.address = address

    def getHost(self):
        return self.address


def test_whereabouts_fields(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    control = Listening(UNIXAddress(str(tmp_path / "p2p-9000" / "control.sock")))
    where = Whereabouts(log="p2p-9000.log", dataDir=str(tmp_path / "p2p-9000"),
                        control=control,
                        web=Listening(IPv4Address("TCP", "127.0.0.1", 8080)),
                        webToken=True)
    assert where.fields("alice") == [
        ("name", "alice"), ("log", "p2p-9000.log"),
        ("control", "p2p-9000/control.sock (attach: p2p-console --data-dir "
                    "p2p-9000)"),
        ("web UI", "http://127.0.0.1:8080/ (token required)")]
    tcp = Whereabouts(control=Listening(IPv4Address("TCP", "0.0.0.0", 7001)),
                      dataDir=str(tmp_path / "p2p-9000"))
    assert dict(tcp.fields(""))["control"] == (
        "0.0.0.0:7001 (attach: p2p-console --control tcp:127.0.0.1:7001 "
        "--data-dir p2p-9000)")
    assert dict(tcp.fields(""))["name"].startswith("(none")
    assert dict(Whereabouts().fields("x")) == {
        "name": "x", "log": "(not known)", "control": "none", "web UI": "off"}


@pytest.mark.parametrize("options, where", [
    ({"logfile": "node.log"}, "node.log"),
    ({"logfile": "-"}, STANDARD_OUTPUT),
    ({"logfile": None, "nodaemon": True}, STANDARD_OUTPUT),
    ({"syslog": True}, "syslog"),
    (None, None),
])
def test_logDestination(options, where):
    assert logDestination(options) == where


def test_attached_first_screen_says_what_the_hello_says():
    hello = helloMessage("ab" * 16, "", 9000, "node abab...")
    assert helloFields(hello, "p2p-9000/control.sock") == [
        ("name", "(none)"), ("control", "p2p-9000/control.sock")]
    assert helloPrompt(hello) == "abababab> "
    hello = helloMessage("ab" * 16, "al\x1bice", 9000, "node abab...",
                         log="/var/log/p2p.log", web="http://127.0.0.1:8080/")
    assert helloFields(hello, None) == [
        ("name", "al\x1bice"), ("log", "/var/log/p2p.log"),
        ("web UI", "http://127.0.0.1:8080/")]
    assert helloPrompt(hello) == "al\\x1bice> "
    assert "log" not in helloMessage("x", None, 1, "l")


# -- the session's line transport ----------------------------------------------

def test_what_the_protocol_writes_is_printed_line_by_line():
    session = TerminalSession(None, "> ")
    printed = []
    session.printLines = printed.append
    session.transport.write(b"one\ntw")
    session.transport.writeSequence([b"o\n", b"three\nfour"])
    assert printed == [[b"one"], [b"two", b"three"]]
