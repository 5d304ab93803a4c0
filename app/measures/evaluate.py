"""``$evaluate-measure``: a KPI over a period as a FHIR ``MeasureReport``.

``evaluate(reader, measure_id, start, end, report_type)`` is the one entry point (the route,
stored weekly reports and other callers use it). The numbers come from ``queries`` (aggregate
SQL over the claim facts), so the same period over the same stored facts gives the same report.
"""
from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from app.fhir.errors import FhirError
from app.fhir.store import Reader
from app.measures import definitions, queries
from app.measures.definitions import GROUP_SYSTEM, POPULATION_AMOUNT, POPULATION_SYSTEM, STRATIFIER_SYSTEM

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: KPIs whose score is a ratio of amounts (their populations carry the amounts too).
_AMOUNT_MEASURES = frozenset({"days-in-ar", "aged-ar-over-90", "net-collection-rate"})
REPORT_TYPES = {"population": "summary", "summary": "summary", "subject-list": "subject-list"}
UCUM = "http://unitsofmeasure.org"


def _date(params: dict[str, str], name: str) -> date:
    raw = params.get(name)
    if raw is None or raw == "":
        raise FhirError(400, "required", f"{name} is required (a date, YYYY-MM-DD)", expression=[name])
    try:
        if not ISO_DATE.fullmatch(raw[:10]) or (len(raw) > 10 and raw[10] != "T"):
            raise ValueError(raw)
        return date.fromisoformat(raw[:10])
    except ValueError:
        raise FhirError(400, "invalid", f"{name} must be a date (YYYY-MM-DD), not {raw!r}", expression=[name]) from None


def parse_request(params: dict[str, str]) -> tuple[date, date, str]:
    """(periodStart, periodEnd, reportType) of a request, or 400 naming the parameter."""
    start, end = _date(params, "periodStart"), _date(params, "periodEnd")
    if end < start:
        raise FhirError(400, "invalid", f"periodEnd ({end}) is before periodStart ({start})", expression=["periodEnd"])
    report_type = params.get("reportType") or "population"
    if report_type not in REPORT_TYPES:
        raise FhirError(400, "not-supported", "reportType must be population (summary) or subject-list, not "
                        f"{report_type!r}", expression=["reportType"])
    for name in ("subject", "practitioner"):
        if params.get(name):
            raise FhirError(400, "not-supported", f"{name} is not supported: the KPIs are over every claim of the "
                            "practice (see the stratifiers)", expression=[name])
    return start, end, report_type


def _ratio(num: int, den: int, places: str) -> Decimal | None:
    if den == 0:
        return None
    return (Decimal(num) / Decimal(den)).quantize(Decimal(places), ROUND_HALF_EVEN)


def _money(c: int) -> dict[str, Any]:
    return {"value": float(Decimal(c) / 100), "currency": "USD"}


def score(spec: dict[str, Any], group: str, t: queries.Tally, days: int) -> dict[str, Any] | None:
    """The measureScore of one tally in the Measure's unit (None when its denominator is empty):
    proportions as fractions, days-in-ar and days-to-payment in days."""
    mid = spec["id"]
    if mid == "days-to-payment":
        value = None if t.median is None else Decimal(str(t.median)).quantize(Decimal("0.1"))
    elif mid == "days-in-ar":
        value = None if t.den_amt <= 0 else (Decimal(t.num_amt) * days / Decimal(t.den_amt)).quantize(Decimal("0.1"))
    elif mid in _AMOUNT_MEASURES or group == "dollars":
        value = _ratio(t.num_amt, t.den_amt, "0.0001")
    else:
        value = _ratio(t.num, t.den, "0.0001")
    if value is None:
        return None
    return {"value": float(value), "unit": spec["unit"], "system": UCUM, "code": spec["unit"]}




def _populations(spec: dict[str, Any], group: str, t: queries.Tally,
                 lists: dict[str, str] | None) -> list[dict[str, Any]]:
    counts = {"initial-population": t.ip, "denominator": t.den, "numerator": t.num,
              "measure-population": t.den, "measure-observation": len(t.obs) if t.obs else t.num}
    amounts = {"denominator": t.den_amt, "numerator": t.num_amt}
    out = []
    for code, _ in spec["populations"]:
        pop: dict[str, Any] = {"code": {"coding": [{"system": POPULATION_SYSTEM, "code": code}]},
                               "count": counts[code]}
        if code in amounts and (spec["id"] in _AMOUNT_MEASURES or group == "dollars"):
            pop["extension"] = [{"url": POPULATION_AMOUNT, "valueMoney": _money(amounts[code])}]
        if lists is not None and code in lists:
            pop["subjectResults"] = {"reference": f"#{lists[code]}"}
        out.append(pop)
    return out


def _stratum_value(kind: str, value: str) -> dict[str, Any]:
    return {"text": value}


def evaluate(reader: Reader, measure_id: str, start: date, end: date,
             report_type: str = "population") -> dict[str, Any]:
    """The MeasureReport of ``measure_id`` over [start, end] for the reader's tenant. 404 for an
    unknown Measure; ``report_type`` population/summary or subject-list."""
    spec = definitions.spec(measure_id)
    if spec is None:
        raise FhirError(404, "not-found", f"Measure/{measure_id} is not known", expression=["Measure.id"])
    kind = REPORT_TYPES.get(report_type)
    if kind is None:
        raise FhirError(400, "not-supported", f"unknown reportType {report_type!r}", expression=["reportType"])
    continuous = spec["scoring"] == "continuous-variable"
    tallies = queries.tallies(reader.conn, reader.tenant_id, spec["computation"], start, end, continuous)
    days = (end - start).days + 1
    overall = tallies.get(("all", ""), queries.Tally())
    report: dict[str, Any] = {
        "resourceType": "MeasureReport", "status": "complete", "type": kind,
        "measure": f"{definitions.canonical(measure_id)}|{definitions.data()['version']}",
        "date": reader.ts.store.clock().isoformat().replace("+00:00", "Z"),
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "improvementNotation": definitions.measure(measure_id)["improvementNotation"],
    }
    lists: dict[str, str] | None = None
    if kind == "subject-list":
        lists, contained = _subject_lists(reader, spec, start, end)
        report["contained"] = contained
    groups = []
    for g in definitions.group_codes(spec):
        group: dict[str, Any] = {}
        if len(definitions.group_codes(spec)) > 1:
            group["code"] = {"coding": [{"system": GROUP_SYSTEM, "code": g}]}
        group["population"] = _populations(spec, g, overall, lists)
        s = score(spec, g, overall, days)
        if s is not None:
            group["measureScore"] = s
        group["stratifier"] = []
        for strat in queries.STRATIFIERS:
            strata = []
            for (k, v), t in sorted(tallies.items()):
                if k != strat:
                    continue
                stratum: dict[str, Any] = {"value": _stratum_value(k, v), "population": [
                    {"code": p["code"], "count": p["count"], **({"extension": p["extension"]} if "extension" in p else {})}
                    for p in _populations(spec, g, t, None)]}
                sc = score(spec, g, t, days)
                if sc is not None:
                    stratum["measureScore"] = sc
                strata.append(stratum)
            group["stratifier"].append({"code": [{"coding": [{"system": STRATIFIER_SYSTEM, "code": strat}]}],
                                        **({"stratum": strata} if strata else {})})
        groups.append(group)
    report["group"] = groups
    return report


def _subject_lists(reader: Reader, spec: dict[str, Any], start: date, end: date) -> tuple[dict[str, str], list]:
    """One contained List of Claim references per population (the claims in it)."""
    rows = queries.subjects(reader.conn, reader.tenant_id, spec["computation"], start, end)
    members = {"initial-population": [r[0] for r in rows], "denominator": [r[0] for r in rows if r[1]],
               "numerator": [r[0] for r in rows if r[2]], "measure-population": [r[0] for r in rows if r[1]]}
    lists, contained = {}, []
    for code, _ in spec["populations"]:
        if code not in members:
            continue
        lid = f"{code}"
        lists[code] = lid
        contained.append({"resourceType": "List", "id": lid, "status": "current", "mode": "snapshot",
                          "title": f"Claims in the {code}",
                          "entry": [{"item": {"reference": f"Claim/{cid}"}} for cid in members[code]]})
    for c in contained:
        if not c["entry"]:
            del c["entry"]
    return lists, contained
