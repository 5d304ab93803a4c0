"""``ChargeMaster`` from ChargeItemDefinitions: which fee is in force for a code, its modifiers and
a date; contracted and estimated allowed amounts; what makes a definition unusable."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from fhir_mappings import ChargeMaster
from fhir_mappings.charges import definition, definition_problems

D = Decimal
PAYER = "Organization/payer-1"


def _schedule() -> ChargeMaster:
    return ChargeMaster.from_definitions([
        definition("97110", [], D("50.00"), definition_id="a", start=date(2025, 1, 1), end=date(2025, 6, 30),
                   allowed=D("28.00")),
        definition("97110", [], D("52.00"), definition_id="b", start=date(2025, 7, 1), expected={PAYER: D("31.00")}),
        definition("97110", ["CQ"], D("44.00"), definition_id="c", start=date(2025, 1, 1)),
        definition("97110", ["CQ", "GP"], D("45.00"), definition_id="d", start=date(2025, 1, 1)),
        definition("97110", ["KX"], D("99.00"), definition_id="e", start=date(2025, 1, 1)) | {"status": "retired"},
        {"resourceType": "Patient", "id": "not-a-fee"},
    ])


def test_the_fee_in_force_on_the_date_wins_and_both_period_ends_count():
    fees = _schedule()
    assert fees.fee("97110", on=date(2025, 6, 30)) == D("50.00")
    assert fees.fee("97110", on=date(2025, 7, 1)) == D("52.00")
    assert fees.fee("97110", on=date(2024, 12, 31)) is None
    assert fees.fee("97530", on=date(2025, 7, 1)) is None


def test_the_most_specific_modifier_set_on_the_line_wins_and_inactive_fees_never_bill():
    fees = _schedule()
    day = date(2025, 3, 1)
    assert fees.fee("97110", ["GP"], on=day) == D("50.00")
    assert fees.fee("97110", ["GP", "CQ"], on=day) == D("45.00")
    assert fees.fee("97110", ["CQ"], on=day) == D("44.00")
    assert fees.fee("97110", ["KX", "GP"], on=day) == D("50.00")  # the KX fee is retired


def test_expected_amounts_contract_then_estimate_then_fee():
    fees = _schedule()
    assert fees.expected("97110", on=date(2025, 8, 1), payer=PAYER) == D("31.00")
    assert fees.expected("97110", on=date(2025, 8, 1), payer="Organization/other") is None
    assert fees.allowed_estimate("97110", on=date(2025, 8, 1), payer=PAYER) == D("31.00")
    assert fees.allowed_estimate("97110", on=date(2025, 8, 1), payer="Organization/other") == D("52.00")
    assert fees.allowed_estimate("97110", on=date(2025, 2, 1), payer=PAYER) == D("28.00")
    assert fees.allowed_estimate("97530", on=date(2025, 2, 1), payer=PAYER) == D(0)


def test_partial_dates_cover_their_span():
    fee = definition("97110", [], D("50.00"), definition_id="x", start=None) | {
        "effectivePeriod": {"start": "2025-02", "end": "2025"}}
    fees = ChargeMaster.from_definitions([fee])
    assert fees.fee("97110", on=date(2025, 1, 31)) is None
    assert fees.fee("97110", on=date(2025, 2, 1)) == fees.fee("97110", on=date(2025, 12, 31)) == D("50.00")


def test_definition_problems_name_the_element():
    good = definition("97110", [], D("50.00"), definition_id="x", start=date(2025, 1, 1))
    assert definition_problems(good) == []
    assert [w for w, _ in definition_problems(good | {"code": {"text": "therapy"}})] == ["ChargeItemDefinition.code"]
    two = good | {"propertyGroup": [{"priceComponent": [good["propertyGroup"][0]["priceComponent"][0]] * 2}]}
    assert [w for w, _ in definition_problems(two)] == ["ChargeItemDefinition.propertyGroup"]
    bad_money = good | {"propertyGroup": [{"priceComponent": [{"type": "base", "amount": {"value": "12.3x"}}]}]}
    assert ("ChargeItemDefinition.propertyGroup[0].priceComponent[0].amount.value", "'12.3x' is not a money amount.") \
        in definition_problems(bad_money)
