"""
The console's standard output on a pipe (L{ConsoleIO}): a line goes out
as it is written while nothing waits before it; otherwise it is buffered
and written in order, as Twisted's StandardIO does.  Real pipes, a
memory reactor (whose writers are the descriptors waiting to write).
"""

import fcntl
import os

import pytest
from twisted.internet import error
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor

from p2poverlay.consoleio import ConsoleIO


class Recorder(Protocol):
    def __init__(self):
        self.received = []
        self.lost = []

    def dataReceived(self, data):
        self.received.append(data)

    def connectionLost(self, reason=None):
        self.lost.append(reason)


@pytest.fixture
def console():
    """A ConsoleIO on two fresh pipes: (io, protocol, reactor, our ends)."""
    stdinRead, stdinWrite = os.pipe()
    stdoutRead, stdoutWrite = os.pipe()
    os.set_blocking(stdoutRead, False)
    reactor = MemoryReactor()
    protocol = Recorder()
    io = ConsoleIO(protocol, stdin=stdinRead, stdout=stdoutWrite,
                   reactor=reactor)
    ends = {"stdin": stdinWrite, "stdout": stdoutRead,
            "stdoutWrite": stdoutWrite}
    yield io, protocol, reactor, ends
    for fd in (stdinRead, stdinWrite, stdoutRead, stdoutWrite):
        try:
            os.close(fd)
        except OSError:
            pass


def readAll(fd):
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def fill(fd):
    """Write into the pipe C{fd} until it takes no more; return what went."""
    filler = b"f" * 4096
    written = 0
    while True:
        try:
            written += os.write(fd, filler)
        except BlockingIOError:
            return written


def writers(reactor):
    return list(reactor.getWriters())


def turn(reactor):
    """What a reactor's turn does for the descriptors that wait to write."""
    return [writer.doWrite() for writer in writers(reactor)]


def test_a_line_is_on_the_pipe_as_soon_as_it_is_written(console):
    io, _, reactor, ends = console
    io.write(b"one\n")
    assert readAll(ends["stdout"]) == b"one\n"
    assert writers(reactor) == []  # Nothing waits for the reactor.
    io.writeSequence([b"two", b"\n"])
    assert readAll(ends["stdout"]) == b"two\n"


def test_a_full_pipe_buffers_and_keeps_the_order(console):
    io, _, reactor, ends = console
    queued = fill(ends["stdoutWrite"])
    io.write(b"first\n")
    io.write(b"second\n")
    assert len(writers(reactor)) == 1
    got = readAll(ends["stdout"])
    assert len(got) == queued  # Only the filler so far.
    turn(reactor)
    assert readAll(ends["stdout"]) == b"first\nsecond\n"
    # Once the buffer is empty again, lines go out at once again.
    turn(reactor)
    assert writers(reactor) == []
    io.write(b"third\n")
    assert readAll(ends["stdout"]) == b"third\n"


def test_what_the_pipe_takes_in_part_goes_on_later_in_order(console):
    io, _, reactor, ends = console
    stdoutWrite = ends["stdoutWrite"]
    fill(stdoutWrite)
    readAll(ends["stdout"])
    # Room for a few pages only: a large write is taken in part.
    os.write(stdoutWrite, b"f" * 4096 * 14)
    flags = fcntl.fcntl(stdoutWrite, fcntl.F_GETFL)
    assert flags & os.O_NONBLOCK
    big = bytes(range(256)) * 256
    io.write(big)
    io.write(b"after\n")
    assert len(writers(reactor)) == 1
    out = readAll(ends["stdout"])
    for _ in range(100):
        if not writers(reactor):
            break
        turn(reactor)
        out += readAll(ends["stdout"])
    assert out[4096 * 14:] == big + b"after\n"


def test_a_closed_reader_is_a_lost_connection_on_the_next_turn(console):
    io, _, reactor, ends = console
    os.close(ends["stdout"])
    io.write(b"nobody reads this\n")  # EPIPE: left to the usual path.
    assert len(writers(reactor)) == 1
    [result] = turn(reactor)
    assert isinstance(result, error.ConnectionLost)
