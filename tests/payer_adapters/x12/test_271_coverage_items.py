"""271: a service type that only confirms coverage (``EB*1**30**PLAN``, ``EB*1**AD``, EB03 with
repeats) still becomes its own benefit item, so "OT (AD) active" differs from "OT not mentioned"."""
from __future__ import annotations

import pytest

from payer_adapters.x12 import decode

from .envelopes import interchange
from .fhir_check import assert_valid_bundle, resources

HEAD = ["BHT*0022*11*ELIGREQ2*20250110*1200",
        "HL*1**20*1", "NM1*PR*2*ACME HEALTH*****PI*60054",
        "HL*2*1*21*1", "NM1*1P*2*BRIGHT HANDS*****XX*1234567893",
        "HL*3*2*22*0", "TRN*2*ELIG0002*9876543210", "NM1*IL*1*DOE*JANE****MI*W123456789"]


def _items(benefits: list[str], repetition: str = "^") -> dict[tuple[str, str | None], dict]:
    text = interchange("HB", "005010X279A1", "271", [HEAD + benefits], repetition=repetition)
    bundle = decode(text).to_fhir()
    assert_valid_bundle(bundle)
    [response] = resources(bundle, "CoverageEligibilityResponse")
    out = {}
    for item in response["insurance"][0].get("item", []):
        network = item.get("network", {}).get("coding", [{}])[0].get("code")
        out[(item["category"]["coding"][0]["code"], network)] = item
    return out


def test_coverage_only_service_types_are_items():
    items = _items(["EB*1**30**GOLD PPO", "EB*1**AD^PT", "EB*6**AE", "EB*B**MH*HM**27*25*****Y"])
    assert set(items) == {("30", None), ("AD", None), ("PT", None), ("AE", None), ("MH", "in")}
    assert items[("30", None)]["excluded"] is False
    assert items[("AD", None)]["excluded"] is False and items[("PT", None)]["excluded"] is False
    assert items[("AE", None)]["excluded"] is True  # inactive: mentioned, not covered
    assert "excluded" not in items[("MH", "in")] and items[("MH", "in")]["benefit"][0]["allowedMoney"]["value"] == 25
    assert ("UC", None) not in items  # not mentioned at all


@pytest.mark.parametrize("repetition", ["^", "{"])
def test_eb03_repeats_use_the_interchange_repetition_separator(repetition):
    items = _items([f"EB*1**AD{repetition}PT{repetition}UC"], repetition=repetition)
    assert set(items) == {("AD", None), ("PT", None), ("UC", None)}


def test_isa11_written_as_a_4010_standards_id_is_no_separator():
    """Some 5010 senders still put ``U`` in ISA11; it must not split EB03 codes such as UC."""
    items = _items(["EB*1**UC^AD"], repetition="U")
    assert set(items) == {("UC", None), ("AD", None)}
