"""
Where to find what a node offers besides its console: its log, its
control endpoint and its web UI, as the console's first screen shows them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Tuple

from twisted.internet.address import UNIXAddress

from p2poverlay.addresses import formatAddress
from p2poverlay.controlwire import defaultControlPath

__all__ = ["STANDARD_OUTPUT", "Whereabouts", "logDestination", "shortPath"]

STANDARD_OUTPUT = "standard output"


def shortPath(path: str) -> str:
    """C{path}, relative to the current directory if it is inside it."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    return absolute if relative.startswith(os.pardir) else relative


def logDestination(twistdOptions: Optional[Mapping[str, Any]]) -> Optional[str]:
    """
    Where twistd logs, from its options: a file's path,
    L{STANDARD_OUTPUT} or C{syslog}; C{None} if not known.
    """
    if twistdOptions is None:
        return None
    if twistdOptions.get("syslog"):
        return "syslog"
    logfile = twistdOptions.get("logfile")
    if logfile == "-" or (logfile is None and twistdOptions.get("nodaemon")):
        return STANDARD_OUTPUT
    return shortPath(logfile) if logfile else None


@dataclass
class Whereabouts:
    """
    What a node serves besides its console, filled in as its services are
    made.

    @ivar log: where the log goes (L{logDestination}).
    @ivar dataDir: the node's data directory, if it has one.
    @ivar control: the control service (its C{port} once it listens).
    @ivar web: the web service (its C{port} once it listens).
    @ivar webToken: whether the web API asks for a token.
    """

    log: Optional[str] = None
    dataDir: Optional[str] = None
    control: Any = None
    web: Any = None
    webToken: bool = False

    @property
    def logsToStandardOutput(self) -> bool:
        return self.log == STANDARD_OUTPUT

    def controlText(self) -> str:
        """Where the control endpoint listens, and how to attach to it."""
        port = getattr(self.control, "port", None)
        if port is None:
            return "none" if self.control is None else "none (it could not listen)"
        host = port.getHost()
        if isinstance(host, UNIXAddress):
            name = host.name
            path = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
            if self.dataDir and os.path.abspath(path) == os.path.abspath(
                    defaultControlPath(self.dataDir)):
                attach = f"--data-dir {shortPath(self.dataDir)}"
            else:
                attach = f"--control unix:{path}"
            return f"{shortPath(path)} (attach: p2p-console {attach})"
        hostname, number = getattr(host, "host", "?"), getattr(host, "port", 0)
        address = formatAddress(hostname, number)
        if ":" in hostname:
            return address
        reach = "127.0.0.1" if hostname == "0.0.0.0" else hostname
        # Over TCP the client needs the cookie in the data directory too.
        cookie = f" --data-dir {shortPath(self.dataDir)}" if self.dataDir else ""
        return (f"{address} (attach: p2p-console --control "
                f"tcp:{reach}:{number}{cookie})")

    def webText(self) -> str:
        """The web UI's address, or C{off}."""
        port = getattr(self.web, "port", None)
        if port is None:
            return "off" if self.web is None else "none (it could not listen)"
        host = port.getHost()
        url = f"http://{formatAddress(getattr(host, 'host', '?'), getattr(host, 'port', 0))}/"
        return url + (" (token required)" if self.webToken else "")

    def fields(self, name: str) -> List[Tuple[str, str]]:
        """
        The first screen's lines as C{(label, value)}: the node's name,
        where it logs, its control endpoint and its web UI.
        """
        return [("name", name or "(none; give one with --name)"),
                ("log", self.log or "(not known)"),
                ("control", self.controlText()),
                ("web UI", self.webText())]
