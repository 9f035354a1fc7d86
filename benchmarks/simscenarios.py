"""
The simulator's scenarios (see L{benchmarks.sim}): each builds its overlay
from the seed, runs it on the virtual clock and returns plain figures.

The nodes' settings (L{SIM_CONFIG}) differ from a node's defaults where
the defaults would cost the simulator more than they tell: 4 to 8
neighbours (as the papers' small active views), peer exchange every 10 s
and a PING every 5 s (a peer is given up after 15 s).  Routing by id is
off: these scenarios measure the overlay and its broadcast alone (the DHT
has its own, L{benchmarks.dht}).
"""

from __future__ import annotations

import math
import random
import time
from statistics import mean
from typing import Callable, Dict, List, Optional, Set, Tuple

from p2poverlay.config import NodeConfig
from p2poverlay.memnet import MemoryOverlay, NotReached, components
from p2poverlay.memnet.broadcasts import Probe, Spread, setBroadcastMode

SIM_CONFIG = dict(minPeers=4, maxPeers=8, exchangeInterval=10.0,
                  pingInterval=5.0, peerTimeout=15.0, dht=False)
# Virtual seconds between two nodes' starts while an overlay forms.
JOIN_SPACING = 0.01
# Virtual seconds an overlay runs on once connected, before it is used.
STABILIZE = 20.0
# A broadcast is given this long to reach everyone, then this long more
# for late duplicates and grafts, before the next one starts.
SPREAD_TIMEOUT = 30.0
SETTLE = 3.0
# Tree broadcasts made before the measured ones (the first prune the tree).
WARMUP = 3


def _printNow(line: str) -> None:
    print(line, flush=True)


class Progress:
    """
    Prints where a scenario is, at most once every C{every} real seconds:
    nodes up, the virtual time and the real time it has taken.
    """

    def __init__(self, every: float = 5.0,
                 out: Optional[Callable[[str], None]] = None) -> None:
        self.every = every
        self.out = out if out is not None else _printNow
        self.what = ""
        self.total = 0
        self._started = self._shown = time.perf_counter()

    def begin(self, what: str, total: int) -> None:
        """A new scenario of C{total} nodes starts."""
        self.what, self.total = what, total
        self._started = time.perf_counter()
        self.out(f"  [sim] {what}")

    def show(self, overlay: MemoryOverlay, note: str = "",
             force: bool = False) -> None:
        """Print a progress line if it is time to (or C{force})."""
        now = time.perf_counter()
        if not force and now - self._shown < self.every:
            return
        self._shown = now
        parts = components(overlay.graph())
        linked = len(parts[0]) if parts else 0
        self.out(f"  [sim] {self.what}: {len(overlay.running):,}/"
                 f"{self.total:,} nodes up, {linked:,} in the largest "
                 f"component, virtual {overlay.now:.1f} s, real "
                 f"{now - self._started:.1f} s{note}")


class OutOfTime(Exception):
    """The real time allowed ran out; C{overlay} is as far as it got."""

    def __init__(self, overlay: MemoryOverlay) -> None:
        super().__init__("out of real time")
        self.overlay = overlay


def formOverlay(size: int, seed: object, progress: Progress,
                timeout: float = 1200.0,
                realLimit: Optional[float] = None) -> MemoryOverlay:
    """
    Start C{size} nodes, L{JOIN_SPACING} apart, each joining a random node
    started before it; run until the overlay is connected, then
    L{STABILIZE} seconds more.  The overlay keeps no history of events
    (only what the figures need), so that its memory is the nodes'.

    @param realLimit: real seconds it may take at most.
    @raise NotReached: if it is not connected within C{timeout} virtual
        seconds.
    @raise OutOfTime: past C{realLimit}.
    """
    overlay = MemoryOverlay(seed=seed, config=NodeConfig(**SIM_CONFIG),
                            history=False)
    started = time.perf_counter()

    def checkTime() -> None:
        if realLimit is not None \
                and time.perf_counter() - started > realLimit:
            raise OutOfTime(overlay)

    chunk = max(1, size // 50)
    while len(overlay.names) < size:
        overlay.addNodes(min(chunk, size - len(overlay.names)),
                         every=JOIN_SPACING)
        overlay.run(JOIN_SPACING)
        progress.show(overlay, " (starting)")
        checkTime()
    deadline = overlay.now + timeout
    while not overlay.isConnected():
        checkTime()
        if overlay.now >= deadline:
            raise NotReached(f"{size} nodes not connected within "
                             f"{timeout:g} s of virtual time")
        overlay.run(1.0)
        progress.show(overlay, " (connecting)")
    overlay.run(STABILIZE)
    progress.show(overlay, " (formed)", force=True)
    return overlay


def spreadOne(overlay: MemoryOverlay, origin: str, body: str) -> Spread:
    """One broadcast, alone: until everyone has it (or a timeout), settled."""
    probe = Probe.start(overlay, origin, body)
    try:
        overlay.runUntil(overlay.everyoneGot(probe.message_id),
                         SPREAD_TIMEOUT, body, step=0.05)
    except NotReached:
        pass  # measured as it is: reliability below 1
    overlay.run(SETTLE)
    return probe.spread(overlay)


def steadyState(overlay: MemoryOverlay, seed: object, broadcasts: int,
                warmup: int, progress: Progress) -> Dict[str, List[Spread]]:
    """
    C{broadcasts} floods, then C{warmup} and C{broadcasts} tree broadcasts
    from the same origins, on the same overlay.
    """
    rng = random.Random(f"{seed}|sim|origins")
    origins = [rng.choice(overlay.running) for _ in range(broadcasts)]
    spreads: Dict[str, List[Spread]] = {"flood": [], "tree": []}
    setBroadcastMode(overlay, "flood")
    for index, origin in enumerate(origins):
        spreads["flood"].append(spreadOne(overlay, origin, f"flood {index}"))
        progress.show(overlay, f" (flood {index + 1}/{broadcasts})")
    setBroadcastMode(overlay, "tree")
    for index in range(warmup):
        spreadOne(overlay, rng.choice(overlay.running), f"warm-up {index}")
    for index, origin in enumerate(origins):
        spreads["tree"].append(spreadOne(overlay, origin, f"tree {index}"))
        progress.show(overlay, f" (tree {index + 1}/{broadcasts})")
    return spreads


def _graphState(overlay: MemoryOverlay) -> Tuple[bool, Dict[str, int]]:
    """Is the overlay connected; each node's component size less one."""
    parts = components(overlay.graph())
    reach = {name: len(part) - 1 for part in parts for name in part}
    return len(parts) <= 1, reach


def massFailure(size: int, seed: object, fraction: float, progress: Progress,
                silent: bool = False, listed: int = 10, interval: float = 1.0, window: float = 10.0,
                timeout: float = 600.0) -> dict:
    """
    Crash C{fraction} of a formed overlay at once, then broadcast from a
    random live node every C{interval} virtual seconds.  Killed nodes'
    peers see their connections reset; with C{silent}, as in a power cut,
    nothing reaches them and their own failure detection has to notice
    (a PING every 5 s, given up after 15 s).  Each broadcast is
    judged C{window} seconds after it started, against what flooding the
    graph as it stood at its start could reach.

    @return: C{probes} (the first C{listed} at least), C{connected} (virtual
        seconds until the overlay was connected again) and C{healed} (until
        the first broadcast, started on a connected overlay, that reached
        every live node); NaN for what did not happen within C{timeout}.
    """
    overlay = formOverlay(size, seed, progress)
    rng = random.Random(f"{seed}|sim|failure|{fraction}")
    for index in range(WARMUP):
        spreadOne(overlay, rng.choice(overlay.running), f"warm-up {index}")
    start = overlay.now
    victims = overlay.crashFraction(fraction, silent=silent)
    pending: List[Tuple[Probe, float, bool]] = []
    probes: List[dict] = []
    connected: Optional[float] = None
    healed: Optional[float] = None
    while healed is None or len(probes) < listed:
        elapsed = overlay.now - start
        if elapsed > timeout:
            break
        isConnected, reach = _graphState(overlay)
        if isConnected and connected is None:
            connected = elapsed
        running = overlay.running
        origin = rng.choice(running)
        probe = Probe.start(overlay, origin, f"after the crash {len(pending)}")
        pending.append((probe, reach.get(origin, 0) / max(1, len(running) - 1),
                        isConnected))
        overlay.run(interval)
        while pending and pending[0][0].sent + window <= overlay.now:
            probe, reachable, wasConnected = pending.pop(0)
            spread = probe.spread(overlay)
            probes.append(dict(sent=probe.sent - start,
                               reliability=spread.reliability,
                               reachable=reachable, lastHop=spread.lastHop,
                               lastDelivery=spread.lastDelivery * 1000))
            if healed is None and wasConnected and spread.reliability == 1.0:
                healed = probe.sent - start
        progress.show(overlay, f" ({len(probes)} broadcasts judged)")
    nan = float("nan")
    return dict(fraction=fraction, silent=silent, crashed=len(victims), probes=probes,
                listed=min(listed, len(probes)),
                connected=nan if connected is None else connected,
                healed=nan if healed is None else healed)


def churn(size: int, seed: object, rate: float, minutes: float,
          progress: Progress, broadcastEvery: float = 10.0,
          window: float = 10.0) -> dict:
    """
    Replace C{rate} of the nodes per virtual minute, evenly spread, for
    C{minutes}: a random live node crashes and a new one joins through a
    random live node.  A broadcast from a random linked node every
    C{broadcastEvery} seconds is judged C{window} seconds on, among the
    nodes linked when it started and still running.  Degrees are sampled
    at each broadcast: the highest of every node, the lowest of those up
    a virtual minute or more.

    @return: the figures of the whole run, and C{timeline}: one entry per
        virtual minute since the churn began (C{minute} 0 is the first),
        with the C{broadcasts} sent in it, their mean and lowest
        C{reliability} and C{reachable} (what flooding the graph could
        reach), the degrees sampled in it (C{minDegree}, C{maxDegree})
        and the nodes C{replaced} by its end; NaN where nothing was sent.
    """
    overlay = formOverlay(size, seed, progress)
    rng = random.Random(f"{seed}|sim|churn")
    for index in range(WARMUP):
        spreadOne(overlay, rng.choice(overlay.running), f"warm-up {index}")
    joined = {name: overlay.now - 60.0 for name in overlay.names}
    gap = 60.0 / (rate * size)
    begin = overlay.now
    end = begin + minutes * 60.0
    # Due times as multiples from the start, not sums: added up, 10 s
    # fifteen times can fall short of 150 s and let one more in.
    changes, broadcasts = 1, 0
    nextChange, nextBroadcast = begin + gap, begin
    pending: List[Tuple[Probe, Set[str], float, int]] = []
    judged: List[Tuple[float, float]] = []
    minDegree, maxDegree, replaced = SIM_CONFIG["maxPeers"], 0, 0
    buckets = max(1, math.ceil(minutes))
    perMinute: List[dict] = [dict(judged=[], degrees=[], replaced=0)
                             for _ in range(buckets)]

    def minuteOf(now: float) -> int:
        # The epsilon keeps an event due exactly on a minute in that minute.
        return min(buckets - 1, int((now - begin) / 60.0 + 1e-9))

    while overlay.now < end or pending:
        due = min(nextChange, nextBroadcast) if overlay.now < end \
            else pending[0][0].sent + window
        overlay.run(max(0.0, due - overlay.now))
        now = overlay.now
        if now < end and now >= nextChange:
            overlay.crash(rng.choice(overlay.running))
            node = overlay.addNode([rng.choice(overlay.running)])
            joined[node.config.name] = now
            replaced += 1
            perMinute[minuteOf(now)]["replaced"] += 1
            changes += 1
            nextChange = begin + changes * gap
        if now < end and now >= nextBroadcast:
            graph = overlay.graph()
            settled = [len(peers) for name, peers in graph.items()
                       if now - joined[name] >= 60.0]
            highest = max((len(peers) for peers in graph.values()),
                          default=0)
            maxDegree = max(maxDegree, highest)
            minDegree = min([minDegree, *settled])
            perMinute[minuteOf(now)]["degrees"].append(
                (min(settled, default=math.nan), highest))
            linked = {name for name, peers in graph.items() if peers}
            order = {name: index for index, name in enumerate(overlay.names)}
            origin = rng.choice(sorted(linked, key=order.__getitem__))
            _, reach = _graphState(overlay)
            probe = Probe.start(overlay, origin, f"churn {len(judged)}")
            pending.append((probe, linked - {origin},
                            reach[origin] / max(1, len(linked) - 1),
                            minuteOf(now)))
            broadcasts += 1
            nextBroadcast = begin + broadcasts * broadcastEvery
        while pending and pending[0][0].sent + window <= overlay.now:
            probe, linked, reachable, minute = pending.pop(0)
            among = [n for n in linked if overlay.node(n).running]
            judged.append((probe.spread(overlay, among).reliability,
                           reachable))
            perMinute[minute]["judged"].append(judged[-1])
        progress.show(overlay, f" ({replaced} replaced)")
    nan, timeline, soFar = math.nan, [], 0
    for minute, got in enumerate(perMinute):
        soFar += got["replaced"]
        reliabilities = [r for r, _ in got["judged"]]
        reachables = [r for _, r in got["judged"]]
        lows = [low for low, _ in got["degrees"] if low == low]
        timeline.append(dict(
            minute=minute, broadcasts=len(reliabilities),
            reliability=mean(reliabilities) if reliabilities else nan,
            minReliability=min(reliabilities, default=nan),
            reachable=mean(reachables) if reachables else nan,
            minReachable=min(reachables, default=nan),
            minDegree=min(lows, default=nan),
            maxDegree=max((high for _, high in got["degrees"]), default=nan),
            replaced=soFar))
    return dict(rate=rate, minutes=minutes, replaced=replaced,
                broadcasts=len(judged),
                reliability=sum(r for r, _ in judged) / len(judged),
                minReliability=min(r for r, _ in judged),
                reachable=sum(r for _, r in judged) / len(judged),
                minReachable=min(r for _, r in judged),
                minDegree=minDegree, maxDegree=maxDegree, timeline=timeline)
