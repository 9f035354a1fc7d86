"""
How message fields go to and from JSON: the field specs of each message
class, and the entry types (such as L{PeerAddress}) that list fields hold.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Tuple

from p2poverlay.peeraddress import PeerAddress
from p2poverlay.wirevalues import MAX_PEER_ENTRIES, MessageError, checkRange

# Message class -> ((field name, expected type, required), ...).
_SPECS: Dict[type, Tuple[Tuple[str, type, bool], ...]] = {}


def fieldSpecs(cls: type) -> Tuple[Tuple[str, type, bool], ...]:
    """The wire fields of a message class, worked out once per class."""
    specs = _SPECS.get(cls)
    if specs is None:
        specs = _SPECS[cls] = tuple(
            (f.name, _FIELD_TYPES[str(f.type)],
             f.default is dataclasses.MISSING
             and f.default_factory is dataclasses.MISSING)
            for f in dataclasses.fields(cls))
    return specs


def toJSON(value: Any) -> Any:
    """A field's value as JSON: lists of entries as lists of objects."""
    if isinstance(value, tuple):
        return [v if v.__class__ is str else toJSON(v) for v in value]
    toDict = getattr(value, "toDict", None)
    return toDict() if toDict is not None else value


def fromJSON(kind: str, name: str, expected: type, value: Any) -> Any:
    """A field's value from JSON, checked; raise L{MessageError}."""
    if expected is int:
        # bool is a subclass of int in Python, but not a number on the wire.
        if isinstance(value, bool) or not isinstance(value, int):
            raise MessageError(f"{kind} field {name!r} must be an integer")
        checkRange(value, f"{kind} field {name!r}")
        return value
    if expected is str:
        if not isinstance(value, str):
            raise MessageError(f"{kind} field {name!r} must be a string")
        return value
    if not isinstance(value, list):
        raise MessageError(f"{kind} field {name!r} must be a list")
    if expected is _StrList:
        if not all(isinstance(item, str) for item in value):
            raise MessageError(f"{kind} field {name!r} must be a list of "
                               f"strings")
        return tuple(value)
    # Each entry stands alone: a bad one is skipped, and those past the
    # first MAX_PEER_ENTRIES are not even looked at.
    entries = []
    for item in value[:MAX_PEER_ENTRIES]:
        try:
            entries.append(expected.fromDict(kind, item))  # type: ignore
        except MessageError:
            pass
    return tuple(entries)


# Field annotations are strings (from __future__ import annotations).
class _StrList(tuple):
    pass


# A tuple of entries maps to the entry's class: C{fromDict(kind, item)}
# builds one (raising MessageError), C{toDict()} encodes it.
_FIELD_TYPES: Dict[str, type] = {
    "str": str,
    "int": int,
    "Tuple[PeerAddress, ...]": PeerAddress,
    "Tuple[str, ...]": _StrList,
}


def registerEntryType(annotation: str, entryClass: type) -> None:
    """Let message fields annotated C{annotation} hold C{entryClass}es."""
    _FIELD_TYPES[annotation] = entryClass
