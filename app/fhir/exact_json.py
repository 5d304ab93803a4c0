"""JSON whose numbers keep the text they were sent with (R4 datatypes.html#decimal).

FHIR makes a decimal's precision part of its value: ``75.00`` is not ``75.0``, and ``1e2`` or a
value with 20 significant digits must come back as written. A float cannot hold that, so
orjson alone would rewrite them. Most bodies have no such number, though, and orjson is the
API's fast path; so:

- ``loads`` parses with orjson (which also decides what is valid JSON), then scans the raw
  bytes for number tokens that a float would rewrite (a trailing zero after the point, an
  exponent, more digits than a double keeps). Only when one is found is the body parsed a
  second time with the standard library, whose hooks turn exactly those numbers into
  :class:`ExactNumber`; every other number stays a plain ``int`` or ``float``.
- ``dumps`` (and ``default``, for ``orjson.dumps(..., default=default)``) writes an
  ``ExactNumber`` back as its text, verbatim (``orjson.Fragment``).

An ``ExactNumber`` is a ``float`` for everything else, so code that reads the parsed resource
(validation, the claim guard and scrubber, comparisons with a stored version parsed by orjson)
sees the same values as before.

A false alarm of the scan (such text inside a string) only costs the second parse.
"""
from __future__ import annotations

import json
from typing import Any

import orjson

# Finding the numbers a float may rewrite without a regular expression (which costs ~20 ns a
# byte, more than orjson's whole parse): with every digit mapped to '0' and 'E' to 'e', they
# are where a fraction ("0.0"), an exponent ("0e") or a 19-digit run starts; a number token starts
# after ':' (a member's value), '[' or ',' (an array item) and optional whitespace, and ends
# before ',', ']', '}' or whitespace (which keeps out times such as "10:00:00.000Z").
_ZEROS = bytes.maketrans(b"123456789E", b"000000000e")
_MARKERS = (b"0.0", b"0e", b"0" * 19)
_MANTISSA = frozenset(b"0.-")
_TOKEN = frozenset(b"0.-+e")
_SPACE = frozenset(b" \t\n\r")
_BEFORE = frozenset(b":[,")
_AFTER = frozenset(b",]} \t\n\r")
_INT64_MIN, _UINT64_MAX = -(2 ** 63), 2 ** 64 - 1


class ExactNumber(float):
    """A JSON number that remembers the exact text it was written with (``75.00``, ``1e2``).

    It computes and compares as the float of that text; only serialization (``default``)
    uses the text. Copies are the object itself, as for any immutable number."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> "ExactNumber":
        self = super().__new__(cls, text)
        self.text = text
        return self

    def __copy__(self) -> "ExactNumber":
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> "ExactNumber":
        return self

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return ExactNumber, (self.text,)


def _survives_float(token: bytes) -> bool:
    """Whether orjson writes ``token`` back unchanged after reading it."""
    try:
        return orjson.dumps(orjson.loads(token)) == token
    except orjson.JSONDecodeError:
        return False


def _token_at(raw: bytes, zeros: bytes, at: int) -> bytes | None:
    """The number token around position ``at`` of a marker, or None when it is inside a string."""
    start = at
    while start > 0 and zeros[start - 1] in _MANTISSA:
        start -= 1
    before = start - 1
    while before >= 0 and zeros[before] in _SPACE:
        before -= 1
    if before < 0 or zeros[before] not in _BEFORE:
        return None
    end = at
    while end < len(zeros) and zeros[end] in _TOKEN:
        end += 1
    if end < len(zeros) and zeros[end] not in _AFTER:
        return None
    return raw[start:end]


def needs_exact(raw: bytes) -> bool:
    """Whether some number in ``raw`` would be rewritten by a float round trip."""
    zeros = raw.translate(_ZEROS)
    for marker in _MARKERS:
        at = zeros.find(marker)
        while at != -1:
            token = _token_at(raw, zeros, at)
            if token is not None and not _survives_float(token):
                return True
            at = zeros.find(marker, at + 1)
    return False


def _exact_float(text: str) -> float:
    value = float(text)
    return value if orjson.dumps(value) == text.encode() else ExactNumber(text)


def _exact_int(text: str) -> int | float:
    """Integers orjson keeps exact stay ``int``; larger ones it reads as floats, as here."""
    value = int(text)
    return value if _INT64_MIN <= value <= _UINT64_MAX else ExactNumber(text)


def loads(raw: bytes | str) -> Any:
    """Parse JSON, keeping numbers a float would rewrite as :class:`ExactNumber`.

    Raises ``orjson.JSONDecodeError`` for invalid JSON, as ``orjson.loads`` does."""
    doc = orjson.loads(raw)
    data = raw.encode() if isinstance(raw, str) else raw
    if not needs_exact(data):
        return doc
    try:
        return json.loads(data, parse_float=_exact_float, parse_int=_exact_int)
    except ValueError:  # stricter than orjson somewhere; keep orjson's reading
        return doc


def default(obj: Any) -> Any:
    """``orjson.dumps`` hook: an :class:`ExactNumber` is written as its original text."""
    if isinstance(obj, ExactNumber):
        return orjson.Fragment(obj.text)
    raise TypeError(f"Type is not JSON serializable: {type(obj).__name__}")


def dumps(obj: Any, option: int | None = None) -> bytes:
    """``orjson.dumps`` that writes :class:`ExactNumber` numbers as they were sent."""
    return orjson.dumps(obj, default=default, option=option)
