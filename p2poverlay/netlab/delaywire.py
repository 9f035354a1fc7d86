"""
A wire with a one-way delay between two namespaces, since these machines
have no C{netem} qdisc: a process holding a TAP device in each namespace
that copies every Ethernet frame from one to the other once C{delay}
seconds have passed since it arrived.  Frames keep their order; nothing
is dropped while the queue holds fewer than L{QUEUE_LIMIT} frames.

Run as C{ip netns exec NS_A python delaywire.py IF_A NS_B IF_B DELAY}
(it needs nothing but the standard library): it makes C{IF_A} in its own namespace and C{IF_B} in
C{NS_B} (by C{setns}), prints C{ready}, and copies until it is killed.
The devices go away with the process.
"""

from __future__ import annotations

import ctypes
import fcntl
import heapq
import os
import select
import struct
import sys
import time
from typing import Dict, List, Tuple

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
FRAME_MAX = 65536
QUEUE_LIMIT = 10000  # frames in flight each way, a bound on memory


def openTap(name: str) -> int:
    """A TAP device C{name} in this process's namespace; its descriptor."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF,
                struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def enterNamespace(name: str) -> None:
    """Move this process into the network namespace C{ip netns} calls
    C{name}."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{name}") as handle:
        if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")


def copyWithDelay(ends: Tuple[int, int], delay: float) -> None:
    """Copy frames both ways between the two descriptors, each C{delay}
    seconds late, for ever."""
    other: Dict[int, int] = {ends[0]: ends[1], ends[1]: ends[0]}
    due: List[Tuple[float, int, int, bytes]] = []  # (when, serial, to, frame)
    serial = 0
    inFlight = {ends[0]: 0, ends[1]: 0}
    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
        readable, _, _ = select.select(list(ends), [], [], timeout)
        now = time.monotonic()
        for fd in readable:
            for _ in range(64):
                try:
                    frame = os.read(fd, FRAME_MAX)
                except BlockingIOError:
                    break
                to = other[fd]
                if inFlight[to] < QUEUE_LIMIT:
                    heapq.heappush(due, (now + delay, serial, to, frame))
                    serial += 1
                    inFlight[to] += 1
        while due and due[0][0] <= time.monotonic():
            _, _, to, frame = heapq.heappop(due)
            inFlight[to] -= 1
            try:
                os.write(to, frame)
            except OSError:
                pass  # the device's queue is full or it is down: lost


def main(argv: List[str]) -> int:
    if len(argv) != 4:
        print("usage: delaywire IF_A NS_B IF_B DELAY_SECONDS", file=sys.stderr)
        return 2
    nameA, nsB, nameB, delay = argv[0], argv[1], argv[2], float(argv[3])
    fdA = openTap(nameA)
    enterNamespace(nsB)
    fdB = openTap(nameB)
    print("ready", flush=True)
    copyWithDelay((fdA, fdB), delay)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
