"""FHIR CoverageEligibilityRequest → 270 005010X279A1.

Loop tree written per request (one transaction set each)::

    ST BHT*0022*13
    2000A HL*1**20*1   2100A NM1*PR                 information source (insurer → Organization)
    2000B HL*2*1*21*1  2100B NM1*1P                 information receiver (provider → Organization)
    2000C HL*3*2*22*c  TRN*1  2100C NM1*IL DMG DTP*291   subscriber
                         2110C EQ (service types repeated with the repetition separator)
    2000D HL*4*3*23*0  TRN*1  2100D NM1*03 DMG DTP*291   dependent, when Coverage.relationship ≠ self
                         2110D EQ
    SE

TRN02 is the request's trace number (identifier system ``vocabulary.ELIGIBILITY_TRACE``, else the
request's own identifier when it fits TRN02; fhir_mappings/PROFILE.md, Identifiers); the 271 echoes
it so the answer finds its request.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

import fhir_mappings.identifiers as ids
import payer_adapters.x12.resources as R
from payer_adapters.x12.codes import table
from payer_adapters.x12.control import ControlNumbers
from payer_adapters.x12.encode_837p import TABLES, clean
from payer_adapters.x12.envelope import EnvelopeWriter
from payer_adapters.x12.errors import EncodeError
from payer_adapters.x12.partners import TradingPartner
from payer_adapters.x12.segments import SegmentWriter

VERSION = "005010X279A1"
THERAPY_DEFAULT = ["30"]


def _service_types(req: Mapping[str, Any]) -> list[str]:
    known = table("service_types")
    found: list[str] = []
    for item in req.get("item") or []:
        for c in R.codes(item.get("category")):
            if c in known and c not in found:
                found.append(c)
    return found or THERAPY_DEFAULT


def _person(w: SegmentWriter, entity: str, person: Mapping[str, Any], member_id: str | None,
            service_date: str, loop: str) -> None:
    family, given, middle = R.human_name(person)
    if not clean(family):
        raise EncodeError("last name is required", loop_id=loop, segment_id="NM1", element_position=3)
    w.seg("NM1", entity, "1", clean(family, 60), clean(given, 35), clean(middle, 25), "", "",
          "MI" if member_id else "", clean(member_id, 80) if member_id else "")
    if person.get("birthDate"):
        w.seg("DMG", "D8", R.d8(person["birthDate"]), TABLES["gender"].get(person.get("gender", "unknown"), "U"))
    w.seg("DTP", "291", "D8", service_date)


def _write_request(w: SegmentWriter, req: Mapping[str, Any], idx: R.ResourceIndex, partner: TradingPartner,
                   date: str, time: str) -> None:
    trace = ids.trace_number(req)
    if not trace or not ids.fits(ids.TRACE_NUMBER, trace):
        raise EncodeError("CoverageEligibilityRequest needs a trace-number identifier (1-50 letters/digits; "
                          f"accepted: {ids.accepted(ids.TRACE_NUMBER)})",
                          loop_id="2000C", segment_id="TRN", element_position=2)
    payer = idx.get(req.get("insurer"), what="CoverageEligibilityRequest.insurer Organization")
    provider = idx.get(req.get("provider"), what="CoverageEligibilityRequest.provider Organization")
    patient = idx.get(req.get("patient"), what="CoverageEligibilityRequest.patient Patient")
    insurance = (req.get("insurance") or [{}])[0]
    coverage = idx.get(insurance.get("coverage"), what="Coverage", required=False) or {}
    payer_id = ids.payer_id(payer, req.get("insurer"))
    npi = ids.npi(provider, req.get("provider"))
    if not payer_id:
        raise EncodeError("payer has no payer id", loop_id="2100A", segment_id="NM1", element_position=9)
    if not npi:
        raise EncodeError("provider has no NPI", loop_id="2100B", segment_id="NM1", element_position=9)
    served = req.get("servicedDate") or (req.get("servicedPeriod") or {}).get("start") or req.get("created")
    service_date = R.d8(served)
    member_id = ids.member_id(coverage)
    relationship = R.code(coverage.get("relationship")) or "self"
    dependent = relationship != "self"
    subscriber = idx.get(coverage.get("subscriber"), what="Coverage.subscriber", required=False) if dependent else patient
    if dependent and (subscriber is None or subscriber.get("resourceType") == "Organization"):
        raise EncodeError("dependent inquiry needs the subscriber person", loop_id="2100C", segment_id="NM1")
    types = _service_types(req)
    originator = (partner.trace_originator or ("9" + partner.sender_id))[:10]

    w.seg("BHT", "0022", "13", clean(trace, 50), date, time)
    w.seg("HL", 1, "", "20", "1")
    w.seg("NM1", "PR", "2", clean(payer.get("name"), 60), "", "", "", "", "PI", clean(payer_id, 80))  # type: ignore[union-attr]
    w.seg("HL", 2, 1, "21", "1")
    w.seg("NM1", "1P", "2", clean(provider.get("name"), 60), "", "", "", "", "XX", npi)  # type: ignore[union-attr]
    w.seg("HL", 3, 2, "22", "1" if dependent else "0")
    if not dependent:
        w.seg("TRN", "1", trace, originator)
    _person(w, "IL", subscriber, member_id, service_date, "2100C")  # type: ignore[arg-type]
    if not dependent:
        w.seg("EQ", w.seps.repetition.join(types))
        return
    w.seg("HL", 4, 3, "23", "0")
    w.seg("TRN", "1", trace, originator)
    _person(w, "03", patient, None, service_date, "2100D")  # type: ignore[arg-type]
    w.seg("EQ", w.seps.repetition.join(types))


def encode_270(requests: R.Input, partner: TradingPartner, control_numbers: ControlNumbers, *,
               now: datetime | None = None) -> bytes:
    """Encode every CoverageEligibilityRequest in ``requests`` (Bundle or resource list) into one
    interchange with one GS (HS) and one transaction set per request."""
    idx = R.ResourceIndex.from_input(requests)
    found = idx.of_type("CoverageEligibilityRequest")
    if not found:
        raise EncodeError("input holds no CoverageEligibilityRequest")
    now = now or datetime.now(timezone.utc)
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M")
    env = EnvelopeWriter(partner, control_numbers.next(partner.name, "ISA"),
                         control_numbers.next(partner.name, "GS"), "HS", VERSION, date, time,
                         newline=partner.newline_after_segment)
    for req in found:
        w = env.begin_set("270", control_numbers.next(partner.name, "ST"))
        try:
            _write_request(w, req, idx, partner, date, time)
        except EncodeError as err:
            err.message = f"request {req.get('id', '?')}: {err.message}"
            raise
        env.end_set(w)
    return env.text().encode("utf-8")
