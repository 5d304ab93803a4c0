"""Denial classification: which category a payer's adjustment or rejection belongs to, what the
biller does next, by when, and how urgently — all read from ``data/denial_categories.json``.

Pure functions over X12 codes (group codes, CARCs, RARCs, STC status codes) so the same rules
serve the 835, the 277CA and a payer API's answer; the app decides which claims they touch.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Iterable

from payer_adapters.x12.codes import describe, table


@dataclass(frozen=True, slots=True)
class Classification:
    """The category of one adjustment, the next action for it, and whether it is a denial at all
    (contractual adjustments and expected patient responsibility are not)."""

    category: str
    action: str
    denial: bool


def _rules() -> dict[str, Any]:
    return table("denial_categories")


def _payer(payer_id: str | None) -> dict[str, Any]:
    payers = _rules().get("payers") or {}
    found = payers.get(payer_id or "") if payer_id and not payer_id.startswith("_") else None
    return found if isinstance(found, dict) else {}


def category_info(category: str) -> dict[str, Any]:
    """``display``, default ``action``, ``denial`` and ``owner`` of a category id."""
    categories = _rules()["categories"]
    return categories.get(category) or categories["unknown"]


def classify(group: str, carc: str, remarks: Iterable[str] = (), payer_id: str | None = None) -> Classification:
    """Classify one CAS adjustment (``group`` CO/PR/OA/PI/CR, ``carc``) with the claim's or line's
    RARCs. Lookup: the payer's ``<group>-<carc>`` and ``<carc>``, then ours ``<group>-<carc>``, the
    group's default (PR: the payer made the patient liable), ``<carc>``, else ``unknown``."""
    rules, payer = _rules(), _payer(payer_id)
    key, mine = f"{group}-{carc}", payer.get("carc") or {}
    by_group = (rules.get("group_defaults") or {}).get(group)
    entry = (mine.get(key) or mine.get(carc) or rules["carc"].get(key)
             or ({"category": by_group} if by_group else None) or rules["carc"].get(carc)
             or {"category": "unknown"})
    info = category_info(entry["category"])
    action = entry.get("action") or info["action"]
    for remark in remarks:
        override = (payer.get("rarc") or {}).get(remark) or rules["rarc"].get(remark)
        if not override:
            continue
        action = override.get("action") or (override.get("instead_of") or {}).get(action, action)
    category = entry["category"] if entry["category"] in rules["categories"] else "unknown"
    return Classification(category, action, bool(info["denial"]))


def rejection_category(status_codes: Iterable[str]) -> str:
    """The category of a rejection before adjudication, from its STC status codes (STC01-2)."""
    stc = _rules()["stc"]
    return next((stc["status"][c] for c in status_codes if c in stc["status"]), stc["default"])


def _limit(kind: str, filing_indicator: str | None, payer_id: str | None) -> dict[str, Any]:
    rules = _rules()["deadlines"][kind]
    return (rules["by_payer"].get(payer_id or "") or rules["by_filing_indicator"].get(filing_indicator or "")
            or rules["default"])


def appeal_deadline(remittance_date: date, filing_indicator: str | None, payer_id: str | None) -> tuple[date, str]:
    """The last day to dispute an adjudicated denial and the appeal level it is for."""
    limit = _limit("appeal", filing_indicator, payer_id)
    return remittance_date + timedelta(days=int(limit["days"])), str(limit.get("level") or "appeal")


def filing_deadline(first_service: date, filing_indicator: str | None, payer_id: str | None) -> date:
    """The timely-filing limit a rejected claim must still meet (a rejection does not stop the clock)."""
    return first_service + timedelta(days=int(_limit("timely_filing", filing_indicator, payer_id)["days"]))


def priority(amount: Decimal, days_left: int) -> str:
    """``routine`` / ``urgent`` / ``asap`` by the first matching rule of the data file."""
    rules = _rules()["priority"]
    for rule in rules["rules"]:
        if "days_left_at_most" in rule and days_left <= int(rule["days_left_at_most"]):
            return str(rule["priority"])
        if "amount_at_least" in rule and amount >= Decimal(rule["amount_at_least"]):
            return str(rule["priority"])
    return str(rules["default"])


def action_text(action: str) -> str:
    return str(_rules()["actions"].get(action, action))


def carc_text(carc: str) -> str | None:
    return describe("carc", carc)


def rarc_text(rarc: str) -> str | None:
    return describe("rarc", rarc)
