"""What the benchmarks ran on: CPU, cores, memory use, Python, Twisted."""

from __future__ import annotations

import os
import platform
import resource

import twisted


def cpuModel() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe() -> dict:
    return {
        "cpu": cpuModel(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "platform": platform.platform(),
    }


def rssBytes() -> int:
    """This process's resident set size now."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # ru_maxrss is the peak, in KiB on Linux: the best we have elsewhere.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def raiseFileLimit() -> tuple:
    """Raise the soft limit on open files to the hard limit; return both."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)
