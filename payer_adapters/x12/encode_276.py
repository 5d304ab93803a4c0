"""FHIR Claim (already submitted) → 276 claim status request 005010X212.

Loop tree written per claim (one transaction set each)::

    ST BHT*0010*13
    2000A HL*1**20*1   2100A NM1*PR                 information source: the payer (Claim.insurer, payer id)
    2000B HL*2*1*21*1  2100B NM1*41                 information receiver: the submitter (partner settings, ETIN)
    2000C HL*3*2*19*1  2100C NM1*1P                 service provider (Claim.provider, NPI)
    2000D HL*4*3*22*c  DMG  2100D NM1*IL            subscriber (member id from the Coverage)
      2200D TRN*1 REF*1K REF*EJ AMT*T3 DTP*472      the claim, when the patient is the subscriber
    2000E HL*5*4*23    DMG  2100E NM1*QC            the patient, when not the subscriber
      2200E TRN*1 REF*1K REF*EJ AMT*T3 DTP*472
    SE

TRN02 is the claim's patient control number (CLM01): stable for the claim, unique among ours, and
what the 277 echoes, so an answer finds its claim even without REF*EJ. ``REF*1K`` is the payer's
claim number when known: an identifier of the Claim in a payer-claim-number form (not merely "its
own"), else of a ClaimResponse or ExplanationOfBenefit in the input that answers the Claim (a
277CA or 835 decoded earlier). ``AMT*T3`` is ``Claim.total`` (else the sum of the lines);
``DTP*472`` the first to last line service date (else ``Claim.billablePeriod``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Mapping

import fhir_mappings.identifiers as ids
import fhir_mappings.vocabulary as vocabulary
import payer_adapters.x12.resources as R
from payer_adapters.x12.control import ControlNumbers
from payer_adapters.x12.encode_837p import TABLES, batch_trace, clean
from payer_adapters.x12.envelope import EnvelopeWriter
from payer_adapters.x12.errors import EncodeError
from payer_adapters.x12.partners import TradingPartner
from payer_adapters.x12.segments import SegmentWriter

VERSION = "005010X212"
#: Claim lifecycle codes of a claim not yet sent: nothing for a payer to report on.
NOT_SENT = frozenset({"draft", "clean", "queued"})
#: Claim.status values that are no claim at the payer.
NOT_A_CLAIM = frozenset({"draft", "entered-in-error"})


@dataclass
class _Inquiry:
    claim: R.Resource
    pcn: str
    payer: R.Resource
    payer_id: str
    provider: R.Resource
    npi: str
    patient: R.Resource
    subscriber: R.Resource
    dependent: bool
    member_id: str
    payer_claim_number: str | None
    billed: Decimal
    start: str
    end: str


def status_trace(claim: Mapping[str, Any]) -> str | None:
    """The 276 TRN02 of a Claim: its patient control number (the 277 echoes it)."""
    return ids.patient_control_number(claim)


def _answers(resource: Mapping[str, Any], claim: Mapping[str, Any], pcn: str) -> bool:
    ref = resource.get("request") or resource.get("claim") or {}
    if claim.get("id") and (ref.get("reference") or "").endswith(f"Claim/{claim['id']}"):
        return True
    ident = ref.get("identifier") or {}
    return ident.get("system") == vocabulary.PATIENT_CONTROL_NUMBER and ident.get("value") == pcn


def payer_claim_number(claim: Mapping[str, Any], idx: R.ResourceIndex, pcn: str) -> str | None:
    """REF*1K: the payer's claim number, when the input knows it (see the module docstring)."""
    hit = ids.resolve(ids.PAYER_CLAIM_NUMBER, claim)
    if hit is not None and not hit.form.own:
        return hit.value
    for rtype in ("ClaimResponse", "ExplanationOfBenefit"):
        for res in idx.of_type(rtype):
            if _answers(res, claim, pcn):
                found = ids.payer_claim_number(res)
                if found:
                    return found
    return None


def _service_dates(claim: Mapping[str, Any]) -> tuple[str, str]:
    dates: list[str] = []
    for item in claim.get("item") or []:
        period = item.get("servicedPeriod") or {}
        for value in (item.get("servicedDate"), period.get("start"), period.get("end")):
            if value:
                dates.append(R.d8(value))
    if not dates:
        period = claim.get("billablePeriod") or {}
        dates = [R.d8(v) for v in (period.get("start"), period.get("end")) if v]
    if not dates:
        raise EncodeError("Claim has no service date (item.servicedDate/servicedPeriod or billablePeriod)",
                          loop_id="2200D", segment_id="DTP", element_position=3)
    return min(dates), max(dates)


def _billed(claim: Mapping[str, Any]) -> Decimal:
    if (claim.get("total") or {}).get("value") is not None:
        return R.decimal(claim["total"]["value"])
    total = Decimal(0)
    for item in claim.get("item") or []:
        if item.get("net"):
            total += R.decimal(item["net"]["value"])
        elif item.get("unitPrice"):
            total += R.decimal(item["unitPrice"]["value"]) * R.decimal((item.get("quantity") or {}).get("value", 1))
    if not total:
        raise EncodeError("Claim has no total and no line charges", loop_id="2200D", segment_id="AMT",
                          element_position=2)
    return total


def _check_sent(claim: Mapping[str, Any]) -> None:
    lifecycle = R.extension(claim, vocabulary.CLAIM_LIFECYCLE)
    if claim.get("status") in NOT_A_CLAIM or lifecycle in NOT_SENT:
        raise EncodeError(f"Claim is {lifecycle or claim.get('status')}: only a submitted claim has a status "
                          "at the payer", loop_id="2200D", segment_id="TRN")


def _resolve(claim: R.Resource, idx: R.ResourceIndex) -> _Inquiry:
    _check_sent(claim)
    pcn = status_trace(claim)
    if not pcn or not ids.fits(ids.PATIENT_CONTROL_NUMBER, pcn):
        raise EncodeError("Claim needs a patient control number (1-20 X12 basic characters; accepted: "
                          f"{ids.accepted(ids.PATIENT_CONTROL_NUMBER)})", loop_id="2200D", segment_id="TRN",
                          element_position=2)
    payer = idx.get(claim.get("insurer"), what="Claim.insurer Organization")
    provider = idx.get(claim.get("provider"), what="Claim.provider Organization")
    patient = idx.get(claim.get("patient"), what="Claim.patient Patient")
    payer_id = ids.payer_id(payer, claim.get("insurer"))
    if not payer_id:
        raise EncodeError(f"payer has no payer id (accepted: {ids.accepted(ids.PAYER_ID)})", loop_id="2100A",
                          segment_id="NM1", element_position=9)
    npi = ids.npi(provider, claim.get("provider"))
    if not npi:
        raise EncodeError("service provider has no NPI", loop_id="2100C", segment_id="NM1", element_position=9)
    insurances = claim.get("insurance") or []
    insurance = next((i for i in insurances if i.get("focal")), insurances[0] if insurances else None)
    if insurance is None:
        raise EncodeError("Claim has no insurance", loop_id="2100D", segment_id="NM1")
    coverage = idx.get(insurance.get("coverage"), what="Claim.insurance.coverage Coverage")
    member_id = ids.member_id(coverage)
    if not member_id:
        raise EncodeError(f"Coverage has no member id (accepted: {ids.accepted(ids.MEMBER_ID)})", loop_id="2100D",
                          segment_id="NM1", element_position=9)
    relationship = R.code(coverage.get("relationship")) or "self"  # type: ignore[union-attr]
    holder = coverage.get("policyHolder") if relationship != "self" else None  # type: ignore[union-attr]
    employer = idx.get(holder, what="Coverage.policyHolder", required=False) if holder else None
    if employer is not None and employer.get("resourceType") != "Organization":
        employer = None
    subscriber = patient
    if relationship != "self":
        subscriber = employer or idx.get(coverage.get("subscriber"), what="Coverage.subscriber",  # type: ignore[union-attr]
                                         required=False)
        if subscriber is None:
            raise EncodeError("the patient is not the subscriber: Coverage.subscriber must be in the input",
                              loop_id="2100D", segment_id="NM1")
    start, end = _service_dates(claim)
    return _Inquiry(claim, pcn, payer, payer_id, provider, npi, patient, subscriber,  # type: ignore[arg-type]
                    subscriber is not patient, member_id, payer_claim_number(claim, idx, pcn), _billed(claim),
                    start, end)


def _name(w: SegmentWriter, entity: str, res: Mapping[str, Any], qualifier: str, ident: str, loop: str) -> None:
    if res.get("resourceType") == "Organization":
        name = clean(res.get("name"), 60)
        if not name:
            raise EncodeError("organization name is required", loop_id=loop, segment_id="NM1", element_position=3)
        w.seg("NM1", entity, "2", name, "", "", "", "", qualifier if ident else "", ident)
        return
    family, given, middle = R.human_name(res)
    if not clean(family):
        raise EncodeError("last name is required", loop_id=loop, segment_id="NM1", element_position=3)
    w.seg("NM1", entity, "1", clean(family, 60), clean(given, 35), clean(middle, 25), "", "",
          qualifier if ident else "", ident)


def _dmg(w: SegmentWriter, person: Mapping[str, Any], loop: str, *, required: bool) -> None:
    if person.get("resourceType") == "Organization":
        return
    if not person.get("birthDate"):
        if required:
            raise EncodeError("the patient's birth date is required", loop_id=loop, segment_id="DMG",
                              element_position=2)
        return
    # The 276 guide allows only F and M in DMG03 (situational): any other gender leaves it out.
    gender = TABLES["gender"].get(person.get("gender", "unknown"), "")
    w.seg("DMG", "D8", R.d8(person["birthDate"]), gender if gender in ("F", "M") else "")


def _claim_loop(w: SegmentWriter, q: _Inquiry) -> None:
    w.seg("TRN", "1", q.pcn)
    if q.payer_claim_number and ids.fits(ids.PAYER_CLAIM_NUMBER, q.payer_claim_number):
        w.seg("REF", "1K", q.payer_claim_number)
    w.seg("REF", "EJ", q.pcn)
    w.seg("AMT", "T3", R.fmt_amount(q.billed))
    if q.start == q.end:
        w.seg("DTP", "472", "D8", q.start)
    else:
        w.seg("DTP", "472", "RD8", f"{q.start}-{q.end}")


def _write(w: SegmentWriter, q: _Inquiry, partner: TradingPartner, bht03: str, date: str, time: str) -> None:
    w.seg("BHT", "0010", "13", bht03, date, time)
    w.seg("HL", 1, "", "20", "1")
    w.seg("NM1", "PR", "2", clean(q.payer.get("name"), 60) or clean(q.payer_id), "", "", "", "", "PI",
          clean(q.payer_id, 80))
    w.seg("HL", 2, 1, "21", "1")
    w.seg("NM1", "41", "2", clean(partner.submitter_name or partner.sender_id, 60), "", "", "", "", "46",
          clean(partner.sender_id, 80))
    w.seg("HL", 3, 2, "19", "1")
    _name(w, "1P", q.provider, "XX", q.npi, "2100C")
    w.seg("HL", 4, 3, "22", "1" if q.dependent else "0")
    _dmg(w, q.subscriber, "2000D", required=not q.dependent)
    _name(w, "IL", q.subscriber, "MI", clean(q.member_id, 80), "2100D")
    if q.dependent:
        w.seg("HL", 5, 4, "23")
        _dmg(w, q.patient, "2000E", required=True)
        _name(w, "QC", q.patient, "", "", "2100E")
    _claim_loop(w, q)


def encode_276(claims: R.Input, partner: TradingPartner, control_numbers: ControlNumbers, *,
               now: datetime | None = None) -> bytes:
    """Encode a status request for every Claim in ``claims`` (Bundle or resource list): one
    interchange, one GS (HR), one transaction set per claim. Raises :class:`EncodeError` naming the
    claim, loop and segment when a claim cannot be asked about."""
    idx = R.ResourceIndex.from_input(claims)
    found = idx.of_type("Claim")
    if not found:
        raise EncodeError("input holds no Claim")
    inquiries = []
    for claim in found:
        try:
            inquiries.append(_resolve(claim, idx))
        except EncodeError as err:
            err.message = f"claim {claim.get('id', '?')}: {err.message}"
            raise
    now = now or datetime.now(timezone.utc)
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M")
    env = EnvelopeWriter(partner, control_numbers.next(partner.name, "ISA"),
                         control_numbers.next(partner.name, "GS"), "HR", VERSION, date, time,
                         newline=partner.newline_after_segment)
    for q in inquiries:
        st = control_numbers.next(partner.name, "ST")
        w = env.begin_set("276", st)
        _write(w, q, partner, batch_trace(env.isa_control, st), date, time)
        env.end_set(w)
    return env.text().encode("utf-8")
