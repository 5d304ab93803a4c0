"""The practice's fee schedule (ChargeItemDefinitions) prices its claims: the fee in force on each
line's date, modifier-specific fees, no fee → a CHARGE-MISSING error, and what the API refuses."""
from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from fhir_mappings.charges import definition
from tests.fees import demo_definitions, load_fee_schedule

DEMO_97530 = "fee-97530-2024-01-01"


def _without_fees(bundle: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(bundle)
    out["entry"] = [e for e in out["entry"] if e["resource"]["resourceType"] != "ChargeItemDefinition"]
    return out


async def _load(api, bundle: dict[str, Any]) -> None:
    r = await api.post("/fhir", json=bundle, headers={"Prefer": "return=minimal"})
    assert r.status_code == 200, r.text


async def _put(api, resource: dict[str, Any]) -> None:
    r = await api.put(f"/fhir/ChargeItemDefinition/{resource['id']}", json=resource)
    assert r.status_code in (200, 201), r.text


async def _retire(api, definition_id: str) -> None:
    current = (await api.get(f"/fhir/ChargeItemDefinition/{definition_id}")).json()
    current["status"] = "retired"
    await _put(api, current)


async def _generate(api, encounter: str) -> tuple[dict[str, Any], dict[str, Any]]:
    r = await api.post(f"/fhir/Encounter/{encounter}/$generate-claim")
    assert r.status_code == 200, r.text
    claim, outcome = (e["resource"] for e in r.json()["entry"])
    return claim, outcome


def _prices(claim: dict[str, Any]) -> dict[str, float]:
    return {" ".join([it["productOrService"]["coding"][0]["code"],
                      *(m["coding"][0]["code"] for m in it.get("modifier", ()))]): it["unitPrice"]["value"]
            for it in claim["item"]}


def _rules(outcome: dict[str, Any]) -> list[str]:
    return [i["details"]["coding"][0]["code"] for i in outcome["issue"] if i.get("details", {}).get("coding")]


async def test_each_claim_bills_the_fee_in_force_on_its_date_of_service(api, demo_bundle):
    """Two versions of 97530 change on 2026-11-04: the visit of 11-03 bills the old fee, the
    visit of 11-05 the new one; the demo's fee, retired, bills neither."""
    await _load(api, demo_bundle)
    await _retire(api, DEMO_97530)
    await _put(api, definition("97530", [], Decimal("61.00"), definition_id="fee-97530-v1", start=date(2026, 1, 1),
                               end=date(2026, 11, 3)))
    await _put(api, definition("97530", [], Decimal("66.50"), definition_id="fee-97530-v2", start=date(2026, 11, 4)))

    before, outcome = await _generate(api, "enc-alvarez-1")  # 2026-11-03: 97165 + 97530
    assert "CHARGE-MISSING" not in _rules(outcome)
    assert _prices(before) == {"97165 GO": 150.0, "97530 GO": 61.0}
    after, _ = await _generate(api, "enc-alvarez-2")  # 2026-11-05: 97530 (and 97110)
    prices = _prices(after)
    assert prices["97530 GO"] == 66.5
    line = next(it for it in after["item"] if it["productOrService"]["coding"][0]["code"] == "97530")
    assert line["net"]["value"] == pytest.approx(66.5 * line["quantity"]["value"])
    assert after["total"]["value"] == pytest.approx(sum(it["net"]["value"] for it in after["item"]))


async def test_a_fee_for_the_modifier_wins_over_the_code_alone(api, demo_bundle):
    await _load(api, demo_bundle)
    await _put(api, definition("97530", ["GO"], Decimal("72.25"), definition_id="fee-97530-go", start=date(2026, 1, 1)))
    await _put(api, definition("97165", ["GP"], Decimal("999.00"), definition_id="fee-97165-gp", start=date(2026, 1, 1)))
    claim, _ = await _generate(api, "enc-alvarez-1")
    # 97530 GO: the GO fee; 97165 GO: the GP fee does not fit, the code's fee does
    assert _prices(claim) == {"97165 GO": 150.0, "97530 GO": 72.25}


async def test_a_code_without_a_fee_in_force_holds_the_claim_with_an_error_naming_it(api, demo_bundle):
    await _load(api, demo_bundle)
    await _retire(api, DEMO_97530)
    await _put(api, definition("97530", [], Decimal("61.00"), definition_id="fee-97530-old", start=date(2025, 1, 1),
                               end=date(2026, 10, 31)))
    claim, outcome = await _generate(api, "enc-alvarez-1")
    assert claim["status"] == "draft"
    missing = [i for i in outcome["issue"] if i["details"]["coding"][0]["code"] == "CHARGE-MISSING"]
    assert len(missing) == 1 and missing[0]["severity"] == "error"
    text = missing[0]["details"]["text"]
    assert "97530" in text and "2026-11-03" in text
    assert "ChargeItemDefinition" in text and "therabridge fees load" in text
    assert missing[0]["expression"][0].endswith(".code")


async def test_a_practice_without_a_fee_schedule_gets_an_error_per_unpriced_code(api, demo_bundle):
    await _load(api, _without_fees(demo_bundle))
    claim, outcome = await _generate(api, "enc-alvarez-1")
    assert claim["status"] == "draft"
    missing = [i["details"]["text"] for i in outcome["issue"] if i["details"]["coding"][0]["code"] == "CHARGE-MISSING"]
    assert len(missing) == 2 and missing[0].startswith("97165") and missing[1].startswith("97530")
    # the same practice, given its schedule, bills cleanly
    await load_fee_schedule(api, demo_definitions(["97165", "97530"]))
    claim, outcome = await _generate(api, "enc-alvarez-1")
    assert "CHARGE-MISSING" not in _rules(outcome) and _prices(claim) == {"97165 GO": 150.0, "97530 GO": 60.0}


def _fee(**changes: Any) -> dict[str, Any]:
    resource = definition("97110", [], Decimal("55.00"), definition_id="fee-bad", start=date(2026, 1, 1))
    resource.update(changes)
    return resource


@pytest.mark.parametrize("resource, expression", [
    (_fee(propertyGroup=[{"priceComponent": [{"type": "base", "amount": {"value": -5, "currency": "USD"}}]}]),
     "ChargeItemDefinition.propertyGroup[0].priceComponent[0].amount.value"),
    (_fee(effectivePeriod={"start": "2026-06-01", "end": "2026-05-31"}), "ChargeItemDefinition.effectivePeriod.end"),
    (_fee(propertyGroup=[{"priceComponent": [{"type": "informational", "amount": {"value": 40, "currency": "USD"}}]}]),
     "ChargeItemDefinition.propertyGroup"),
], ids=["negative-amount", "ends-before-start", "no-base-price"])
async def test_the_api_refuses_a_fee_that_cannot_price_a_line(api, resource, expression):
    for write in (api.put("/fhir/ChargeItemDefinition/fee-bad", json=resource),
                  api.post("/fhir/ChargeItemDefinition", json={k: v for k, v in resource.items() if k != "id"}),
                  api.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": [
                      {"resource": _fee(id="fee-good"), "request": {"method": "PUT", "url": "ChargeItemDefinition/fee-good"}},
                      {"resource": resource, "request": {"method": "PUT", "url": "ChargeItemDefinition/fee-bad"}}]})):
        r = await write
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["resourceType"] == "OperationOutcome"
        assert any(expression in i.get("expression", []) for i in body["issue"]), body
    assert (await api.get("/fhir/ChargeItemDefinition")).json()["total"] == 0  # nothing stored, not even fee-good
