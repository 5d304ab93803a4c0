"""One KPI across several practices, from each practice's own MeasureReport.

The combined view is computed by the caller, not by a server operation over several tenants:
an app holding one token per practice (a user switches practice with the refresh token, see
``app.auth.practices``) evaluates each practice and combines here. No token ever spans two
practices, so the combined figures can only include practices the person was granted.

Exact for counts and money: proportions and ratios are recomputed from the summed numerators
and denominators (and amounts), the same way ``$evaluate-measure`` scores one practice. A
median (``days-to-payment``) cannot be combined from medians; the combined report then has the
summed population counts and no ``measureScore``. Strata are left out: payers and clinicians
are each practice's own resources, so strata of different practices do not line up.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from app.measures import definitions
from app.measures.definitions import POPULATION_AMOUNT
from app.measures.evaluate import score
from app.measures.queries import Tally


class CombineError(ValueError):
    """The reports are not of one measure and one period."""


def _amount(population: dict[str, Any]) -> int | None:
    for ext in population.get("extension", []):
        if ext.get("url") == POPULATION_AMOUNT:
            return int((Decimal(str(ext["valueMoney"]["value"])) * 100).to_integral_value())
    return None


def combine(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """A summary MeasureReport over all ``reports`` (one per practice, same measure and period)."""
    if not reports:
        raise CombineError("nothing to combine")
    first = reports[0]
    if any(r.get("measure") != first.get("measure") or r.get("period") != first.get("period") for r in reports):
        raise CombineError("every report must be of the same measure and period")
    measure_id = first["measure"].split("|")[0].rsplit("/", 1)[-1]
    spec = definitions.spec(measure_id)
    if spec is None:
        raise CombineError(f"unknown measure {first['measure']!r}")
    days = (date.fromisoformat(first["period"]["end"]) - date.fromisoformat(first["period"]["start"])).days + 1
    groups = []
    for index, group in enumerate(first.get("group", [])):
        counts: dict[str, int] = {}
        amounts: dict[str, int] = {}
        for report in reports:
            for pop in report["group"][index]["population"]:
                code = pop["code"]["coding"][0]["code"]
                counts[code] = counts.get(code, 0) + int(pop.get("count", 0))
                amount = _amount(pop)
                if amount is not None:
                    amounts[code] = amounts.get(code, 0) + amount
        combined: dict[str, Any] = {k: v for k, v in group.items() if k == "code"}
        combined["population"] = []
        for pop in group["population"]:
            code = pop["code"]["coding"][0]["code"]
            out: dict[str, Any] = {"code": pop["code"], "count": counts[code]}
            if code in amounts:
                out["extension"] = [{"url": POPULATION_AMOUNT, "valueMoney": {
                    "value": float(Decimal(amounts[code]) / 100), "currency": "USD"}}]
            combined["population"].append(out)
        if spec["scoring"] != "continuous-variable":
            tally = Tally(ip=counts.get("initial-population", 0), den=counts.get("denominator", 0),
                          num=counts.get("numerator", 0), den_amt=amounts.get("denominator", 0),
                          num_amt=amounts.get("numerator", 0))
            group_code = (group.get("code") or {}).get("coding", [{}])[0].get("code", "")
            value = score(spec, group_code, tally, days)
            if value is not None:
                combined["measureScore"] = value
        groups.append(combined)
    return {"resourceType": "MeasureReport", "status": "complete", "type": "summary",
            "measure": first["measure"], "period": first["period"],
            "improvementNotation": first.get("improvementNotation"), "group": groups}
