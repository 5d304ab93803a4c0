"""A practice's payer rule packs in the store: what a client may write as a ``Library`` (the
store's guard for the type), the packs the claim workflow hands the mapping, and adding a rule
as a new version.

A rule pack is a Library (shape in ``fhir_mappings.tenant_rules`` and PROFILE.md, Tenant payer
rules): one series of versions per payer, each effective from its ``effectivePeriod.start``. A
Library that is not a usable pack (bad rule JSON, no payer, a payer the practice does not hold,
a version number the payer's series already has) is refused whole with a 422 naming the bad
element, so what is stored always scrubs. The tenant's active packs are read with one search per
transaction (``Unit.memo``, dropped when a Library is written in it): a batch of claim
generations reads them once, not once per claim.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from app.fhir.errors import FhirError, issue
from app.fhir.extract import reference_target
from app.fhir.queries import find_all, find_resources
from app.fhir.store import Reader, Unit, Version
from fhir_mappings import vocabulary
from fhir_mappings.resolve import day_of
from fhir_mappings.tenant_rules import (RulePack, decode_content, library_problems, payer_of, read_pack,
                                        rule_pack_library)

TYPE = "Library"
MEMO = ("rule-packs",)  # Unit.memo key of the tenant's active packs


def _refuse(problems: list[tuple[list[str], str]]) -> FhirError:
    return FhirError(422, "invariant", problems[0][1],
                     issues=[issue("invariant", text, expression=where) for where, text in problems])


def check(reader: Reader, library: dict[str, Any], *, rid: str | None) -> dict[str, Any]:
    """``library`` as it is stored (profile added), or a 422 FhirError saying what is wrong."""
    problems = library_problems(library)
    if problems:
        raise _refuse(problems)
    payer = payer_of(library) or ""
    target = reference_target(payer)
    server = _server(reader)
    found = server.current(*target) if target else None
    if found is None or found.deleted:
        raise _refuse([(["Library.useContext"], f"{payer} does not exist in this practice's data")])
    for other in find_resources(server, TYPE, [("payer", payer), ("version", str(library["version"]))]):
        if other["id"] != rid:
            raise _refuse([(["Library.version"], f"Library/{other['id']} is already version {library['version']} "
                            f"of the rules for {payer}; give the new one the next number")])
    profiles = (library.setdefault("meta", {})).setdefault("profile", [])
    if vocabulary.PAYER_RULE_PACK not in profiles:
        profiles.append(vocabulary.PAYER_RULE_PACK)
    return library


def _server(reader: Reader) -> Reader:
    """The tenant's data whatever the caller's token may see (existence and numbering checks)."""
    return Reader(reader.ts.store.for_tenant(reader.tenant_id), reader.conn)


def guard(unit: Unit, incoming: dict[str, Any] | None, current: Version | None) -> dict[str, Any] | None:
    """Refuse a Library that is not a usable payer rule pack (422, nothing stored)."""
    _forget(unit)
    if incoming is None:
        return None
    return check(unit, incoming, rid=incoming.get("id") or (current.id if current else None))


def packs(reader: Reader) -> tuple[RulePack, ...]:
    """The tenant's active rule packs, every payer and version (the mapping picks the one in force
    for each claim). Read once per transaction; a Library written in it makes the read stale."""
    memo: dict[Any, Any] = getattr(reader, "memo", {})
    if MEMO not in memo:
        memo[MEMO] = tuple(read_pack(lib) for lib in find_all(reader, TYPE, [("status", "active")])
                           if not library_problems(lib))
    return memo[MEMO]  # type: ignore[no-any-return]


def _forget(unit: Unit) -> None:
    """A Library is written in this transaction: the packs read before are stale. (Dropped by
    the writers themselves: on PostgreSQL an audited write is not listed in ``unit.written``.)"""
    unit.memo.pop(MEMO, None)


def add_rule(unit: Unit, payer: str, rule: dict[str, Any], start: date, *, title: str | None = None) -> Version:
    """Store the next version of ``payer``'s rule pack: the rules of the newest version with
    ``rule`` added (replacing a rule of the same id), effective from ``start`` — or from the
    newest active version's start when that is later, since the newest start wins and the
    older rules must not come back for the days after it."""
    series = find_resources(_server(unit), TYPE, [("payer", payer)])
    newest = max(series, key=lambda lib: int(lib.get("version") or 0), default=None)
    starts = [day_of((lib.get("effectivePeriod") or {}).get("start")) for lib in series if lib.get("status") == "active"]
    start = max([start, *[d for d in starts if d]])
    rules = [] if newest is None else [r for r in _rules_of(newest) if r.get("id") != rule["id"]]
    version = 1 if newest is None else int(newest.get("version") or 0) + 1
    library = rule_pack_library(payer, version, start, [*rules, rule],
                                title=title or (newest or {}).get("title"))
    _forget(unit)
    return unit.create(check(unit, library, rid=None)).version


def _rules_of(library: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        return list(decode_content(library).get("rules") or [])
    except (ValueError, AttributeError):
        return []
