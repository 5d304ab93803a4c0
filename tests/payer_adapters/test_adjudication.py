"""The sandbox's rules table, through real 837P files and the 277CA/835 it writes back."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import httpx
import pytest

from payer_adapters.registry import create_adapter
from payer_adapters.sandbox import Engine, Mailbox, load_config
from payer_adapters.x12 import InMemoryControlNumbers, decode, validate

from .conftest import NOW, claim_package, find


@pytest.fixture
def world(tmp_path):
    mb = Mailbox(tmp_path / "mb", Engine(load_config()), use_pyx12=False)
    adapter = create_adapter("x12-directory", {"root": str(mb.root)}, http=httpx.AsyncClient(),
                             control_numbers=InMemoryControlNumbers())
    count = iter(range(1000))

    async def run(pkg, now=NOW):
        key = f"k{next(count)}"
        await adapter.submit_claims([pkg], idempotency_key=key)
        written = mb.process(now)
        files = {w.split("_")[0]: (mb.root / "outbox" / w).read_bytes() for w in written}
        for data in files.values():
            assert decode(data).warnings == []
        ack = decode(files["277CA"]).claim_acknowledgments[0].claims[0]
        payment = decode(files["835"]).remittances[0].claims[0] if "835" in files else None
        return ack, payment
    return run


def adj(service) -> list[tuple[str, str, Decimal]]:
    return [(a.group, a.reason, a.amount) for a in service.adjustments]


def set_modifiers(line_index: int, mods: list[str]):
    def edit(claim, res):
        claim["item"][line_index]["modifier"] = [
            {"coding": [{"system": "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "code": m}]} for m in mods]
    return edit


async def test_medicare_paid_with_contractual_deductible_and_coinsurance(world):
    ack, pay = await world(claim_package("enc-alvarez-1"))
    assert ack.outcome != "error" and ack.statuses[0].category == "A2"
    assert pay.status == "1" and pay.filing_indicator == "MB"
    first, second = pay.services
    assert adj(first) == [("CO", "45", Decimal("46.5")), ("PR", "1", Decimal("83")), ("PR", "2", Decimal("4.1"))]
    assert first.allowed == Decimal("103.5") and first.paid == Decimal("16.4")
    assert adj(second) == [("CO", "45", Decimal("49.8")), ("PR", "2", Decimal("14.04"))]
    assert pay.paid == Decimal("72.56") and pay.patient_responsibility == Decimal("101.14")
    assert pay.payer_claim_control_number == ack.payer_claim_control_number


async def test_commercial_copay_is_pr3_once_per_claim(world):
    _, pay = await world(claim_package("enc-brooks-1"))
    assert [adj(s) for s in pay.services] == [
        [("CO", "45", Decimal("36.15")), ("PR", "3", Decimal("30"))], [("CO", "45", Decimal("25.08"))]]


async def test_workers_comp_without_authorization_is_co197(world):
    _, pay = await world(claim_package("enc-kim-1"))
    assert pay.status == "4" and pay.paid == 0
    assert {adj(s)[0][:2] for s in pay.services} == {("CO", "197")}


async def test_authorization_number_lets_workers_comp_pay(world):
    def edit(claim, res):
        claim["insurance"][0]["preAuthRef"] = ["WCAUTH-55"]
    _, pay = await world(claim_package("enc-kim-1", edit=edit))
    assert pay.status == "1" and pay.paid > 0 and pay.patient_responsibility == 0


async def test_medicare_over_kx_threshold_without_kx_is_co119(world):
    _, pay = await world(claim_package("enc-alvarez-1", member="MCRKX0000001"))
    assert adj(pay.services[0]) == [("CO", "119", Decimal("150"))]
    assert pay.services[0].paid == 0


async def test_kx_modifier_lets_the_line_over_threshold_pay(world):
    pkg = claim_package("enc-alvarez-1", member="MCRKX0000001", edit=set_modifiers(0, ["GO", "KX"]))
    _, pay = await world(pkg)
    assert pay.services[0].paid > 0 and ("CO", "45") in [a[:2] for a in adj(pay.services[0])]


async def test_evaluation_code_with_the_wrong_discipline_modifier_is_co4(world):
    _, pay = await world(claim_package("enc-alvarez-1", edit=set_modifiers(0, ["GP"])))
    assert adj(pay.services[0]) == [("CO", "4", Decimal("150"))]
    assert pay.services[1].allowed == Decimal("70.2")  # the other line adjudicates (here: to the deductible)


async def test_not_medically_necessary_is_co50_with_remark(world):
    def edit(claim, res):
        claim["item"][1]["productOrService"]["coding"][0]["code"] = "97035"
    _, pay = await world(claim_package("enc-brooks-1", edit=edit))
    svc = pay.services[1]
    assert adj(svc) == [("CO", "50", Decimal("55"))] and svc.remarks == ["N386"]


async def test_late_claim_is_co29(world):
    _, pay = await world(claim_package("enc-brooks-1"), now=datetime(2027, 7, 1, tzinfo=timezone.utc))
    assert {adj(s)[0][:2] for s in pay.services} == {("CO", "29")}


async def test_second_submission_of_the_same_service_is_co18(world):
    _, first = await world(claim_package("enc-brooks-1"))
    _, second = await world(claim_package("enc-brooks-1"))
    assert first.paid > 0
    assert {adj(s)[0][:2] for s in second.services} == {("CO", "18")} and second.paid == 0


async def test_inactive_coverage_is_co27(world):
    _, pay = await world(claim_package("enc-brooks-1", member="ACMLAPSED001"))
    assert {adj(s)[0][:2] for s in pay.services} == {("CO", "27")}


async def test_visit_limit_reached_is_co119(world):
    _, pay = await world(claim_package("enc-brooks-1", member="ACMMAXED0001"))
    assert {adj(s)[0][:2] for s in pay.services} == {("CO", "119")}


async def test_missing_discipline_modifier_is_rejected_on_the_277ca(world):
    ack, pay = await world(claim_package("enc-brooks-1", edit=set_modifiers(1, [])))
    assert pay is None and ack.outcome == "error"
    line = ack.lines[0]
    assert line.code == "97140" and (line.statuses[0].category, line.statuses[0].code) == ("A6", "453")
    assert line.line_control_number.endswith("-2")


async def test_unknown_member_is_rejected_on_the_277ca(world):
    ack, pay = await world(claim_package("enc-brooks-1", member="ZZZ99999999"))
    assert pay is None and [(s.category, s.code, s.entity) for s in ack.statuses] == [("A7", "164", "IL")]


async def test_bad_rendering_npi_is_rejected_on_the_277ca(world):
    def edit(claim, res):
        claim["careTeam"][0]["provider"]["identifier"]["value"] = "1111111113"
        find(res, "Practitioner", "ot-rivera")["identifier"][0]["value"] = "1111111113"
    ack, pay = await world(claim_package("enc-brooks-1", edit=edit))
    assert pay is None and [(s.category, s.code, s.entity) for s in ack.statuses] == [("A7", "562", "82")]


def test_adjudication_is_deterministic(tmp_path):
    outputs = []
    for run in range(2):
        mb = Mailbox(tmp_path / f"mb{run}", Engine(load_config()), use_pyx12=False)
        pkg = claim_package("enc-alvarez-1")
        from payer_adapters.x12 import encode_837p, load_partner
        data = encode_837p(pkg.all_resources(), load_partner("sandbox"), InMemoryControlNumbers(), now=NOW)
        (mb.root / "inbox" / "837P_same.x12").write_bytes(data)
        mb.process(NOW)
        outputs.append({p.name: p.read_bytes() for p in (mb.root / "outbox").iterdir()})
    assert outputs[0] == outputs[1]
    for data in outputs[0].values():
        assert validate(data, use_pyx12=True) == []


async def test_bad_billing_npi_check_digit_is_rejected_on_the_277ca(world):
    def edit(claim, res):
        claim["provider"]["identifier"]["value"] = "1345678901"
        find(res, "Organization", "demo-practice")["identifier"][0]["value"] = "1345678901"
    ack, pay = await world(claim_package("enc-brooks-1", edit=edit))
    assert pay is None and [(s.category, s.code, s.entity) for s in ack.statuses] == [("A7", "562", "85")]
