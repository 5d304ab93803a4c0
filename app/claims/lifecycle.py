"""The Claim lifecycle: a code on the Claim plus the instant each state was reached.

Codes and their order live in ``data/lifecycle.json``. Answers arrive in any order (a mailbox
lists files alphabetically, so an 835 can be read before its 999), so a state never moves a
claim back to a lower rank; the history still records when each answer came.

The lifecycle, its history, the submission key, the submission receipt, the payer's claim
number and the void marker are the server's facts about a claim (``SERVER_OWNED_*``): clients read them but never write them.
"""
from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from app.fhir.dates import instant
from app.fhir.store import Unit
from app.fhir.store.types import WriteResult
from fhir_mappings.vocabulary import (
    CLAIM_CROSSOVER, CLAIM_FREQUENCY, CLAIM_LIFECYCLE, CLAIM_LIFECYCLE_HISTORY, CLAIM_MANUAL_CHANGE, CLAIM_SUBMISSION,
    PAYER_CLAIM_NUMBER, SUBMISSION_KEY,
)

#: States in which nothing has left for the payer: the claim may be rebuilt in place.
UNSUBMITTED = frozenset({None, "draft", "clean"})
SERVER_OWNED_EXTENSIONS = frozenset({CLAIM_LIFECYCLE, CLAIM_LIFECYCLE_HISTORY, CLAIM_SUBMISSION, CLAIM_FREQUENCY,
                                     CLAIM_CROSSOVER, CLAIM_MANUAL_CHANGE})
#: The payer's claim number (835 CLP07, 277CA REF*1K) is recorded by posting its answers.
SERVER_OWNED_IDENTIFIERS = frozenset({SUBMISSION_KEY, PAYER_CLAIM_NUMBER})


@lru_cache(maxsize=1)
def codes() -> dict[str, dict[str, Any]]:
    return json.loads((Path(__file__).parent / "data" / "lifecycle.json").read_text())["codes"]


def lifecycle(claim: dict[str, Any]) -> str | None:
    for ext in claim.get("extension") or []:
        if ext.get("url") == CLAIM_LIFECYCLE:
            return ext.get("valueCode")
    return None


def rank(code: str | None) -> int:
    return codes()[code]["rank"] if code in codes() else -1


def lifecycle_rank_of(claim: dict[str, Any]) -> int:
    return rank(lifecycle(claim))


def set_lifecycle(claim: dict[str, Any], code: str) -> None:
    """Make ``code`` the claim's current state, whatever it was (the scrubber's verdict on a
    claim that has not left yet); answers from payers go through ``advance``."""
    claim["extension"] = [e for e in claim.get("extension") or [] if e.get("url") != CLAIM_LIFECYCLE] + [
        {"url": CLAIM_LIFECYCLE, "valueCode": code}]


def advance(claim: dict[str, Any], code: str, when: datetime, *, force: bool = False) -> bool:
    """Record ``code`` reached at ``when``; the current code changes only when it ranks higher
    (or ``force``). Returns whether the current code changed."""
    if code not in codes():
        raise ValueError(f"unknown lifecycle code {code!r}")
    exts = claim.setdefault("extension", [])
    history = next((e for e in exts if e.get("url") == CLAIM_LIFECYCLE_HISTORY), None)
    if history is None:
        history = {"url": CLAIM_LIFECYCLE_HISTORY, "extension": []}
        exts.append(history)
    if not any(e.get("url") == code for e in history["extension"]):
        history["extension"].append({"url": code, "valueInstant": instant(when)})
    if not force and rank(code) <= rank(lifecycle(claim)):
        return False
    set_lifecycle(claim, code)
    return True


#: States in which the payer has taken a void in: the claim it voids is then ``cancelled``.
VOID_TAKEN = frozenset({"accepted", "paid", "partially-paid", "denied"})


def move(unit: Unit, claim_id: str, *codes: str, also: Callable[[dict[str, Any]], object] | None = None) -> None:
    """Record states reached now on ``Claim/claim_id`` as it is stored (each only forward),
    never over a state another answer recorded meanwhile. A void the payer accepted cancels
    the claim it voids. ``also``: another change of the same answer (the payer's claim number)
    made in the same write."""
    voided: list[str] = []
    unit.modify("Claim", claim_id, _advancing(unit, codes, also, voided))
    for prior in voided:
        cancel(unit, prior)


#: claim id → (the states it reached, another change of the same write or None): ``move_many``
Moves = dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], object] | None]]


def move_many(unit: Unit, moves: Moves) -> dict[str, WriteResult | None]:
    """``move`` for every claim an answer names, written together (``Unit.modify_many``):
    ``moves`` maps a claim id to its states and its ``also``. A claim not stored is skipped;
    returns each claim's write (None: nothing written)."""
    voided: dict[str, list[str]] = {cid: [] for cid in moves}
    written = unit.modify_many("Claim", {cid: _advancing(unit, codes, also, voided[cid])
                                         for cid, (codes, also) in moves.items()})
    for prior in (v for found in voided.values() for v in found):
        cancel(unit, prior)
    return written


def _advancing(unit: Unit, codes: tuple[str, ...], also: Callable[[dict[str, Any]], object] | None,
               voided: list[str]) -> Callable[[dict[str, Any]], None]:
    """The change recording ``codes`` on a claim (``move``); ``voided`` receives the claim a
    void that reached a taken state voids (the change may run more than once: it is reset)."""
    def change(claim: dict[str, Any]) -> None:
        voided[:] = [v for v in [voided_by(claim)] if v and VOID_TAKEN & set(codes)]
        if also is not None:
            also(claim)
        for code in codes:
            advance(claim, code, unit.now)
    return change


def voided_by(claim: dict[str, Any]) -> str | None:
    """The id of the claim a void claim (extension ``…/claim-frequency`` = 8) voids, else None."""
    if not any(e.get("url") == CLAIM_FREQUENCY and e.get("valueCode") == "8" for e in claim.get("extension") or []):
        return None
    for rel in claim.get("related") or []:
        ref = ((rel.get("claim") or {}).get("reference")) or ""
        if ref.startswith("Claim/") and any(c.get("code") == "prior" for c in
                                            (rel.get("relationship") or {}).get("coding") or []):
            return ref.removeprefix("Claim/")
    return None


def cancel(unit: Unit, claim_id: str) -> None:
    """``Claim/claim_id`` is void at the payer: its status becomes ``cancelled`` (once)."""
    def change(claim: dict[str, Any]) -> bool:
        if claim.get("status") == "cancelled":
            return False
        claim["status"] = "cancelled"
        return True

    unit.modify("Claim", claim_id, change)


def paid_state(paid: Decimal, lines: list[tuple[Decimal, Decimal]]) -> str:
    """``denied`` when nothing was paid, ``partially-paid`` when a charged line got nothing."""
    if paid <= 0:
        return "denied"
    if any(charge > 0 and line_paid <= 0 for charge, line_paid in lines):
        return "partially-paid"
    return "paid"


def paid_state_of(response: dict[str, Any]) -> str:
    """``paid_state`` of a payer's adjudication as FHIR (a ClaimResponse, or an ExplanationOfBenefit,
    whose items and payment have the same shape)."""
    def benefit(adjudications: list[dict[str, Any]]) -> Decimal:
        return sum((Decimal(str((a.get("amount") or {}).get("value", 0))) for a in adjudications
                    if any(c.get("code") == "benefit" for c in (a.get("category") or {}).get("coding", []))),
                   Decimal(0))

    lines = [(Decimal(1), benefit(i.get("adjudication") or [])) for i in response.get("item") or []]
    total = Decimal(str(((response.get("payment") or {}).get("amount") or {}).get("value", 0)))
    return paid_state(total, lines)


def submission_key(claim: dict[str, Any]) -> str | None:
    return next((i.get("value") for i in claim.get("identifier") or [] if i.get("system") == SUBMISSION_KEY), None)


def server_owned(claim: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the claim's server-owned extensions, its server-owned identifiers)."""
    return ([e for e in claim.get("extension") or [] if e.get("url") in SERVER_OWNED_EXTENSIONS],
            [i for i in claim.get("identifier") or [] if i.get("system") in SERVER_OWNED_IDENTIFIERS])


def without_server_owned(claim: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``claim`` with no server-owned element (and no ``meta``: the store stamps it)."""
    out = {k: v for k, v in claim.items() if k != "meta"}
    exts = [e for e in claim.get("extension") or [] if e.get("url") not in SERVER_OWNED_EXTENSIONS]
    ids = [i for i in claim.get("identifier") or [] if i.get("system") not in SERVER_OWNED_IDENTIFIERS]
    for key, kept in (("extension", exts), ("identifier", ids)):
        if kept:
            out[key] = kept
        else:
            out.pop(key, None)
    return out


def with_server_owned(claim: dict[str, Any], source: dict[str, Any] | None) -> dict[str, Any]:
    """``claim`` carrying exactly the server-owned elements of ``source`` (none when None)."""
    out = without_server_owned(claim)
    if source is not None:
        exts, ids = server_owned(source)
        if exts:
            out["extension"] = [*(out.get("extension") or []), *exts]
        if ids:
            out["identifier"] = [*(out.get("identifier") or []), *ids]
    return out
