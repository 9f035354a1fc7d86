"""
A child process whose standard output is read line by line by a thread:
wait for lines with a deadline, type lines, stop it by pid.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Dict, List, Optional, Pattern, Sequence, Tuple, Union

# How long any single wait may take, and how long a process may take to
# exit after SIGTERM before it gets SIGKILL.
DEADLINE = 10.0
STOP_BOUND = 5.0

PatternLike = Union[str, Pattern[str]]


class ConsoleProcess:
    """
    One process with a console on its standard input and output; its
    standard error goes to the file C{NAME.stderr} in C{cwd}.
    """

    def __init__(self, name: str, argv: Sequence[str], cwd: Path,
                 env: Optional[Dict[str, str]] = None,
                 console: bool = True) -> None:
        """
        @param name: a label for transcripts and file names.
        @param argv: the command line.
        @param cwd: the directory it runs in.
        @param env: its environment (this process's if L{None}).
        @param console: whether its standard input is a pipe to type into.
        """
        self.name = name
        self.argv = list(argv)
        self.cwd = cwd
        self.stderrPath = cwd / f"{name}.stderr"
        self._stderr = open(self.stderrPath, "wb")
        self.proc = subprocess.Popen(
            self.argv, cwd=cwd,
            stdin=subprocess.PIPE if console else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=self._stderr, env=env)
        self.lines: List[str] = []
        self.eof = False
        self._cursor = 0
        self._changed = threading.Condition()
        self._reader = threading.Thread(
            target=self._read, args=(self.proc.stdout,),
            name=f"read-{name}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.eof = True
            self._changed.notify_all()

    def transcript(self) -> str:
        """Everything it printed so far, standard error included."""
        with self._changed:
            out = "\n".join(self.lines)
        try:
            err = self.stderrPath.read_text(errors="replace")
        except OSError:
            err = ""
        return (f"--- {self.name} ({' '.join(self.argv)}), "
                f"exit status {self.proc.poll()}\n{out}\n"
                f"--- {self.name} stderr\n{err}")

    def expect(self, pattern: PatternLike,
               timeout: float = DEADLINE) -> re.Match:
        """
        Wait for a line matching C{pattern} (a regex, searched) after the
        line an earlier C{expect} matched, and return the match.

        @raise AssertionError: no such line within C{timeout} seconds, or
            the output ended.
        """
        index, match = self.waitFor(pattern, self._cursor, timeout)
        self._cursor = index + 1
        return match

    def mark(self) -> int:
        """The index the next line printed will have."""
        with self._changed:
            return len(self.lines)

    def since(self, start: int, end: Optional[int] = None) -> List[str]:
        """The lines printed from index C{start} up to C{end}."""
        with self._changed:
            return self.lines[start:end]

    def waitFor(self, pattern: PatternLike, start: int,
                timeout: float = DEADLINE) -> Tuple[int, re.Match]:
        """
        Wait for a line matching C{pattern} from index C{start} on; return
        its index and the match (see L{expect}).
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(start, len(self.lines)):
                    match = regex.search(self.lines[index])
                    if match:
                        return index, match
                remaining = deadline - time.monotonic()
                if self.eof or remaining <= 0:
                    break
                self._changed.wait(remaining)
        why = "output ended" if self.eof else f"timed out after {timeout}s"
        raise AssertionError(
            f"{why} waiting for {regex.pattern!r} at {self.name}\n"
            f"{self.transcript()}")

    def matching(self, pattern: str) -> List[str]:
        """Every line so far that matches C{pattern}."""
        regex = re.compile(pattern)
        with self._changed:
            return [line for line in self.lines if regex.search(line)]

    def type(self, line: str) -> None:
        """Type one line at its console."""
        assert self.proc.stdin is not None, f"{self.name} has no console"
        self.proc.stdin.write(line.encode("utf-8") + b"\n")
        self.proc.stdin.flush()

    def stop(self, bound: float = STOP_BOUND) -> Optional[int]:
        """
        Make sure the process is gone: SIGTERM by pid, SIGKILL if it still
        runs after C{bound} seconds; close its pipes.  Return its exit
        status (L{None} if it could not be reaped).
        """
        if self.proc.poll() is None:
            for signum, wait in ((signal.SIGTERM, bound),
                                 (signal.SIGKILL, DEADLINE)):
                try:
                    os.kill(self.proc.pid, signum)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.closePipes()
        return self.proc.poll()

    def closePipes(self) -> None:
        """Close its pipes and wait for the reader (once it has exited)."""
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._stderr.close()
        self._reader.join(DEADLINE)
