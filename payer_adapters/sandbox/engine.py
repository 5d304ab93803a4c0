"""Adjudication by rules from ``data/sandbox.json``: front-end edits (277CA), then the 835.

Deterministic: the answer depends on the claim, the data file, ``received`` (a date passed in,
never the wall clock) and the ledger of what this sandbox adjudicated before (deductible met,
visits used, KX year-to-date, duplicates). Same sequence of inputs, same answers.

Before any of that, ``syntax_edits`` (the 999): an element value the data file lists for a
segment rejects the whole transaction set with IK3/IK4 at that element — a deterministic way to
get a 999 rejection from a well-formed file.

Order of the checks (first match wins per claim, then per line):

A replacement (CLM05-3 7) or void (8) must name, in REF*F8, a claim this sandbox adjudicated
and that still stands (not replaced or voided since); otherwise the front end rejects it
(``unknown-original-claim``). The 835 then reverses the original (CLP02 22) and, for a
replacement, pays the new claim under a new payer claim number.

claim: inactive coverage (CO-27) → timely filing (CO-29) → authorization required and no
REF*G1 / preAuthRef (CO-197);
line:  duplicate pcn+date+code (CO-18) → not medically necessary (CO-50 + RARC) → discipline
modifier inconsistent with an evaluation code (CO-4) → visit limit reached (CO-119) → Medicare
KX threshold crossed without KX (CO-119) → paid: CO-45 (charge − allowed), PR-1 deductible,
PR-3 copay (once per claim), PR-2 coinsurance.

A secondary or tertiary claim (837P SBR01 S/T with 2430 lines; FHIR insurance with
claimResponses; CHC ``otherSubscriberInformation``) is paid against the prior payers: per line
the patient's share the last of them left, up to this payer's allowed amount less what they paid,
less the member's coinsurance on it (OA-23 for the rest of the charge, PR-2 for what is still
the patient's). A primary claim of a
member with ``crossover`` in the data file is answered as forwarded (CLP02 19, NM1*TT, MA18).
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from fhir_mappings.identifiers import npi_is_valid
from payer_adapters.sandbox.config import SandboxConfig
from payer_adapters.sandbox.model import Claim, Line
from payer_adapters.x12.errors import DataElementError, X12Error
from payer_adapters.x12.segments import iter_segments

C2 = Decimal("0.01")


def money(x: Decimal | float | int) -> Decimal:
    return Decimal(str(x)).quantize(C2, rounding=ROUND_HALF_UP)


@dataclass
class Edit:
    """One front-end rejection (277CA STC): claim level or for one line."""

    id: str
    category: str
    status: str
    entity: str
    text: str
    line: Line | None = None


@dataclass
class LineResult:
    line: Line
    allowed: Decimal | None
    paid: Decimal
    adjustments: list[tuple[str, str, Decimal]]  # (group, CARC, amount)
    remarks: list[str] = field(default_factory=list)


@dataclass
class ClaimResult:
    """A claim the payer adjudicated (the 835 CLP) or rejected up front (``edits``)."""

    claim: Claim
    icn: str
    edits: list[Edit] = field(default_factory=list)
    lines: list[LineResult] = field(default_factory=list)
    crossover: tuple[str, str] | None = None  # (name, payer id) the claim was forwarded to
    #: The earlier adjudication a replacement (7) or void (8) takes back: the 835 reverses it
    #: (CLP02 22, every amount negated) before the replacement's own payment.
    reversal: "ClaimResult | None" = None

    @property
    def void(self) -> bool:
        return self.claim.frequency == "8"

    @property
    def rejected(self) -> bool:
        return bool(self.edits)

    @property
    def paid(self) -> Decimal:
        return sum((r.paid for r in self.lines), Decimal(0))

    @property
    def patient_responsibility(self) -> Decimal:
        return sum((a for r in self.lines for g, _, a in r.adjustments if g == "PR"), Decimal(0))

    @property
    def status(self) -> str:
        """CLP02: 1/2/3 processed as primary/secondary/tertiary (19 primary and forwarded to the
        crossover payer), 4 denied."""
        if not any(r.allowed is not None for r in self.lines):
            return "4"
        if self.crossover is not None:
            return "19"
        return {"S": "2", "T": "3"}.get(self.claim.payer_sequence, "1")


@dataclass
class Benefits:
    """What a 271 / CHC eligibility / CoverageEligibilityResponse says about one member."""

    member_id: str
    found: bool
    member: dict[str, Any] = field(default_factory=dict)
    payer: dict[str, Any] = field(default_factory=dict)
    service_types: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return bool(self.member.get("active"))

    def deductible_remaining(self, ledger: "Ledger") -> Decimal:
        d = self.member.get("deductible") or {}
        return max(money(d.get("total", 0)) - money(d.get("met", 0)) - ledger.deductible_used.get(self.member_id, Decimal(0)),
                   Decimal(0))

    def visits(self, st: str, ledger: "Ledger") -> tuple[int | None, int]:
        b = (self.member.get("benefits") or {}).get(st) or {}
        used = int(b.get("visits_used", 0)) + ledger.visits_used.get((self.member_id, st), 0)
        return b.get("visits_total"), used

    def auth_required(self, st: str) -> bool:
        b = (self.member.get("benefits") or {}).get(st) or {}
        return bool(b.get("auth_required", self.payer.get("requires_auth", False)))


class Ledger:
    """What the sandbox has seen and decided (thread-safe; lives as long as the app)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.adjudicated: set[tuple[str, str, str]] = set()  # (pcn, date, code)
        self.deductible_used: dict[str, Decimal] = {}
        self.visits_used: dict[tuple[str, str], int] = {}
        self.kx_ytd: dict[tuple[str, str], Decimal] = {}
        self.claims_received: list[dict[str, Any]] = []  # one per claim the payer received
        #: Claims adjudicated and still standing, by payer claim number: what a replacement or a
        #: void may name (and takes out of here).
        self.standing: dict[str, "ClaimResult"] = {}
        #: Appeals decided, by the appeal's identity (``appeals.py``): a resend is not decided twice.
        self.appeals: dict[str, Any] = {}

    def record(self, surface: str, claim: Claim, outcome: str, key: str | None = None) -> None:
        self.claims_received.append({"surface": surface, "patient_control_number": claim.pcn,
                                     "member_id": claim.member_id, "payer_id": claim.payer_id,
                                     "outcome": outcome, "idempotency_key": key})

    def summary(self) -> dict[str, Any]:
        by_pcn: dict[str, int] = {}
        by_member: dict[str, int] = {}
        for c in self.claims_received:
            by_pcn[c["patient_control_number"]] = by_pcn.get(c["patient_control_number"], 0) + 1
            by_member[c["member_id"]] = by_member.get(c["member_id"], 0) + 1
        return {"claim_count": len(self.claims_received), "by_patient_control_number": by_pcn,
                "by_member": by_member, "claims": list(self.claims_received),
                "appeals": [{"key": a.key, "decision": a.decision, "patient_control_number": a.result.claim.pcn,
                             "enclosures": a.enclosures} for a in self.appeals.values()]}


class Engine:
    """Front-end edits, adjudication and benefits over one config and one ledger."""

    def __init__(self, config: SandboxConfig, ledger: Ledger | None = None) -> None:
        self.config = config
        self.data = config.data
        self.ledger = ledger or Ledger()
        self._edits = {e["id"]: e for e in self.data["front_end_edits"]}

    # -- lookups ----------------------------------------------------------------------------
    def member(self, member_id: str) -> dict[str, Any] | None:
        return self.data["members"].get(member_id)

    def payer(self, payer_id: str) -> dict[str, Any] | None:
        return self.data["payers"].get(payer_id)

    def benefits(self, member_id: str, service_types: list[str] | None = None) -> Benefits:
        m = self.member(member_id)
        if m is None:
            return Benefits(member_id, False, service_types=service_types or ["30"])
        sts = [s for s in service_types or [] if s != "30"] or sorted((m.get("benefits") or {}).keys())
        return Benefits(member_id, True, m, self.payer(m["payer"]) or {}, sts)

    def _edit(self, rule: str, line: Line | None = None) -> Edit:
        e = self._edits[rule]
        return Edit(rule, e["category"], e["status"], e["entity"], e["text"], line)

    def discipline(self, line: Line) -> tuple[list[str], str | None]:
        mods = [m for m in line.modifiers if m in self.data["discipline_modifiers"]]
        return mods, self.data["discipline_modifiers"].get(mods[0]) if len(mods) == 1 else None

    # -- 999 --------------------------------------------------------------------------------
    def syntax_edits(self, data: bytes | str) -> list[X12Error]:
        """Implementation-level edits of ``syntax_edits`` in the data file, for the 999: each hit is
        an element error located as a 999 reports it (ST02, position in the set, loop, element,
        IK403 code), so the set is rejected (IK5*R) and no 277CA or 835 follows. Values that
        trigger a rule are listed in the data, so no other claim is affected."""
        rules = self.data.get("syntax_edits") or []
        errors: list[X12Error] = []
        if not rules:
            return errors
        transaction = control = ""
        position = 0
        for seg in iter_segments(data):
            tag = seg[0]
            if tag == "ST":
                transaction, control, position = (seg[1] if len(seg) > 1 else ""), (seg[2] if len(seg) > 2 else ""), 1
                continue
            if not transaction:
                continue
            position += 1
            if tag == "SE":
                transaction = ""
                continue
            for rule in rules:
                n = int(rule["element"])
                if (rule["transaction"] == transaction and rule["segment"] == tag
                        and (not rule.get("qualifier") or (len(seg) > 1 and seg[1] == rule["qualifier"]))
                        and len(seg) > n and seg[n] in rule["values"]):
                    errors.append(DataElementError(rule["text"], segment_id=tag, loop_id=rule["loop"],
                                                   element_position=n, code=rule["ik403"], set_position=position,
                                                   control_number=control))
        return errors

    # -- 277CA ------------------------------------------------------------------------------
    def front_end_edits(self, claim: Claim) -> list[Edit]:
        """The clearinghouse/payer front end: unknown payer or member, NPI check digits,
        discipline modifiers. Any edit rejects the whole claim (277CA status category A6/A7)."""
        edits: list[Edit] = []
        if self.payer(claim.payer_id) is None:
            edits.append(self._edit("unknown-payer"))
        m = self.member(claim.member_id)
        if m is None or (self.payer(claim.payer_id) is not None and m["payer"] != claim.payer_id):
            edits.append(self._edit("unknown-member"))
        if not npi_is_valid(claim.billing_npi):
            edits.append(self._edit("bad-npi"))
        if claim.rendering_npi and not npi_is_valid(claim.rendering_npi):
            edits.append(self._edit("bad-rendering-npi"))
        for line in claim.lines:
            if line.code not in self.data["always_therapy_codes"]:
                continue
            mods, _ = self.discipline(line)
            if not mods:
                edits.append(self._edit("discipline-modifier-missing", line))
            elif len(mods) > 1:
                edits.append(self._edit("discipline-modifier-conflict", line))
        return edits

    # -- 835 --------------------------------------------------------------------------------
    def icn(self, claim: Claim, salt: str) -> str:
        """A payer claim control number derived from the claim and the submission (CLP07)."""
        h = hashlib.sha256(f"{salt}|{claim.pcn}|{claim.member_id}".encode()).hexdigest()
        return "SBX" + str(int(h[:12], 16)).zfill(15)[:12]

    def process(self, claim: Claim, *, received: date, salt: str) -> ClaimResult:
        """Edits, and when none fire, adjudication (which updates the ledger)."""
        with self.ledger.lock:
            result = ClaimResult(claim, self.icn(claim, salt), edits=self.front_end_edits(claim))
            if claim.frequency in ("7", "8") and not result.rejected:
                result.reversal = self.ledger.standing.get(claim.original_icn)
                if result.reversal is None:
                    result.edits.append(self._edit("unknown-original-claim"))
            if result.rejected:
                return result
            if result.reversal is not None:
                del self.ledger.standing[claim.original_icn]
            if not result.void:
                result.lines = self._adjudicate(claim, received)
                self.ledger.standing[result.icn] = result
                crossover = (self.member(claim.member_id) or {}).get("crossover")
                if crossover and claim.payer_sequence == "P" and result.patient_responsibility > 0:
                    result.crossover = (crossover["name"], crossover["payer_id"])
            return result

    def _deny(self, line: Line, rule: str) -> LineResult:
        d = self.data["denials"][rule]
        return LineResult(line, None, Decimal(0), [(d["group"], d["carc"], money(line.charge))],
                          [d["rarc"]] if d.get("rarc") else [])

    def _service_type(self, line: Line) -> str:
        _, disc = self.discipline(line)
        return {"OT": "AD", "PT": "PT", "SLP": "AF"}.get(disc or "", "PT")

    def _adjudicate(self, claim: Claim, received: date) -> list[LineResult]:
        payer = self.payer(claim.payer_id) or {}
        member = self.member(claim.member_id) or {}
        ben = self.benefits(claim.member_id)
        claim_rule = None
        if not member.get("active"):
            claim_rule = "inactive"
        elif claim.first_date and (received - _d8(claim.first_date)).days > int(payer.get("timely_filing_days", 365)):
            claim_rule = "timely-filing"
        elif not claim.prior_auth and any(ben.auth_required(self._service_type(ln)) for ln in claim.lines):
            claim_rule = "no-auth"
        if claim_rule:
            return [self._deny(ln, claim_rule) for ln in claim.lines]

        if claim.payer_sequence != "P" and any(ln.prior_liability is not None for ln in claim.lines):
            return [self._after_prior_payers(claim, line, payer, member) for line in claim.lines]
        results: list[LineResult] = []
        copay_left = money(member.get("copay", 0))
        coins = Decimal(str(member.get("coinsurance", 0)))
        visit_counted: set[str] = set()
        for line in claim.lines:
            key = (claim.pcn, line.service_date, line.code)
            if key in self.ledger.adjudicated and claim.frequency == "1":
                results.append(self._deny(line, "duplicate"))
                continue
            self.ledger.adjudicated.add(key)
            if line.code in payer.get("not_medically_necessary", []):
                r = self._deny(line, "not-necessary")
                if payer.get("not_necessary_remark"):
                    r.remarks = [payer["not_necessary_remark"]]
                results.append(r)
                continue
            mods, disc = self.discipline(line)
            expected = self.data["discipline_codes"].get(line.code)
            if expected and disc and expected != disc:
                results.append(self._deny(line, "modifier-mismatch"))
                continue
            st = self._service_type(line)
            total, used = ben.visits(st, self.ledger)
            if total is not None and used >= total:
                results.append(self._deny(line, "visit-limit"))
                continue
            allowed = self._allowed(line, payer)
            threshold = (payer.get("kx_threshold") or {}).get(self.data["kx_group"].get(disc or "", ""), None)
            if threshold is not None and "KX" not in line.modifiers:
                group = self.data["kx_group"][disc]  # type: ignore[index]
                ytd = money((member.get("therapy_ytd_allowed") or {}).get(group, 0)) + \
                    self.ledger.kx_ytd.get((claim.member_id, group), Decimal(0))
                if ytd + allowed > money(threshold):
                    results.append(self._deny(line, "kx-threshold"))
                    continue
            if threshold is not None:
                g = self.data["kx_group"][disc]  # type: ignore[index]
                self.ledger.kx_ytd[(claim.member_id, g)] = self.ledger.kx_ytd.get((claim.member_id, g), Decimal(0)) + allowed
            if st not in visit_counted:
                visit_counted.add(st)
                self.ledger.visits_used[(claim.member_id, st)] = self.ledger.visits_used.get((claim.member_id, st), 0) + 1
            paid, copay_left = self.pay_line(claim, line, allowed, ben, coins, copay_left)
            results.append(paid)
        return results

    def pay_line(self, claim: Claim, line: Line, allowed: Decimal, ben: Benefits, coins: Decimal,
             copay_left: Decimal) -> tuple[LineResult, Decimal]:
        """A line paid on ``allowed``: CO-45 for the rest of the charge, then the member's
        deductible (PR-1), copay (PR-3, ``copay_left`` of it) and coinsurance (PR-2)."""
        adjustments: list[tuple[str, str, Decimal]] = []
        if line.charge > allowed:
            adjustments.append(("CO", "45", money(line.charge - allowed)))
        rest = allowed
        ded = min(ben.deductible_remaining(self.ledger), rest)
        if ded > 0:
            adjustments.append(("PR", "1", ded))
            self.ledger.deductible_used[claim.member_id] = self.ledger.deductible_used.get(claim.member_id, Decimal(0)) + ded
            rest -= ded
        cop = min(copay_left, rest)
        if cop > 0:
            adjustments.append(("PR", "3", cop))
            copay_left -= cop
            rest -= cop
        co = money(rest * coins)
        if co > 0:
            adjustments.append(("PR", "2", co))
            rest -= co
        return LineResult(line, allowed, rest, adjustments), copay_left

    def _after_prior_payers(self, claim: Claim, line: Line, payer: dict[str, Any], member: dict[str, Any]) -> LineResult:
        """A line of a secondary/tertiary claim: the patient's share the prior payer left, up to
        this payer's allowed amount less what the prior payers paid, less the member's own
        coinsurance on it."""
        key = (claim.pcn, line.service_date, line.code)
        if key in self.ledger.adjudicated and claim.frequency == "1":
            return self._deny(line, "duplicate")
        self.ledger.adjudicated.add(key)
        allowed = self._allowed(line, payer)
        remaining = money(line.prior_liability or 0)
        covered = max(min(remaining, allowed - line.prior_paid), Decimal(0))
        paid = money(covered * (1 - Decimal(str(member.get("coinsurance", 0)))))
        adjustments: list[tuple[str, str, Decimal]] = []
        if line.charge - remaining > 0:
            adjustments.append(("OA", "23", money(line.charge - remaining)))
        if remaining - paid > 0:
            adjustments.append(("PR", "2", money(remaining - paid)))
        return LineResult(line, allowed, money(paid), adjustments)

    def _allowed(self, line: Line, payer: dict[str, Any]) -> Decimal:
        fee = Decimal(str(self.data["base_fee_schedule"].get(line.code, 0))) * Decimal(str(payer.get("fee_multiplier", 1)))
        for mod, factor in (payer.get("assistant_modifiers") or {}).items():
            if mod in line.modifiers:
                fee *= Decimal(str(factor))
        return min(money(fee * line.units), money(line.charge))


def _d8(value: str) -> date:
    return datetime.strptime(value[:8], "%Y%m%d").date()
