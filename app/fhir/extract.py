"""Search-index values extracted from a resource, one function per parameter type.

Paths come from the registry (``subject``, ``participant.individual``, ``performed[x]``); the
value's JSON shape decides how it is read (Identifier vs CodeableConcept vs Coding, Period vs
dateTime), which is enough for the R4 data types our parameters touch.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Iterator

from app.fhir.dates import MAX, MIN, parse_range
from app.fhir.registry import ResourceType

MAX_INDEX_LEN = 255


@dataclass
class IndexValues:
    tokens: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    strings: list[tuple[str, str, str]] = field(default_factory=list)
    dates: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    references: list[tuple[str, str, str]] = field(default_factory=list)
    numbers: list[tuple[str, int]] = field(default_factory=list)  # (param, value in ten-thousandths)


NUMBER_SCALE = 10_000  # number index values are whole ten-thousandths (app.db.SearchNumber)


def number_units(value: Decimal) -> int:
    """``value`` as whole ten-thousandths, rounded half-even."""
    return int((value * NUMBER_SCALE).to_integral_value(rounding=ROUND_HALF_EVEN))


def fold(text: str) -> str:
    """Case- and accent-insensitive form used for string search (R4 search.html §3.1.1.5.8)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()[:MAX_INDEX_LEN]


def _step_filter(step: str) -> tuple[str, tuple[list[str], str] | None]:
    """``input[type/text=category]`` -> (``input``, (["type", "text"], "category")): keep only the
    items whose dotted element equals the text (FHIRPath ``input.where(type.text = 'category')``)."""
    if not step.endswith("]") or "=" not in step:  # ``serviced[x]`` is a choice, not a filter
        return step, None
    name, _, cond = step[:-1].partition("[")
    left, _, right = cond.partition("=")
    return name, (left.split("/"), right)


def _matches(item: dict[str, Any], cond: tuple[list[str], str]) -> bool:
    """Whether any value at the filter's elements (arrays flattened) equals its text."""
    nodes: list[Any] = [item]
    for part in cond[0]:
        nodes = [n.get(part) for n in nodes if isinstance(n, dict)]
        nodes = [x for n in nodes for x in (n if isinstance(n, list) else [n])]
    return cond[1] in nodes


@lru_cache(maxsize=None)
def _steps(path: str) -> tuple[tuple[str, str | None, tuple[list[str], str] | None], ...]:
    """``path``'s steps as (element, choice prefix or None, filter or None), worked out once per
    path: every write walks every path of its type's parameters."""
    out = []
    for raw_step in path.split("."):
        step, cond = _step_filter(raw_step)
        out.append((step, step[:-3] if step.endswith("[x]") else None, cond))
    return tuple(out)


def _is_choice(key: str, prefix: str) -> bool:
    """Whether element ``key`` is a type of choice element ``prefix[x]`` (``servicedDate`` of
    ``serviced``)."""
    return key.startswith(prefix) and len(key) > len(prefix) and key[len(prefix)].isupper()


def walk(node: Any, path: str) -> Iterator[Any]:
    """Yield every value at a dotted ``path`` below ``node``, flattening arrays. A step may
    filter its items: ``input[type/text=category]`` (a slash between the filter's elements)."""
    values: list[Any] = [node]
    for step, prefix, cond in _steps(path):
        nxt: list[Any] = []
        for value in values:
            for item in (value if isinstance(value, list) else (value,)):
                if not isinstance(item, dict):
                    continue
                if prefix is not None:
                    nxt.extend(v for key, v in item.items() if _is_choice(key, prefix))
                elif step in item:
                    nxt.append(item[step])
        if cond is not None:
            nxt = [x for v in nxt for x in (v if isinstance(v, list) else [v])
                   if isinstance(x, dict) and _matches(x, cond)]
        if not nxt:
            return
        values = nxt
    for value in values:
        if isinstance(value, list):
            yield from value
        else:
            yield value


def tokens_of(value: Any) -> Iterator[tuple[str | None, str | None]]:
    if isinstance(value, bool):
        yield None, "true" if value else "false"
    elif isinstance(value, str):
        yield None, value
    elif isinstance(value, dict):
        if "coding" in value:
            for coding in value.get("coding") or []:
                if isinstance(coding, dict) and coding.get("code") is not None:
                    yield coding.get("system"), str(coding["code"])
        elif "code" in value:
            yield value.get("system"), str(value["code"])
        elif "value" in value:  # Identifier, ContactPoint
            yield value.get("system"), str(value["value"])


_NAME_PARTS = ("text", "family", "given", "prefix", "suffix")
_ADDRESS_PARTS = ("text", "line", "city", "district", "state", "postalCode", "country")


def strings_of(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        parts = _NAME_PARTS if ("family" in value or "given" in value) else _ADDRESS_PARTS
        for part in parts:
            v = value.get(part)
            if isinstance(v, str):
                yield v
            elif isinstance(v, list):
                yield from (s for s in v if isinstance(s, str))


def dates_of(value: Any) -> Iterator[tuple[datetime, datetime]]:
    try:
        if isinstance(value, str):
            yield parse_range(value)
        elif isinstance(value, dict) and ("start" in value or "end" in value):
            start = parse_range(value["start"])[0] if value.get("start") else MIN
            end = parse_range(value["end"])[1] if value.get("end") else MAX
            yield start, end
    except ValueError:
        return  # validated resources only carry valid dates; anything else is not indexable


def numbers_of(value: Any) -> Iterator[Decimal]:
    """A number, or the ``value`` of a Quantity / Money; an exact decimal from its text."""
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return
    text = getattr(value, "text", None) or (repr(value) if isinstance(value, float) else str(value))
    try:
        number = Decimal(text)
    except InvalidOperation:
        return
    if number.is_finite():
        yield number


def reference_target(ref: str, base: str | None = None) -> tuple[str, str] | None:
    """``Type/id`` (optionally absolute under our base, or version-specific) → (Type, id)."""
    if base and ref.startswith(base + "/"):
        ref = ref[len(base) + 1:]
    if "://" in ref or ref.startswith(("urn:", "#")) or "?" in ref:
        return None
    parts = ref.split("/")
    if len(parts) == 4 and parts[2] == "_history":
        parts = parts[:2]
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def param_values(resource: dict[str, Any], param: Any) -> Iterator[Any]:
    """The elements search parameter ``param`` indexes in ``resource``, path after path (an
    extension parameter's: the extensions' values)."""
    for path in param.paths:
        values = walk(resource, path)
        if param.extension:
            urls = (param.extension,) if isinstance(param.extension, str) else param.extension
            values = (next((v for k, v in ext.items() if k.startswith("value")), None)
                      for ext in values if isinstance(ext, dict) and ext.get("url") in urls)
        yield from values


def reference_of(value: Any, param: Any, base: str | None) -> tuple[str, str] | None:
    """The (type, id) a reference parameter's element points to, if it is one the parameter takes."""
    ref = value.get("reference") if isinstance(value, dict) else None
    target = reference_target(ref, base) if isinstance(ref, str) else None
    return target if target and (not param.targets or target[0] in param.targets) else None


def extract(resource: dict[str, Any], rtype: ResourceType, base: str | None = None,
            only: frozenset[str] | None = None) -> IndexValues:
    """The index rows of ``resource``; ``only``: of these parameters alone."""
    out = IndexValues()
    for param in rtype.params.values():
        if only is not None and param.name not in only:
            continue
        for value in param_values(resource, param):
            if param.type == "token" and param.canonical and isinstance(value, str):
                url, _, version = value.partition("|")
                out.tokens.append((param.name, None, _clip(url)))
                if version:
                    out.tokens.append((param.name, _clip(url), _clip(version)))
            elif param.type == "token":
                for system, code in tokens_of(value):
                    out.tokens.append((param.name, _clip(system), _clip(code)))
            elif param.type == "string":
                for s in strings_of(value):
                    out.strings.append((param.name, fold(s), s[:MAX_INDEX_LEN]))
            elif param.type == "date":
                for start, end in dates_of(value):
                    out.dates.append((param.name, start, end))
            elif param.type == "number":
                for number in numbers_of(value):
                    out.numbers.append((param.name, number_units(number)))
            elif param.type == "reference" and (target := reference_of(value, param, base)):
                out.references.append((param.name, target[0], target[1]))
    # Each value once: a value found twice (two paths, a repeated coding) is one index row; a
    # second row would only be written and matched again.
    for kind in ("tokens", "strings", "dates", "references", "numbers"):
        setattr(out, kind, list(dict.fromkeys(getattr(out, kind))))
    return out


_ROOTS: dict[int, tuple[ResourceType, dict[str, tuple[tuple[str, bool], ...]]]] = {}


def _roots(rtype: ResourceType) -> dict[str, tuple[tuple[str, bool], ...]]:
    """Each parameter's top-level elements: (name, a choice ``name[x]``) of its paths' first steps."""
    cached = _ROOTS.get(id(rtype))
    if cached is not None and cached[0] is rtype:
        return cached[1]
    firsts = {p.name: [_steps(path)[0] for path in p.paths] for p in rtype.params.values()}
    roots = {name: tuple(dict.fromkeys((prefix or step, prefix is not None) for step, prefix, _ in steps))
             for name, steps in firsts.items()}
    _ROOTS[id(rtype)] = (rtype, roots)
    return roots


def affected_params(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> frozenset[str]:
    """The parameters whose index rows may differ between two versions of a resource: those
    with a path under a top-level element that changed (every value is read from the root
    down). A claim's lifecycle step changes its extensions and meta, and the other rows of its
    twenty-odd stay as they are."""
    changed = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    out = set()
    for name, roots in _roots(rtype).items():
        for root, choice in roots:
            if any(_is_choice(k, root) for k in changed) if choice else root in changed:
                out.add(name)
                break
    return frozenset(out)


def _clip(text: str | None) -> str | None:
    return text[:MAX_INDEX_LEN] if text is not None else None
