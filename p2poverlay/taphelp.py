"""
What the plugin's options take, and how ``twistd p2p --help`` shows them.

A L{ValueKind} parses one kind of option value and names the option in
its errors (``--min-peers: must be at least 1, got 0``).  L{formatHelp}
writes the help: the options everyone needs first, then the others in
groups, each with a readable default.
"""

from __future__ import annotations

import textwrap
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from twisted.python import usage

from p2poverlay.message import MAX_TTL


class ValueKind:
    """
    A kind of option value: how to parse it, and how help shows it.

    @ivar metavar: what help writes after the option (C{SECONDS}).
    @ivar unit: what follows a default in help (C{" s"}).
    """

    def __init__(self, metavar: str, unit: str,
                 parse: Callable[[str], Any]) -> None:
        self.metavar = metavar
        self.unit = unit
        self.parse = parse

    def forOption(self, option: str) -> Callable[[str], Any]:
        """A coercer for C{--option} whose errors name it."""
        def coerce(value: str) -> Any:
            try:
                return self.parse(value)
            except ValueError as e:
                raise usage.UsageError(f"--{option}: {e}") from None
        coerce.kind = self  # type: ignore[attr-defined]
        return coerce


def _whole(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"must be a whole number, got {value!r}") from None


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"must be a number, got {value!r}") from None


def _atLeastOne(value: str) -> int:
    number = _whole(value)
    if number < 1:
        raise ValueError(f"must be at least 1, got {number}")
    return number


def _positive(value: str) -> float:
    number = _number(value)
    if not number > 0:
        raise ValueError(f"must be more than 0, got {value}")
    return number


def _hops(value: str) -> int:
    number = _whole(value)
    if not 1 <= number <= MAX_TTL:
        raise ValueError(f"must be between 1 and {MAX_TTL}, got {number}")
    return number


def _mode(value: str) -> str:
    if value not in ("tree", "flood"):
        raise ValueError(f"must be 'tree' or 'flood', got {value!r}")
    return value


COUNT = ValueKind("N", "", _atLeastOne)
BYTES = ValueKind("BYTES", " bytes", _atLeastOne)
SECONDS = ValueKind("SECONDS", " s", _positive)
RATE = ValueKind("N", "", _positive)
HOPS = ValueKind("HOPS", "", _hops)
MODE = ValueKind("MODE", "", _mode)

# What help writes after the options that are not a ValueKind.
METAVARS = {"port": "PORT", "join": "HOST:PORT", "name": "NAME",
            "data-dir": "DIR", "control": "ENDPOINT", "web": "ENDPOINT",
            "web-token": "TOKEN", "web-token-file": "FILE",
            "network-key-file": "FILE", "allow-file": "FILE"}

# The order of help: the options everyone needs first.
GROUPS: Tuple[Tuple[str, Sequence[str]], ...] = (
    ("Start here", ("port", "join", "name", "data-dir", "no-console")),
    ("The overlay's shape", (
        "min-peers", "max-peers", "max-direct-links", "broadcast",
        "broadcast-ttl", "max-peers-per-exchange", "address-book-size",
        "seen-cache-size")),
    ("Failure detection and redials", (
        "ping-interval", "peer-timeout", "reconnect-max-delay",
        "forget-after", "handshake-timeout")),
    ("Limits", (
        "max-inbound", "max-outbound", "max-inbound-per-address",
        "max-neighbours-per-address", "rate-limit", "rate-burst",
        "ban-time", "max-send-buffer", "max-line-length")),
    ("Routing by id (DHT)", (
        "dht-k", "dht-b", "dht-alpha", "dht-max-lookups", "dht-request-timeout",
        "dht-refresh-interval", "dht-request-rate", "no-dht")),
    ("Relaying for nodes others cannot dial", (
        "no-relay", "relay-circuits", "relay-reservations",
        "relay-circuit-bytes", "relay-circuit-time")),
    ("Web UI and control", ("web", "web-token", "web-token-file", "control")),
    ("Private overlays", ("network-key-file", "allow-file")),
    ("Debugging", ("insecure-plaintext",)),
    ("Help", ("help", "version")),
)

SYNOPSIS = "Usage: twistd [twistd options] p2p [options]"

PREAMBLE = """\
{longdesc}

twistd's own options come before 'p2p': -n runs the node in the
foreground, with a console on standard input (without -n it runs as a
daemon); --logfile=FILE sends the log to FILE, '-' to standard output.
By default a node with a console or a daemon logs to node.log in its
data directory.
'twistd --help' lists the others.
"""

HELP_COLUMN = 30


def _default(value: object, kind: Optional[ValueKind]) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, int) and value >= 10_000:
        text = f"{value:,}"
    else:
        text = str(value)
    return f" (default: {text}{kind.unit if kind else ''})"


def formatHelp(options: usage.Options, width: int = 79) -> str:
    """The help of C{options}, in the order of L{GROUPS}."""
    shortOf = {long: short for short, long in options.synonyms.items()
               if len(short) == 1 and short != long}
    kinds: Dict[str, ValueKind] = {}
    for parameter in getattr(options, "optParameters", []):
        kind = getattr(parameter[4], "kind", None) \
            if len(parameter) > 4 else None
        if kind is not None:
            kinds[parameter[0]] = kind
    parameters = {opt[:-1] for opt in options.longOpt if opt.endswith("=")}
    lines: List[str] = ["", PREAMBLE.format(longdesc="\n".join(
        textwrap.wrap(getattr(options, "longdesc", ""), width)))]
    for title, names in GROUPS:
        lines.append(f"{title}:")
        for name in names:
            kind = kinds.get(name)
            short = f"-{shortOf[name]}, " if name in shortOf else "    "
            left = f"  {short}--{name}"
            if name in parameters:
                left += "=" + (kind.metavar if kind else METAVARS.get(name, "VALUE"))
            doc = (options.docs.get(name) or "").strip()
            if name in parameters:
                doc += _default(options.defaults.get(name), kind)
            wrapped = textwrap.wrap(doc, width - HELP_COLUMN) or [""]
            if len(left) + 2 > HELP_COLUMN:
                lines.append(left)
                left = ""
            lines.append(f"{left:<{HELP_COLUMN}}{wrapped[0]}".rstrip())
            lines.extend(" " * HELP_COLUMN + more for more in wrapped[1:])
        lines.append("")
    return "\n".join(lines)


def listedOptions() -> List[str]:
    """Every option L{GROUPS} shows, in order."""
    return [name for _, names in GROUPS for name in names]
