"""
Console to console latency: from a line ``send <B> tok<i>`` written into
node A's standard input until node B prints the message on its standard
output, between two real ``twistd -n p2p`` processes on 127.0.0.1.

The baseline is a bare Twisted relay measured in the same run
(L{benchmarks.bare_relay}): one process writes each line of its standard
input to a TCP connection, the other prints each line that arrives; a
second relay does the same over Twisted's TLS with the node's TLS
settings.  Each pair of nodes is judged against the relay of its kind
(the nodes over TLS against the TLS relay, those in plaintext against the
plaintext one); the nodes over TLS are shown against the plaintext relay
too.  The rounds of the relays and of the nodes take turns, so that
whatever else runs on the machine weighs on each alike; a round ends
once the processes of its path are idle again (the sender's
``delivered`` answer is in, and nothing runs), so that no round is timed
for work left over from another.  Times are taken in this process: before
the line is written, and by a reader thread as the printed line arrives.
Every process is killed at the end.

    python -m benchmarks.console_latency [--rounds N] [--warmup N]
    python -m benchmarks.console_latency --profile /tmp/console [--plaintext]

With C{--profile}, one pair of nodes runs under twistd's cProfile and
the functions each spent its time in are printed.
"""

from __future__ import annotations

import argparse
import pstats
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from benchmarks.multiprocess import BANNER, DEADLINE, Child, PipedProcess
from benchmarks.report import Figure, Results

LISTENING = re.compile(r"^listening on (?P<port>\d+)$")
DELIVERED = re.compile(r"^delivered to ")
CONNECTED = re.compile(r"^\* connected: ")
TARGET = 1.2
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


@dataclass
class Path:
    """
    One way from a console to another: what to type into C{sender} for
    round C{i}, what C{receiver} then prints, and what else must be
    printed before the next round may start.
    """

    name: str
    sender: PipedProcess
    receiver: PipedProcess
    line: Callable[[int], str]
    printed: Callable[[int], re.Pattern]
    answer: Optional[re.Pattern] = None
    times: List[float] = field(default_factory=list)

    def round(self, i: int) -> float:
        """One message through: seconds from typing it until it is printed."""
        mark = self.receiver.mark()
        answerMark = self.sender.mark()
        typed = self.sender.type(self.line(i))
        _, printed, _ = self.receiver.waitFor(self.printed(i), mark)
        if self.answer is not None:
            # The sender's answer is in before the next line goes.
            self.sender.waitFor(self.answer, answerMark)
        for process in (self.sender, self.receiver):
            waitIdle(process.proc.pid)
        return printed - typed


def waitIdle(pid: int, timeout: float = 1.0) -> None:
    """
    Until process C{pid} sleeps (waits for input), so that the work it
    does after printing is not timed in the next round, of any path.
    Polled, without sleeping: a machine that sleeps between rounds wakes
    up slower than one that does not.  Where there is no C{/proc}, at once.
    """
    deadline = time.monotonic() + timeout
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            while time.monotonic() < deadline:
                stat.seek(0)
                # The state follows the command name, which ends with ")".
                if stat.read().rpartition(b")")[2].split()[0] != b"R":
                    return
    except (OSError, IndexError):
        return


def bareRelay(workdir: str, processes: List[PipedProcess],
              tls: bool = False) -> Path:
    """The bare relay, over TLS if C{tls}."""
    command = [sys.executable, "-m", "benchmarks.bare_relay"]
    if tls:
        command.append("--tls")
    kind = "tls" if tls else "tcp"
    receiver = PipedProcess(f"relay-{kind}-listen", workdir,
                            command + ["listen"])
    processes.append(receiver)
    port = int(receiver.waitFor(LISTENING)[2].group("port"))
    sender = PipedProcess(f"relay-{kind}-send", workdir,
                          command + ["send", str(port)])
    processes.append(sender)
    return Path(f"bare Twisted stdin-{'TLS' if tls else 'TCP'}-stdout relay",
                sender, receiver,
                lambda i: f"tok{i}",
                lambda i: re.compile(rf"^tok{i}$"))


def nodePair(name: str, workdir: str, extra: List[str],
             processes: List[PipedProcess], profile: str = "") -> Path:
    """
    Node A joined to node B.

    @param profile: if given, where each node saves its cProfile
        statistics when it exits (C{PATH-a}, C{PATH-b}).
    """
    def options(end: str) -> List[str]:
        if not profile:
            return ["--pidfile="]
        return ["--pidfile=", f"--profile={profile}-{end}",
                "--profiler=cprofile", "--savestats"]

    receiver = Child(f"{name}-b", workdir, None, extra, options("b"))
    processes.append(receiver)
    banner = receiver.waitFor(BANNER)[2]
    receiver.port = int(banner.group("port"))
    receiver.nodeId = banner.group("id")
    sender = Child(f"{name}-a", workdir, receiver.port, extra, options("a"))
    processes.append(sender)
    sender.waitFor(BANNER)
    waitForPeer(sender)
    return Path(name, sender, receiver,
                lambda i: f"send {receiver.nodeId} tok{i}",
                lambda i: re.compile(rf"^\[direct\] .*: tok{i}$"),
                DELIVERED)


def waitForPeer(child: Child, timeout: float = 30.0) -> None:
    """Until C{child} says it is connected to a peer."""
    child.waitFor(CONNECTED, 0, timeout)
    if child.peerCount() < 1:
        raise RuntimeError(f"{child.name}: connected, yet no peer")


def percentile(values: List[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(paths: List[Path], rounds: int, warmup: int) -> None:
    """
    Run the paths' rounds in turn; the first C{warmup} are not kept.
    Every round ends once both processes of its path are idle again.
    """
    for i in range(warmup + rounds):
        for path in paths:
            took = path.round(i)
            if i >= warmup:
                path.times.append(took)


def run(results: Results, rounds: int, warmup: int) -> None:
    processes: List[PipedProcess] = []
    workdir = tempfile.mkdtemp(prefix="p2p-console-")
    try:
        bare = bareRelay(workdir, processes)
        bareTLS = bareRelay(workdir, processes, tls=True)
        tls = nodePair("nodes over TLS", workdir, [], processes)
        plain = nodePair("nodes in plaintext", workdir,
                         ["--insecure-plaintext"], processes)
        measure([bare, bareTLS, tls, plain], rounds, warmup)
    finally:
        for process in processes:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    note = f"{rounds} rounds after {warmup} of warm-up, in turn"
    for label, share in PERCENTILES:
        def ms(path: Path, share: float = share) -> float:
            return percentile(path.times, share) * 1e3

        # Each against the relay of its kind (the target), and TLS against
        # the plaintext relay too.
        for path, base, suffix, target in (
                (tls, bareTLS, "", TARGET),
                (tls, bare, " against the plaintext relay", None),
                (plain, bare, "", TARGET)):
            results.add(Figure(
                "console",
                f"console to console latency, {path.name}{suffix}, {label}",
                ms(path), "ms", f"{base.name}, {label}", ms(base),
                maxRatio=target, note=note))
    results.fact("console", "rounds", rounds)
    results.fact("console", "mean_ms", {
        path.name: statistics.fmean(path.times) * 1e3
        for path in (bare, bareTLS, tls, plain)})


def profile(path: str, rounds: int, warmup: int, extra: List[str],
            lines: int) -> None:
    """
    Run one pair of nodes under cProfile, stop them with C{exit} and print
    where each spent its time.
    """
    processes: List[PipedProcess] = []
    workdir = tempfile.mkdtemp(prefix="p2p-console-")
    try:
        pair = nodePair("profiled nodes", workdir, extra, processes, path)
        measure([pair], rounds, warmup)
        for process in (pair.sender, pair.receiver):
            process.type("exit")
        for process in processes:
            process.proc.wait(DEADLINE)
    finally:
        for process in processes:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{pair.name}: p50 {percentile(pair.times, 0.5) * 1e3:.3f} ms "
          f"(profiled, {rounds} rounds)")
    for end, role in (("a", "sender"), ("b", "receiver")):
        for order in ("tottime", "cumulative"):
            print(f"== {role} (node {end.upper()}), by {order}")
            stats = pstats.Stats(f"{path}-{end}")
            stats.strip_dirs().sort_stats(order).print_stats(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.console_latency",
                                     description=__doc__)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--profile", metavar="PATH",
                        help="profile one pair of nodes instead, saving "
                             "their statistics in PATH-a and PATH-b")
    parser.add_argument("--plaintext", action="store_true",
                        help="with --profile: nodes in plaintext")
    parser.add_argument("--lines", type=int, default=25,
                        help="with --profile: functions shown")
    args = parser.parse_args(argv)
    if args.profile:
        profile(args.profile, args.rounds, args.warmup,
                ["--insecure-plaintext"] if args.plaintext else [], args.lines)
    else:
        run(Results(), args.rounds, args.warmup)


if __name__ == "__main__":
    main()
