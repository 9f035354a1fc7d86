"""
Many direct messages piped into one node's console.

Starts two C{twistd -n p2p} nodes on 127.0.0.1, writes C{--count} lines
``send <receiver> m<i>`` into the sender's standard input as fast as the
pipe takes them, and reads both consoles: the receiver's for the messages
(each must arrive once, in order), the sender's for ``delivered`` and
errors.  Once every answer is in, it types ``peers`` into the sender's
console and times the answer (the console still answers).

    python -m benchmarks.console_flood --count 1000000
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import IO, List, Optional

TWISTD = str(Path(sys.executable).parent / "twistd")
SOURCE_ROOT = str(Path(__file__).resolve().parent.parent)
BANNER = re.compile(r"^node (?:[0-9a-f]{32}){1,2} listening on 127\.0\.0\.1:(\d+);")
RECEIVED = re.compile(r"^\[direct\] .*: m(\d+)$")
PEERS_REPLY = re.compile(r"^127\.0\.0\.1:\d+ +(?:[0-9a-f]{32}){1,2} ")


def startNode(name: str, cwd: Path, options: List[str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = SOURCE_ROOT
    return subprocess.Popen(
        [TWISTD, "-n", "--pidfile=", "p2p", "--port",
         "tcp:0:interface=127.0.0.1", "--name", name,
         "--data-dir", str(cwd / name), *options],
        cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=open(cwd / f"{name}.stderr", "wb"), env=env)


def readBanner(stream: IO[bytes]) -> int:
    for raw in stream:
        match = BANNER.match(raw.decode("utf-8", "replace"))
        if match:
            return int(match.group(1))
    raise SystemExit("the node ended before it listened")


class Receiver(threading.Thread):
    """Counts the messages a console shows, and how they came."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.received = 0
        self.duplicates = 0
        self.outOfOrder = 0
        self.last = -1
        self._seen = bytearray()
        self.lastAt = 0.0

    def run(self) -> None:
        for raw in self.stream:
            match = RECEIVED.match(raw.decode("utf-8", "replace").rstrip("\n"))
            if not match:
                continue
            index = int(match.group(1))
            if index >= len(self._seen):
                self._seen.extend(bytes(index + 1 - len(self._seen)))
            if self._seen[index]:
                self.duplicates += 1
                continue
            self._seen[index] = 1
            self.received += 1
            if index < self.last:
                self.outOfOrder += 1
            self.last = max(self.last, index)
            self.lastAt = time.monotonic()


class Sender(threading.Thread):
    """Counts the sender console's answers; notes when C{peers} answers."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.delivered = 0
        self.failed = 0
        self.firstError: Optional[str] = None
        self.peersAnswered = threading.Event()

    def run(self) -> None:
        for raw in self.stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith("delivered to "):
                self.delivered += 1
            elif line.startswith("error: "):
                self.failed += 1
                if self.firstError is None:
                    self.firstError = line
            elif PEERS_REPLY.match(line):
                self.peersAnswered.set()


def peakMemory(pid: int) -> str:
    """The peak resident set size of process C{pid}, as Linux tells it."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return f"{int(line.split()[1]) // 1024} MiB"
    except OSError:
        pass
    return "unknown"


def waitFor(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run(count: int, options: List[str], timeout: float) -> dict:
    with TemporaryDirectory() as directory:
        cwd = Path(directory)
        receiverNode = startNode("receiver", cwd, options)
        senderNode = startNode("sender", cwd, options)
        try:
            assert receiverNode.stdout and senderNode.stdout
            assert senderNode.stdin
            port = readBanner(receiverNode.stdout)
            readBanner(senderNode.stdout)
            receiver = Receiver(receiverNode.stdout)
            sender = Sender(senderNode.stdout)
            receiver.start()
            sender.start()
            target = f"127.0.0.1:{port}"
            start = time.monotonic()
            stdin = senderNode.stdin
            batch = 1000
            for first in range(0, count, batch):
                stdin.write("".join(
                    f"send {target} m{i}\n"
                    for i in range(first, min(count, first + batch))
                ).encode("ascii"))
            stdin.flush()
            written = time.monotonic()
            answered = waitFor(
                lambda: sender.delivered + sender.failed >= count, timeout)
            done = time.monotonic()
            asked = time.monotonic()
            stdin.write(b"peers\n")
            stdin.flush()
            peers = sender.peersAnswered.wait(timeout)
            peersTime = time.monotonic() - asked
            waitFor(lambda: receiver.received >= sender.delivered, 10)
            elapsed = max(done, receiver.lastAt) - start
            return {
                "count": count, "delivered": receiver.received,
                "confirmed": sender.delivered, "failed": sender.failed,
                "first_error": sender.firstError,
                "duplicates": receiver.duplicates,
                "order_violations": receiver.outOfOrder,
                "all_answered": answered,
                "elapsed_s": round(elapsed, 2),
                "input_written_s": round(written - start, 2),
                "messages_per_s": round(receiver.received / elapsed),
                "peers_answered": peers,
                "peers_answer_s": round(peersTime, 3),
                "sender_peak_rss": peakMemory(senderNode.pid),
                "receiver_peak_rss": peakMemory(receiverNode.pid),
            }
        finally:
            for node in (senderNode, receiverNode):
                node.kill()
                node.wait()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.console_flood", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000,
                        help="messages to send [100000]")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds to wait for every answer [1800]")
    parser.add_argument("node_options", nargs="*", metavar="OPTION",
                        help="more twistd p2p options for both nodes "
                             "(after --)")
    options = parser.parse_args(argv)
    if options.count < 1:
        parser.error("--count must be at least 1")
    result = run(options.count, options.node_options, options.timeout)
    for key, value in result.items():
        print(f"{key:18} {value}")
    ok = (result["delivered"] == result["confirmed"] == options.count
          and not result["failed"] and not result["duplicates"]
          and not result["order_violations"] and result["peers_answered"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
