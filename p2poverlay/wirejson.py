"""
The JSON of the wire: compact, in UTF-8, one value a line, no ``NaN`` or
``Infinity``.  L{p2poverlay.message} encodes and decodes every line with
these (and stays the one place where lines become messages).
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any

__all__ = ["dumps", "loads", "quoted"]

# Compact JSON, without building an encoder for every message.  Text goes
# as UTF-8, not as \u escapes: a relayed message is never larger than the
# line it came in (an escape takes up to six bytes for one or two).
dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# One string as dumps writes it, quotes and all.
quoted = encode_basestring


def _refuseConstant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


# NaN and Infinity are not JSON, though Python's decoder takes them.
_decoder = json.JSONDecoder(parse_constant=_refuseConstant)
# What JSONDecoder.decode runs after skipping whitespace (typeshed lacks it).
_scan = _decoder.scan_once  # type: ignore[attr-defined]


def loads(text: str) -> Any:
    """
    The one JSON value of C{text} (whitespace around it allowed).

    @raise ValueError: if C{text} is not one JSON value.
    @raise RecursionError: if it nests too deep.
    """
    try:
        # Just the scanner, for the common line of a value and nothing else.
        value, end = _scan(text, 0)
    except (StopIteration, ValueError, RecursionError):
        end = -1
    if end == len(text):
        return value
    return _decoder.decode(text)
