"""Independent check: every golden claim encodes to an 837P that the X12 validators accept.

Uses the X12 codec owned by payer_adapters (another part of the project); it fails when the
Claim we build lacks something the 837P needs (CLM01, 2310A, 2310B, REF*Y4, REF*6R …).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

encode = pytest.importorskip("payer_adapters.x12.encode_837p")
from payer_adapters.x12.control import InMemoryControlNumbers  # noqa: E402
from payer_adapters.x12.partners import TradingPartner  # noqa: E402
from payer_adapters.x12.validate import validate  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"
PARTNER = TradingPartner(
    name="clearinghouse", sender_qualifier="ZZ", sender_id="OTCLINIC123", receiver_qualifier="ZZ",
    receiver_id="CLEARHOUSE01", application_sender="OTCLINIC123", application_receiver="CLEARHOUSE01",
    submitter_name="BRIGHT HANDS", submitter_phone="2175550100", receiver_name="CLEARHOUSE",
)


@pytest.mark.parametrize("name", sorted(p.name.split(".")[0] for p in GOLDEN.glob("*.input.json")))
def test_golden_claim_encodes_to_a_valid_837p(name: str) -> None:
    inputs = json.loads((GOLDEN / f"{name}.input.json").read_text())
    claim = json.loads((GOLDEN / f"{name}.expected.json").read_text())["entry"][0]["resource"]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": inputs["entry"] + [{"resource": claim}]}
    x12 = encode.encode_837p(bundle, PARTNER, InMemoryControlNumbers(),
                             now=datetime(2025, 1, 20, 15, tzinfo=timezone.utc)).decode()
    assert validate(x12.encode()) == []
    pcn = claim["identifier"][0]["value"]
    assert f"CLM*{pcn}*" in x12
    assert "NM1*DN*1*SMITH*JOHN****XX*1245319599~" in x12  # certifying physician -> 2310A
    assert x12.count("REF*6R*") == len(claim["item"])
    if name == "workers-comp":
        assert "REF*Y4*WC-2024-55821~" in x12 and "DTP*439*D8*20241202~" in x12
