"""FHIR Claims → 837P 005010X222A1.

Loop tree written per transaction set (one set per billing provider + payer)::

    ST BHT
    1000A NM1*41 PER*IC                      submitter (partner settings)
    1000B NM1*40                             receiver (partner settings)
    2000A HL*n**20*1 PRV*BI                  billing provider (Claim.provider → Organization)
      2010AA NM1*85 N3 N4 REF*EI
      2010AB NM1*87 N3 N4                    pay-to, when the organisation's postal address is a PO box
      2000B HL*n*p*22*c SBR                  one per claim (Claim.insurance focal → Coverage)
        2010BA NM1*IL N3 N4 DMG              subscriber (Coverage.subscriber or the patient)
        2010BB NM1*PR                        payer (Claim.insurer → Organization)
        2000C HL*n*p*23*0 PAT                patient, when not the subscriber (always for workers' comp)
          2010CA NM1*QC N3 N4 DMG REF*Y4
        2300 CLM DTP*431/454/304/439 PWK REF*G1 REF*F8 HI
          2310A NM1*DN                       referring / certifying physician
          2310B NM1*82 PRV*PE                rendering provider
          2320 SBR CAS AMT*D AMT*EAF OI      one per prior payer (secondary/tertiary claims: cob.py)
            2330A NM1*IL N3 N4               other subscriber
            2330B NM1*PR DTP*573 REF*F8      other payer (DTP*573 here only without line data)
          2400 LX SV1 DTP*472 REF*6R         one per Claim.item
            2420A NM1*82 PRV*PE              line rendering provider, when not the claim's
            2430 SVD CAS DTP*573             per prior payer: its line adjudication
    SE

Where each element comes from is tabled in ``payer_adapters/x12/README.md``.
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

import fhir_mappings.identifiers as ids
import fhir_mappings.vocabulary as vocabulary
import payer_adapters.x12.resources as R
from payer_adapters.x12.cob import PriorAdjustment, PriorPayer, prior_payers
from payer_adapters.x12.control import BatchNumbers, ControlNumbers
from payer_adapters.x12.envelope import EnvelopeWriter
from payer_adapters.x12.errors import EncodeError
from payer_adapters.x12.partners import TradingPartner
from payer_adapters.x12.segments import SegmentWriter

VERSION = "005010X222A1"
TABLES: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "encode_837p.json").read_text())

SOPT = "https://nahdo.org/sopt"

_UNSAFE = re.compile(r"[^A-Za-z0-9 !&'()+,\-./;?=@#%$\"]")


def clean(value: Any, limit: int | None = None) -> str:
    """Text safe for any element: ASCII uppercase, accents folded, no separators or control characters."""
    text = unicodedata.normalize("NFKD", str(value or "")).encode("ascii", "ignore").decode()
    text = _UNSAFE.sub(" ", text).upper()
    text = " ".join(text.split())
    return text[:limit] if limit else text


@dataclass
class _Ctx:
    """Everything one claim needs, resolved from the bundle."""

    claim: R.Resource
    patient: R.Resource
    billing: R.Resource
    payer: R.Resource
    coverage: R.Resource
    insurance: Mapping[str, Any]
    pcn: str
    billing_npi: str
    payer_id: str


def _resolve(claim: R.Resource, idx: R.ResourceIndex) -> _Ctx:
    pcn = ids.patient_control_number(claim)
    if not pcn:
        raise EncodeError("Claim has no patient control number identifier (accepted: "
                          f"{ids.accepted(ids.PATIENT_CONTROL_NUMBER)})", segment_id="CLM",
                          element_position=1, loop_id="2300")
    if not ids.fits(ids.PATIENT_CONTROL_NUMBER, pcn):
        raise EncodeError("patient control number must be 1-20 X12 basic characters", segment_id="CLM",
                          element_position=1, loop_id="2300")
    billing = idx.get(claim.get("provider"), what="Claim.provider Organization")
    payer = idx.get(claim.get("insurer"), what="Claim.insurer Organization")
    patient = idx.get(claim.get("patient"), what="Claim.patient Patient")
    insurances = claim.get("insurance") or []
    insurance = next((i for i in insurances if i.get("focal")), insurances[0] if insurances else None)
    if insurance is None:
        raise EncodeError("Claim has no insurance", loop_id="2000B", segment_id="SBR")
    coverage = idx.get(insurance.get("coverage"), what="Claim.insurance.coverage Coverage")
    npi = ids.npi(billing, claim.get("provider"))
    if not npi:
        raise EncodeError("billing provider has no NPI", loop_id="2010AA", segment_id="NM1",
                          element_position=9)
    payer_id = ids.payer_id(payer, claim.get("insurer"))
    if not payer_id:
        raise EncodeError(f"payer Organization has no payer id identifier (accepted: {ids.accepted(ids.PAYER_ID)})",
                          loop_id="2010BB", segment_id="NM1", element_position=9)
    return _Ctx(claim, patient, billing, payer, coverage, insurance, pcn, npi, payer_id)  # type: ignore[arg-type]


def _msp_type(coverage: Mapping[str, Any], filing: str, sequence: str) -> str:
    """2000B SBR05: required when Medicare is billed after another payer (the Coverage's MSP type
    extension), never for a primary payer."""
    if sequence == "1" or filing not in TABLES["medicare_filing_indicators"]:
        return ""
    code = R.extension(coverage, vocabulary.MSP_TYPE)
    if not code:
        raise EncodeError(f"Medicare is billed as payer {sequence} but Coverage/{coverage.get('id')} has no "
                          f"Medicare Secondary Payer type (extension {vocabulary.MSP_TYPE})",
                          loop_id="2000B", segment_id="SBR", element_position=5)
    return str(code)


def _filing_indicator(ctx: _Ctx) -> str:
    return _coverage_filing_indicator(ctx.coverage, ctx.claim)


def _coverage_filing_indicator(coverage: Mapping[str, Any], claim: Mapping[str, Any]) -> str:
    cov_type = coverage.get("type")
    explicit = R.code(cov_type, vocabulary.X12_CLAIM_FILING_INDICATOR)
    if explicit:
        return explicit
    sopt = R.code(cov_type, SOPT)
    if sopt and sopt in TABLES["claim_filing_indicator"]["sopt"]:
        return TABLES["claim_filing_indicator"]["sopt"][sopt]
    accident = claim.get("accident") or {}
    if R.code(accident.get("type")) == "WPA":
        return "WC"
    return "CI"


def _address(w: SegmentWriter, address: Mapping[str, Any] | None, loop: str, *, required: bool) -> None:
    if not address:
        if required:
            raise EncodeError("address is required", loop_id=loop, segment_id="N3")
        return
    lines = [clean(x, 55) for x in address.get("line") or [] if x]
    if not lines or not address.get("city") or not address.get("state") or not address.get("postalCode"):
        raise EncodeError("address needs a line, city, state and postal code", loop_id=loop, segment_id="N4")
    w.seg("N3", *lines[:2])
    w.seg("N4", clean(address["city"], 30), clean(address["state"], 2),
          re.sub(r"\D", "", address["postalCode"])[:9])


def _dmg(w: SegmentWriter, person: Mapping[str, Any], loop: str, *, required: bool) -> None:
    birth = person.get("birthDate")
    if not birth:
        if required:
            raise EncodeError("birth date is required", loop_id=loop, segment_id="DMG", element_position=2)
        return
    w.seg("DMG", "D8", R.d8(birth), TABLES["gender"].get(person.get("gender", "unknown"), "U"))


def _person_nm1(w: SegmentWriter, entity: str, res: Mapping[str, Any], qualifier: str | None,
                ident: str | None, loop: str) -> None:
    if res.get("resourceType") == "Organization":
        name = clean(res.get("name"), 60)
        if not name:
            raise EncodeError("organization name is required", loop_id=loop, segment_id="NM1",
                              element_position=3)
        w.seg("NM1", entity, "2", name, "", "", "", "", qualifier if ident else "", ident or "")
        return
    family, given, middle = R.human_name(res)
    if not clean(family):
        raise EncodeError("last name is required", loop_id=loop, segment_id="NM1", element_position=3)
    w.seg("NM1", entity, "1", clean(family, 60), clean(given, 35), clean(middle, 25), "", "",
          qualifier if ident else "", ident or "")


def _employer(cov: Mapping[str, Any], idx: R.ResourceIndex) -> R.Resource | None:
    """The employer of a workers' comp Coverage: ``policyHolder`` when it is an Organization
    (R4: the party who owns the policy; it must then be in the input), else an Organization put
    in ``subscriber`` (accepted for inputs written before policyHolder was read)."""
    holder = cov.get("policyHolder") or {}
    found = idx.get(holder, what="Coverage.policyHolder", required="reference" in holder)
    if found is None or found.get("resourceType") != "Organization":
        found = idx.get(cov.get("subscriber"), what="Coverage.subscriber", required=False)
    return found if found is not None and found.get("resourceType") == "Organization" else None


def _wc_claim_number(claim: Mapping[str, Any], insurance: Mapping[str, Any], cov: Mapping[str, Any]) -> str | None:
    """REF*Y4: the mapper's supportingInfo (employmentimpacted), else the identifier on
    ``Claim.insurance`` or the Coverage (PROFILE.md, Identifiers)."""
    found = next((s.get("valueString") for s in _supporting(claim, "employmentimpacted") if s.get("valueString")), None)
    return found or ids.pc_claim_number(insurance, cov)


def _pos_of(item: Mapping[str, Any]) -> str | None:
    return R.code(item.get("locationCodeableConcept"))


def _claim_pos(claim: Mapping[str, Any], idx: R.ResourceIndex) -> str:
    for item in claim.get("item") or []:
        pos = _pos_of(item)
        if pos:
            return pos
    facility = idx.get(claim.get("facility"), what="facility", required=False)
    if facility:
        for t in facility.get("type") or []:
            c = R.code(t)
            if c and c.isdigit() and len(c) == 2:
                return c
    raise EncodeError("no place of service on the claim or its lines", loop_id="2300", segment_id="CLM",
                      element_position=5, component_position=1)


def _frequency(claim: Mapping[str, Any]) -> tuple[str, str | None]:
    """(CLM05-3, REF*F8 value)."""
    return claim_frequency(claim)


def claim_frequency(claim: Mapping[str, Any]) -> tuple[str, str | None]:
    """(claim frequency code, the payer's number of the claim it replaces or voids): ``8`` for a
    void (extension ``…/claim-frequency`` = 8, or a cancelled Claim), ``7`` for a replacement
    (``related`` relationship ``prior``), else ``1``. Every wire form (837P CLM05-3 + REF*F8, the
    JSON APIs' claimFrequencyCode) reads it here."""
    prior = None
    for rel in claim.get("related") or []:
        if R.has_code(rel.get("relationship"), "prior"):
            prior = ids.payer_claim_number(rel.get("reference"))
            break
    void = any(isinstance(e, Mapping) and e.get("url") == vocabulary.CLAIM_FREQUENCY
               and e.get("valueCode") == TABLES["frequency"]["void"] for e in claim.get("extension") or [])
    if void or claim.get("status") == "cancelled":
        freq = TABLES["frequency"]["void"]
    elif prior is not None or any(R.has_code(r.get("relationship"), "prior") for r in claim.get("related") or []):
        freq = TABLES["frequency"]["replacement"]
    else:
        return TABLES["frequency"]["original"], None
    if not prior:
        raise EncodeError("replacement or void needs the payer claim control number "
                          "(Claim.related.reference)", loop_id="2300", segment_id="REF")
    return freq, clean(prior, 50)


def _supporting(claim: Mapping[str, Any], category: str) -> list[Mapping[str, Any]]:
    return [s for s in claim.get("supportingInfo") or [] if category in R.codes(s.get("category"))]


def _care_team(claim: Mapping[str, Any], idx: R.ResourceIndex, role: str,
               sequences: set[int] | None = None) -> tuple[R.Resource, Mapping] | None:
    """The careTeam member with ``role`` (among ``sequences`` when given) and its practitioner."""
    for member in claim.get("careTeam") or []:
        if role in R.codes(member.get("role")) and (sequences is None or member.get("sequence") in sequences):
            prov = idx.get(member.get("provider"), what=f"careTeam {role} provider", required=False)
            if prov is not None and prov.get("resourceType") == "PractitionerRole":
                prov = idx.get(prov.get("practitioner"), what="PractitionerRole.practitioner")
            if prov is not None:
                return prov, member
    return None


def _line_member(claim: Mapping[str, Any], item: Mapping[str, Any], idx: R.ResourceIndex,
                 role: str) -> tuple[R.Resource, Mapping] | None:
    """The careTeam member with ``role`` among the line's ``careTeamSequence``."""
    return _care_team(claim, idx, role, set(item.get("careTeamSequence") or []))


def _rendering(w: SegmentWriter, prov: R.Resource, member: Mapping[str, Any], skip_npi: str, loop: str) -> str:
    """NM1*82 + PRV*PE for 2310B or 2420A unless the NPI is ``skip_npi``; returns the NPI."""
    npi = ids.npi(prov, member.get("provider"))
    if not npi:
        raise EncodeError("rendering provider has no NPI", loop_id=loop, segment_id="NM1", element_position=9)
    if npi != skip_npi:
        _person_nm1(w, "82", prov, "XX", npi, loop)
        taxonomy = R.code(member.get("qualification"), R.NUCC) or R.code(member.get("qualification"))
        if taxonomy:
            w.seg("PRV", "PE", "PXC", clean(taxonomy, 50))
    return npi


def _referring(claim: Mapping[str, Any], idx: R.ResourceIndex) -> R.Resource | None:
    found = _care_team(claim, idx, "referring")
    if found:
        return found[0]
    referral = idx.get(claim.get("referral"), what="referral", required=False)
    if referral:
        req = idx.get(referral.get("requester"), what="ServiceRequest.requester", required=False)
        if req is not None and req.get("resourceType") == "PractitionerRole":
            req = idx.get(req.get("practitioner"), what="PractitionerRole.practitioner", required=False)
        if req is not None and req.get("resourceType") == "Practitioner":
            return req
    return None


def _diagnoses(claim: Mapping[str, Any]) -> tuple[list[str], dict[int, int]]:
    """HI codes in sequence order and FHIR sequence → HI position (1-based pointer)."""
    dx = sorted(claim.get("diagnosis") or [], key=lambda d: d.get("sequence", 0))
    if not dx:
        raise EncodeError("claim has no diagnosis", loop_id="2300", segment_id="HI")
    if len(dx) > 12:
        raise EncodeError("837P carries at most 12 diagnoses", loop_id="2300", segment_id="HI")
    out: list[str] = []
    pointer: dict[int, int] = {}
    for d in dx:
        c = R.code(d.get("diagnosisCodeableConcept"), R.ICD10CM) or R.code(d.get("diagnosisCodeableConcept"))
        if not c:
            raise EncodeError("diagnosis without an ICD-10-CM code", loop_id="2300", segment_id="HI")
        out.append(clean(c).replace(".", "").replace(" ", ""))
        pointer[d.get("sequence", len(out))] = len(out)
    return out, pointer


def _line_charge(item: Mapping[str, Any]) -> Decimal:
    if item.get("net"):
        return R.decimal(item["net"]["value"])
    if item.get("unitPrice"):
        return R.decimal(item["unitPrice"]["value"]) * R.decimal((item.get("quantity") or {}).get("value", 1))
    raise EncodeError("line has no charge (net or unitPrice)", loop_id="2400", segment_id="SV1",
                      element_position=2)


def _write_claim(w: SegmentWriter, ctx: _Ctx, idx: R.ResourceIndex, hl: list[int], parent: int) -> None:
    claim, cov, patient = ctx.claim, ctx.coverage, ctx.patient
    filing = _filing_indicator(ctx)
    workers_comp = filing == "WC"
    relationship = R.code(cov.get("relationship")) or "self"
    employer = _employer(cov, idx) if workers_comp else None
    subscriber = employer or idx.get(cov.get("subscriber"), what="Coverage.subscriber", required=False) or patient
    patient_is_subscriber = relationship == "self" and not workers_comp
    wc_number = _wc_claim_number(claim, ctx.insurance, cov) if workers_comp else None
    # The Coverage's member id; a workers' comp Coverage without one: the WC claim number.
    member_id = ids.member_id(cov) or wc_number
    if not member_id:
        raise EncodeError("Coverage has no subscriber/member id (accepted: "
                          f"{ids.accepted(ids.MEMBER_ID)})", loop_id="2010BA", segment_id="NM1",
                          element_position=9)
    sequence = str(ctx.insurance.get("sequence", 1))
    group = next((c.get("value") for c in cov.get("class") or [] if R.has_code(c.get("type"), "group")), "")

    # 2000B subscriber
    hl[0] += 1
    sub_hl = hl[0]
    w.seg("HL", sub_hl, parent, "22", "1" if not patient_is_subscriber else "0")
    w.seg("SBR", TABLES["payer_sequence"].get(sequence, "P"), "18" if patient_is_subscriber else "",
          clean(group, 50), "", _msp_type(cov, filing, sequence), "", "", "", filing)
    # 2010BA
    _person_nm1(w, "IL", subscriber, "MI", clean(member_id, 80), "2010BA")
    if subscriber.get("resourceType") != "Organization":
        _address(w, (subscriber.get("address") or [None])[0], "2010BA", required=patient_is_subscriber)
        _dmg(w, subscriber, "2010BA", required=patient_is_subscriber)
    # 2010BB
    w.seg("NM1", "PR", "2", clean(ctx.payer.get("name"), 60), "", "", "", "", "PI", clean(ctx.payer_id, 80))

    if not patient_is_subscriber:
        hl[0] += 1
        w.seg("HL", hl[0], sub_hl, "23", "0")
        rel = "20" if workers_comp else TABLES["individual_relationship"].get(relationship, "G8")
        w.seg("PAT", rel)
        family, given, middle = R.human_name(patient)
        if not clean(family):
            raise EncodeError("patient last name is required", loop_id="2010CA", segment_id="NM1",
                              element_position=3)
        w.seg("NM1", "QC", "1", clean(family, 60), clean(given, 35), clean(middle, 25))
        _address(w, (patient.get("address") or [None])[0], "2010CA", required=True)
        _dmg(w, patient, "2010CA", required=True)
        if workers_comp and wc_number:
            w.seg("REF", "Y4", clean(wc_number, 50))

    # 2300 claim
    items = claim.get("item") or []
    if not items:
        raise EncodeError("claim has no lines", loop_id="2400", segment_id="LX")
    if len(items) > 50:
        raise EncodeError("837P carries at most 50 lines per claim", loop_id="2400", segment_id="LX")
    charges = [_line_charge(i) for i in items]
    total = sum(charges, Decimal(0))
    cents = Decimal("0.01")
    if claim.get("total") and R.decimal(claim["total"]["value"]).quantize(cents) != total.quantize(cents):
        raise EncodeError("Claim.total differs from the sum of line charges", loop_id="2300",
                          segment_id="CLM", element_position=2)
    pos = _claim_pos(claim, idx)
    freq, f8 = _frequency(claim)
    accident = claim.get("accident") or {}
    cause = TABLES["accident_cause"].get(R.code(accident.get("type")) or "", "")
    if workers_comp and not cause:
        cause = "EM"
    clm11: Any = ""
    if cause:
        state = clean(((accident.get("locationAddress") or {}).get("state")) or "", 2)
        clm11 = (cause, "", "", state if cause == "AA" else "")
        if cause == "AA" and not state:
            raise EncodeError("auto accident needs the state", loop_id="2300", segment_id="CLM",
                              element_position=11, component_position=4)
    w.seg("CLM", ctx.pcn, R.fmt_amount(total), "", "", (pos, "B", freq), "Y", "A", "Y", "Y", "", clm11)
    dates: dict[str, str] = {}
    for s in claim.get("supportingInfo") or []:
        for c in R.codes(s.get("category")):
            q = TABLES["claim_dates"].get(c)
            if q and (s.get("timingDate") or s.get("valueString")):
                dates[q] = R.d8(s.get("timingDate") or s.get("valueString"))
    if accident.get("date"):
        dates["439"] = R.d8(accident["date"])
    elif cause:
        raise EncodeError("accident-related claim needs Claim.accident.date", loop_id="2300",
                          segment_id="DTP", element_position=3)
    for q in ("431", "454", "304", "439"):
        if q in dates:
            w.seg("DTP", q, "D8", dates[q])
    for s in _supporting(claim, "attachment"):
        report = R.code(s.get("code"), vocabulary.X12_ATTACHMENT_REPORT_TYPE) or "OZ"
        if s.get("valueString"):
            w.seg("PWK", clean(report, 2), "EL", "", "", "AC", clean(s["valueString"], 80))
    auth = next((a for i in claim.get("insurance") or [] for a in i.get("preAuthRef") or []), None)
    if auth:
        w.seg("REF", "G1", clean(auth, 50))
    if f8:
        w.seg("REF", "F8", f8)
    dx, pointers = _diagnoses(claim)
    w.seg("HI", *[(("ABK" if i == 0 else "ABF"), c) for i, c in enumerate(dx)])

    # 2310A referring / certifying physician
    referring = _referring(claim, idx)
    if referring is not None:
        npi = ids.npi(referring)
        _person_nm1(w, "DN", referring, "XX", npi, "2310A")
    # 2310B rendering
    rendering = _care_team(claim, idx, "primary")
    claim_rendering_npi = ctx.billing_npi
    if rendering is not None:
        claim_rendering_npi = _rendering(w, *rendering, ctx.billing_npi, "2310B")

    # 2320/2330A/2330B: the payers before this one (a secondary or tertiary claim)
    priors = prior_payers(claim, idx)
    for prior in priors:
        _check_balance(prior, items, charges, total)
        _write_other_payer(w, prior, claim, patient, idx)

    # 2400 lines
    for n, (item, charge) in enumerate(zip(items, charges), start=1):
        coding = R.code(item.get("productOrService"), R.CPT) or R.code(item.get("productOrService"), R.HCPCS) \
            or R.code(item.get("productOrService"))
        if not coding:
            raise EncodeError(f"line {n} has no procedure code", loop_id="2400", segment_id="SV1",
                              element_position=1, component_position=2)
        mods = [clean(m, 2) for m in (R.code(m) for m in item.get("modifier") or []) if m]
        if len(mods) > 4:
            raise EncodeError(f"line {n} has more than 4 modifiers", loop_id="2400", segment_id="SV1",
                              element_position=1, component_position=7)
        units = (item.get("quantity") or {}).get("value", 1)
        line_pos = _pos_of(item)
        ptrs = [pointers[s] for s in item.get("diagnosisSequence") or [] if s in pointers][:4] or [1]
        w.seg("LX", n)
        w.seg("SV1", ("HC", clean(coding, 48), *mods), R.fmt_amount(charge), "UN", R.fmt_quantity(units),
              line_pos if line_pos and line_pos != pos else "", "", tuple(ptrs))
        served = item.get("servicedDate") or (item.get("servicedPeriod") or {}).get("start")
        if not served:
            raise EncodeError(f"line {n} has no service date", loop_id="2400", segment_id="DTP",
                              element_position=3)
        w.seg("DTP", "472", "D8", R.d8(served))
        control = R.extension(item, vocabulary.LINE_CONTROL_NUMBER)
        if control:
            w.seg("REF", "6R", clean(control, 50))
        # 2420A: a line rendered by someone other than the claim-level rendering provider
        line_rendering = _line_member(claim, item, idx, "primary")
        if line_rendering is not None and ids.npi(line_rendering[0], line_rendering[1].get("provider")) \
                != claim_rendering_npi:
            _rendering(w, *line_rendering, claim_rendering_npi, "2420A")
        # 2430: each prior payer's adjudication of this line
        for prior in priors:
            adjudicated = prior.lines.get(int(item.get("sequence", n)))
            if adjudicated is None:
                continue
            w.seg("SVD", clean(prior.payer_id, 80), R.fmt_amount(adjudicated.paid), ("HC", clean(coding, 48), *mods),
                  "", R.fmt_quantity(units))
            _cas(w, adjudicated.adjustments)
            w.seg("DTP", "573", "D8", R.d8(prior.date))


def _cas(w: SegmentWriter, adjustments: list[PriorAdjustment]) -> None:
    """CAS segments: one per group code (in the order first met), up to six reasons each."""
    groups: "OrderedDict[str, list[PriorAdjustment]]" = OrderedDict()
    for a in adjustments:
        groups.setdefault(a.group, []).append(a)
    for group, found in groups.items():
        for start in range(0, len(found), 6):
            elems: list[Any] = []
            for a in found[start:start + 6]:
                elems += [clean(a.reason, 5), R.fmt_amount(a.amount),
                          R.fmt_quantity(a.quantity) if a.quantity is not None else ""]
            while elems and elems[-1] == "":
                elems.pop()
            w.seg("CAS", group, *elems)


def _check_balance(prior: PriorPayer, items: list[Mapping[str, Any]], charges: list[Decimal], total: Decimal) -> None:
    """The TR3 COB balancing (per prior payer): CLM02 = AMT*D + claim CAS + line CAS, and per
    line SV102 = SVD02 + line CAS. A prior adjudication that does not balance against this claim
    (other lines, other charges) cannot be sent: the payer would reject the claim."""
    line_cas = Decimal(0)
    for n, (item, charge) in enumerate(zip(items, charges), start=1):
        found = prior.lines.get(int(item.get("sequence", n)))
        if found is None:
            continue
        adj = sum((a.amount for a in found.adjustments), Decimal(0))
        line_cas += adj
        if found.paid + adj != charge:
            raise EncodeError(f"line {n}: prior payer {prior.sequence} paid {found.paid} + adjustments {adj} "
                              f"!= line charge {charge}", loop_id="2430", segment_id="SVD", element_position=2)
    claim_cas = sum((a.amount for a in prior.adjustments), Decimal(0))
    if prior.paid + claim_cas + line_cas != total:
        raise EncodeError(f"prior payer {prior.sequence}: paid {prior.paid} + adjustments {claim_cas + line_cas} "
                          f"!= claim charge {total}", loop_id="2320", segment_id="AMT", element_position=2)


def _write_other_payer(w: SegmentWriter, prior: PriorPayer, claim: Mapping[str, Any], patient: R.Resource,
                       idx: R.ResourceIndex) -> None:
    """Loop 2320 (the prior payer's order, the subscriber's relationship, group, filing
    indicator, claim-level CAS, AMT*D paid, AMT*EAF remaining patient liability, OI) with 2330A
    (the other subscriber) and 2330B (the other payer, its claim control number as REF*F8)."""
    cov = prior.coverage
    relationship = R.code(cov.get("relationship")) or "self"
    group = next((c.get("value") for c in cov.get("class") or [] if R.has_code(c.get("type"), "group")), "")
    w.seg("SBR", TABLES["payer_sequence"].get(str(prior.sequence), "P"),
          TABLES["individual_relationship"].get(relationship, "G8"), clean(group, 50), "", "", "", "", "",
          _coverage_filing_indicator(cov, claim))
    _cas(w, prior.adjustments)
    w.seg("AMT", "D", R.fmt_amount(prior.paid))
    w.seg("AMT", "EAF", R.fmt_amount(prior.patient_liability))
    w.seg("OI", "", "", "Y", "", "", "Y")
    subscriber = idx.get(cov.get("subscriber"), what="Coverage.subscriber", required=False)
    if subscriber is None or subscriber.get("resourceType") not in ("Patient", "RelatedPerson"):
        subscriber = patient
    member_id = ids.member_id(cov)
    if not member_id:
        raise EncodeError(f"prior payer's Coverage (insurance sequence {prior.sequence}) has no member id",
                          loop_id="2330A", segment_id="NM1", element_position=9)
    _person_nm1(w, "IL", subscriber, "MI", clean(member_id, 80), "2330A")
    address = (subscriber.get("address") or [None])[0]
    if address and (address.get("line") and address.get("city") and address.get("state") and address.get("postalCode")):
        _address(w, address, "2330A", required=False)
    w.seg("NM1", "PR", "2", clean(prior.payer_name, 60), "", "", "", "", "PI", clean(prior.payer_id, 80))
    if not prior.lines:
        if not prior.date:
            raise EncodeError("prior payer's adjudication has no date", loop_id="2330B", segment_id="DTP")
        w.seg("DTP", "573", "D8", R.d8(prior.date))
    if prior.claim_number:
        w.seg("REF", "F8", clean(prior.claim_number, 50))


def batch_trace(isa_control: int | str, st_control: int | str) -> str:
    """BHT03 of a transaction set we send: ISA13 and ST02. A 277CA names the set it acknowledges
    by this value (2200B TRN02), which is how its batch-level statuses find our claims."""
    return f"{int(isa_control):09d}{int(st_control):04d}"[-30:]


@dataclass(frozen=True)
class Encoded837P:
    """An 837P interchange and the control numbers written into it."""

    data: bytes
    numbers: BatchNumbers


def encode_837p(claims: R.Input, partner: TradingPartner, control_numbers: ControlNumbers, *,
                now: datetime | None = None) -> bytes:
    """The file :func:`encode_837p_batch` writes."""
    return encode_837p_batch(claims, partner, control_numbers, now=now).data


def encode_837p_batch(claims: R.Input, partner: TradingPartner, control_numbers: ControlNumbers, *,
                      now: datetime | None = None) -> Encoded837P:
    """Encode every Claim in ``claims`` (a Bundle or a list of resources with what they reference)
    into one interchange: one GS (HC), one transaction set per billing provider NPI + payer id;
    with the control numbers written (for the submission's receipt).

    Raises :class:`EncodeError` naming the loop/segment when the input cannot be encoded.
    """
    idx = R.ResourceIndex.from_input(claims)
    found = idx.of_type("Claim")
    if not found:
        raise EncodeError("input holds no Claim")
    groups: "OrderedDict[tuple[str, str], list[_Ctx]]" = OrderedDict()
    for claim in found:
        try:
            ctx = _resolve(claim, idx)
        except EncodeError as err:
            err.message = f"claim {claim.get('id', '?')}: {err.message}"
            raise
        groups.setdefault((ctx.billing_npi, ctx.payer_id), []).append(ctx)

    now = now or datetime.now(timezone.utc)
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M")
    env = EnvelopeWriter(partner, control_numbers.next(partner.name, "ISA"),
                         control_numbers.next(partner.name, "GS"), "HC", VERSION, date, time,
                         newline=partner.newline_after_segment)
    sets: list[tuple[str, tuple[str, ...]]] = []
    for ctxs in groups.values():
        st = control_numbers.next(partner.name, "ST")
        w = env.begin_set("837", st)
        sets.append((w.control, tuple(ctx.pcn for ctx in ctxs)))
        w.seg("BHT", "0019", "00", batch_trace(env.isa_control, st), date, time, "CH")
        w.seg("NM1", "41", "2", clean(partner.submitter_name or partner.sender_id, 60), "", "", "", "",
              "46", clean(partner.sender_id, 80))
        w.seg("PER", "IC", clean(partner.submitter_contact_name, 60), "TE", re.sub(r"\D", "", partner.submitter_phone))
        w.seg("NM1", "40", "2", clean(partner.receiver_name or partner.receiver_id, 60), "", "", "", "",
              "46", clean(partner.receiver_id, 80))
        billing = ctxs[0].billing
        hl = [1]
        w.seg("HL", 1, "", "20", "1")
        taxonomy = next((c for t in billing.get("type") or [] for c in R.codes(t, R.NUCC)), None)
        if taxonomy:
            w.seg("PRV", "BI", "PXC", clean(taxonomy, 50))
        w.seg("NM1", "85", "2", clean(billing.get("name"), 60), "", "", "", "", "XX", ctxs[0].billing_npi)
        addresses = billing.get("address") or []
        street = next((a for a in addresses if not R.is_po_box(a) and a.get("type") != "postal"), None) \
            or next((a for a in addresses if not R.is_po_box(a)), None)
        if street is None:
            raise EncodeError("billing provider needs a street address (not a PO box)", loop_id="2010AA",
                              segment_id="N3")
        _address(w, street, "2010AA", required=True)
        tin = ids.tin(billing)
        if not tin:
            raise EncodeError("billing provider has no TIN", loop_id="2010AA", segment_id="REF")
        w.seg("REF", "EI", re.sub(r"\D", "", tin))
        pay_to = next((a for a in addresses if R.is_po_box(a)), None)
        if pay_to is not None:
            w.seg("NM1", "87", "2")
            _address(w, pay_to, "2010AB", required=True)
        for ctx in ctxs:
            try:
                _write_claim(w, ctx, idx, hl, 1)
            except EncodeError as err:
                err.message = f"claim {ctx.claim.get('id', '?')}: {err.message}"
                raise
        env.end_set(w)
    return Encoded837P(env.text().encode("utf-8"), BatchNumbers(env.interchange_control, env.group_control, tuple(sets)))
