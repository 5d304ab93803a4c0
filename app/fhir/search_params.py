"""Parse FHIR search query parameters into a typed :class:`SearchQuery` (R4 search.html).

Pure: no database. Malformed values of known parameters raise ``FhirError`` (400); unknown
parameters are collected in ``ignored`` so the caller can honour ``Prefer: handling=strict``,
and only applied parameters are echoed in the ``self`` link.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Union

from app.fhir.dates import parse_range
from app.fhir.elements import parse_elements
from app.fhir.errors import FhirError
from app.fhir.extract import fold, reference_target
from app.fhir.registry import COMMON_PARAMS, Registry, ResourceType, SearchParam

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
MODIFIERS = {
    "string": {"exact", "contains", "missing"},
    "token": {"missing"},
    "date": {"missing"},
    "reference": {"missing"},
    "number": {"missing"},
}
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


@dataclass(frozen=True)
class TokenValue:
    system: str | None
    code: str | None
    system_given: bool  # "sys|code", "|code", "sys|" all constrain the system; a bare "code" does not


@dataclass(frozen=True)
class DateValue:
    prefix: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class StringValue:
    folded: str
    raw: str


@dataclass(frozen=True)
class ReferenceValue:
    type: str | None
    id: str


@dataclass(frozen=True)
class NumberValue:
    """A number search value: the prefix, the number, and half a unit of its last written digit
    (``100`` -> 0.5, ``100.00`` -> 0.005), the implied precision ``eq`` and ``ne`` match within."""

    prefix: str
    value: Decimal
    half_unit: Decimal


@dataclass(frozen=True)
class MissingValue:
    missing: bool


Value = Union[TokenValue, DateValue, StringValue, ReferenceValue, NumberValue, MissingValue]


@dataclass(frozen=True)
class Clause:
    """One ``name[:modifier]=v1,v2`` pair: values are OR-ed, clauses are AND-ed."""

    param: str
    type: str
    modifier: str | None
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Include:
    source_type: str
    param: str
    target_type: str | None

    def __str__(self) -> str:
        return f"{self.source_type}:{self.param}" + (f":{self.target_type}" if self.target_type else "")


@dataclass
class SearchQuery:
    resource_type: str
    clauses: list[Clause] = field(default_factory=list)
    count: int = 50
    sort: tuple[str, bool] | None = None  # (param, descending)
    sort_param: SearchParam | None = None  # the type's parameter named by ``sort`` (None: _id, _lastUpdated)
    total: str = "accurate"
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    summary_count: bool = False
    elements: tuple[str, ...] = ()  # _elements: the matches are subsetted to these (app.fhir.elements)
    page: str | None = None
    applied: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def split_escaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` unless escaped with a backslash; unescape ``\\,`` ``\\|`` ``\\$`` ``\\\\``."""
    parts: list[str] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            buf.append(text[i + 1] if text[i + 1] in ",|$\\" else c + text[i + 1])
            i += 2
            continue
        if c == sep:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(c)
        i += 1
    parts.append("".join(buf))
    return parts


def unescape(text: str) -> str:
    """Resolve search-value escapes (a backslash before ``,`` ``|`` ``$`` or ``\\``)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ",|$\\":
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _split_token(text: str) -> tuple[str, str | None]:
    """Split ``system|code`` at the first unescaped bar; (text, None) when there is none."""
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "|":
            return text[:i], text[i + 1:]
        i += 1
    return text, None


def _bad(name: str, value: str, why: str) -> FhirError:
    return FhirError(400, "invalid", f"Search parameter '{name}' has an invalid value {value!r}: {why}",
                     expression=[name])


def parse_value(name: str, ptype: str, raw: str, *, base: str | None = None) -> Value:
    if ptype == "token":
        left, right = _split_token(raw)
        if right is None:
            return TokenValue(None, unescape(left), False)
        return TokenValue(unescape(left) or None, unescape(right) or None, True)
    if ptype == "date":
        prefix = raw[:2] if raw[:2] in DATE_PREFIXES else "eq"
        text = raw[2:] if raw[:2] in DATE_PREFIXES else raw
        try:
            start, end = parse_range(text)
        except ValueError as exc:
            raise _bad(name, raw, str(exc)) from None
        return DateValue(prefix, start, end)
    if ptype == "number":
        prefix = raw[:2] if raw[:2] in DATE_PREFIXES else "eq"
        text = raw[2:] if raw[:2] in DATE_PREFIXES else raw
        if not _NUMBER.fullmatch(text):
            raise _bad(name, raw, "expected an optional prefix (eq, ne, gt, lt, ge, le, sa, eb, ap) and a decimal")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise _bad(name, raw, "not a decimal") from None
        return NumberValue(prefix, number, Decimal(5).scaleb(number.as_tuple().exponent - 1))  # type: ignore[operator]
    if ptype == "string":
        if not raw:
            raise _bad(name, raw, "a string value is required")
        return StringValue(fold(raw), raw)
    if ptype == "reference":
        target = reference_target(raw, base)
        if target:
            return ReferenceValue(target[0], target[1])
        if raw and "/" not in raw and "?" not in raw and ":" not in raw:
            return ReferenceValue(None, raw)
        raise _bad(name, raw, "expected 'Type/id' or 'id'")
    raise _bad(name, raw, f"unsupported parameter type {ptype}")


def parse_search(
    rtype: ResourceType,
    items: list[tuple[str, str]],
    *,
    registry: Registry,
    default_count: int = 50,
    max_count: int = 1000,
    base: str | None = None,
) -> SearchQuery:
    q = SearchQuery(resource_type=rtype.name, count=default_count)
    for key, raw in items:
        if _CONTROL.search(key) or _CONTROL.search(raw):  # FHIR strings hold no control characters
            raise FhirError(400, "invalid", f"The search parameter {_CONTROL.sub('?', key)!r} holds a control "
                            "character, which no FHIR string may contain", expression=[_CONTROL.sub("?", key)])
        name, _, modifier = key.partition(":")
        if name in ("_count",):
            try:
                n = int(raw)
            except ValueError:
                raise _bad(name, raw, "expected a whole number") from None
            if n < 0:
                raise _bad(name, raw, "must not be negative")
            q.count = min(n, max_count)
            continue
        if name == "_total":
            if raw not in ("none", "estimate", "accurate"):
                raise _bad(name, raw, "expected none, estimate or accurate")
            q.total = raw
            q.applied.append((key, raw))
            continue
        if name == "_summary":
            if raw == "count":
                q.summary_count = True
                q.applied.append((key, raw))
            elif raw == "false":
                q.applied.append((key, raw))
            else:
                q.ignored.append(f"{key}={raw}")
            continue
        if name == "_sort":
            q.sort = _parse_sort(rtype, raw)
            q.sort_param = rtype.params.get(q.sort[0])
            q.applied.append((key, ("-" if q.sort[1] else "") + q.sort[0]))
            continue
        if name in ("_include", "_revinclude"):
            inc = _parse_include(name, raw, rtype, registry)
            (q.includes if name == "_include" else q.revincludes).append(inc)
            q.applied.append((key, raw))
            continue
        if name == "_elements":
            q.elements = parse_elements(raw)
            if q.elements:
                q.applied.append((key, raw))
            continue
        if name == "_page":
            q.page = raw
            continue
        if name == "_format":
            continue
        ptype = COMMON_PARAMS.get(name) or (rtype.params[name].type if name in rtype.params else None)
        if ptype is None:
            q.ignored.append(key)
            continue
        if modifier:
            allowed = MODIFIERS.get(ptype, set())
            is_type_modifier = ptype == "reference" and modifier in registry.types
            if modifier not in allowed and not is_type_modifier:
                raise FhirError(400, "invalid", f"Search modifier ':{modifier}' is not supported on '{name}'",
                                expression=[key])
        if modifier == "missing":
            if raw not in ("true", "false"):
                raise _bad(key, raw, "expected true or false")
            q.clauses.append(Clause(name, ptype, "missing", (MissingValue(raw == "true"),)))
            q.applied.append((key, raw))
            continue
        values: list[Value] = []
        for part in split_escaped(raw, ",") if ptype != "token" else _split_commas_keep_escapes(raw):
            if part == "" and ptype != "token":
                continue
            v = parse_value(name, ptype, part, base=base)
            if isinstance(v, ReferenceValue) and modifier and modifier in registry.types:
                v = ReferenceValue(modifier, v.id)
            values.append(v)
        if not values:
            raise _bad(key, raw, "no value given")
        q.clauses.append(Clause(name, ptype, modifier or None, tuple(values)))
        q.applied.append((key, raw))
    return q


def _split_commas_keep_escapes(raw: str) -> list[str]:
    """Split tokens on unescaped commas but keep ``\\|`` escapes for the system/code split."""
    parts, buf, i = [], [], 0
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw):
            if raw[i + 1] == ",":
                buf.append(",")
            else:
                buf.append(raw[i:i + 2])
            i += 2
            continue
        if raw[i] == ",":
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(raw[i])
        i += 1
    parts.append("".join(buf))
    return [p for p in parts if p != ""]


def _parse_sort(rtype: ResourceType, raw: str) -> tuple[str, bool]:
    first = raw.split(",")[0].strip()
    desc = first.startswith("-")
    name = first[1:] if desc else first
    if name not in ("_lastUpdated", "_id") and name not in rtype.sort_params:
        allowed = ", ".join(["_lastUpdated", "_id", *rtype.sort_params])
        raise _bad("_sort", raw, f"sorting is supported on {allowed}")
    return name, desc


def _parse_include(name: str, raw: str, rtype: ResourceType, registry: Registry) -> Include:
    parts = raw.split(":")
    if len(parts) not in (2, 3):
        raise _bad(name, raw, "expected Type:parameter[:TargetType]")
    source = registry.get(parts[0])
    # The audit trail is not in the resource store, so no search can include from it.
    if source is None or source.audit_trail or (name == "_include" and source.name != rtype.name):
        raise _bad(name, raw, f"'{parts[0]}' is not a type this search can include from")
    param = source.params.get(parts[1])
    if param is None or param.type != "reference":
        raise _bad(name, raw, f"'{parts[1]}' is not a reference parameter of {source.name}")
    target = parts[2] if len(parts) == 3 else None
    if target is not None and target not in registry.types:
        raise _bad(name, raw, f"unknown target type '{target}'")
    return Include(source.name, param.name, target)
