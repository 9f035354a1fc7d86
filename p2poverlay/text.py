"""
Text that is safe to print on a terminal, whatever a peer put in it.
"""

from __future__ import annotations

import unicodedata
from typing import List, Sequence, Tuple

__all__ = ["escape", "fieldLines"]

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
_UNSAFE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def escape(text: str) -> str:
    """
    Make C{text} safe to print as part of one terminal line: backslashes,
    control, format and line-separator characters become escapes.

    @param text: any text, as a peer may have sent it.
    @return: one line of printable text that reads back as C{text}.
    """
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch == " " or unicodedata.category(ch) not in _UNSAFE:
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def fieldLines(fields: Sequence[Tuple[str, str]]) -> List[str]:
    """
    C{label: value} lines, indented, with the values aligned; both are
    escaped.

    @param fields: C{(label, value)} pairs, in order.
    """
    width = max((len(label) for label, _ in fields), default=0) + 2
    return [f"  {escape(label) + ':':<{width}}{escape(value)}"
            for label, value in fields]
