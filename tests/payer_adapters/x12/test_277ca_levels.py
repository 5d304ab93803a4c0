"""277CA statuses above the claim: the information source (2200A), the information receiver — our
submitter, one batch — (2200B) and a billing provider (2200C). A rejection there stands for claims
the 277CA does not list, so it must survive decoding: as typed records (level, entity, traces,
statuses, totals) and as an OperationOutcome in the Bundle."""
from __future__ import annotations

from decimal import Decimal

from payer_adapters.x12 import decode, encode_837p

from . import builders as B
from .envelopes import interchange
from .fhir_check import assert_valid_bundle, resources

LEVEL_EXT = "https://therabridge.dev/fhir/StructureDefinition/x12-277ca-level"
BATCH_TRACE = "https://therabridge.dev/fhir/sid/x12-claim-batch"
SOURCE = ["BHT*0085*08*ACK4471*20250116*0900*TH",
          "HL*1**20*1", "NM1*PR*2*ACME HEALTH*****PI*60054", "TRN*1*SRC4471",
          "DTP*050*D8*20250115", "DTP*009*D8*20250116"]


def _277(body: list[str], **envelope: int) -> str:
    return interchange("HN", "005010X214", "277", [SOURCE + body], **envelope)


def _our_837_bht03(partner, numbers) -> str:
    """The BHT03 of an 837P our encoder wrote: what 2200B TRN02 echoes."""
    text = encode_837p(B.medicare_ot_bundle(), partner, numbers).decode()
    bht = next(s for s in text.replace("\n", "").split("~") if s.startswith("BHT*"))
    return bht.split("*")[3]


def _level_ext(outcome: dict) -> dict[str, list]:
    [ext] = [e for e in outcome["extension"] if e["url"] == LEVEL_EXT]
    parts: dict[str, list] = {}
    for part in ext["extension"]:
        value = next(v for k, v in part.items() if k.startswith("value"))
        parts.setdefault(part["url"], []).append(value)
    return parts


def test_batch_rejected_at_the_information_receiver(partner, numbers):
    batch = _our_837_bht03(partner, numbers)
    text = _277(["HL*2*1*21*0", "NM1*41*2*THERABRIDGE*****46*TB0001", f"TRN*2*{batch}",
                 "STC*A3:24:41*20250116*U*250", "QTY*90*0", "QTY*AA*2", "AMT*YU*0", "AMT*YY*250"])
    ack = decode(text).claim_acknowledgments[0]
    assert ack.claims == []
    [level] = ack.level_rejections
    assert (level.level, level.loop, level.entity, level.id_qualifier, level.id, level.etin) == (
        "information-receiver", "2200B", "41", "46", "TB0001", "TB0001")
    assert level.trace == level.batch_trace == batch
    [st] = level.statuses
    assert (st.category, st.code, st.entity, st.action, st.date, st.amount) == (
        "A3", "24", "41", "U", "2025-01-16", Decimal(250))
    assert (level.accepted_quantity, level.rejected_quantity, level.accepted_amount, level.rejected_amount) == (
        Decimal(0), Decimal(2), Decimal(0), Decimal(250))

    bundle = decode(text).to_fhir()
    assert_valid_bundle(bundle)
    [outcome] = resources(bundle, "OperationOutcome")
    [issue] = outcome["issue"]
    assert issue["severity"] == "error"
    assert [(c["system"].rsplit("/", 1)[1], c["code"]) for c in issue["details"]["coding"]] == [
        ("claim-status-category-codes", "A3"), ("claim-status-codes", "24"), ("entity-identifier-codes", "41")]
    assert batch in issue["diagnostics"] and "2200B" in issue["diagnostics"] and "TB0001" in issue["diagnostics"]
    parts = _level_ext(outcome)
    assert parts["loop"][0]["code"] == "2200B" and parts["entity"][0]["code"] == "41"
    assert parts["identifier"][0]["value"] == "TB0001" and parts["identifier"][0]["type"]["coding"][0]["code"] == "46"
    assert parts["batchTrace"] == [{"system": BATCH_TRACE, "value": batch}]
    assert parts["rejectedQuantity"] == [2.0] and parts["rejectedAmount"][0]["value"] == 250.0


def test_billing_provider_rejected_and_claims_know_their_batch_and_provider():
    """Provider 1999999992 is rejected without its claims listed; the accepted provider's claims
    sit under HL 3 even where a claim follows the rejected provider's HL (HL02 decides)."""
    text = _277([
        "HL*2*1*21*1", "NM1*41*2*THERABRIDGE*****46*TB0001", "TRN*2*0000001010001",
        "STC*A1:19:PR*20250116*WQ*400", "QTY*90*1", "QTY*AA*2", "AMT*YU*150", "AMT*YY*250",
        "HL*3*2*19*1", "NM1*85*2*BRIGHT HANDS*****XX*1234567893", "TRN*1*PROV-A", "STC*A1:19:PR**WQ*150",
        "HL*4*3*PT", "NM1*QC*1*DOE*JANE****MI*M1", "TRN*2*PCN1", "STC*A2:20*20250116*WQ*150",
        "REF*1K*ICN0001", "DTP*472*D8*20250110",
        "HL*5*2*19*0", "NM1*85*2*OTHER CLINIC*****XX*1999999992", "TRN*1*PROV-B",
        "STC*A3:24:85**U*250", "REF*TJ*371234567", "QTY*QC*2", "AMT*YY*250",
        "HL*6*3*PT", "NM1*QC*1*ROE*RAY****MI*M2", "TRN*2*PCN2", "STC*A2:20*20250116*WQ*0",
        "DTP*472*D8*20250111",
    ])
    ack = decode(text).claim_acknowledgments[0]
    assert [c.patient_control_number for c in ack.claims] == ["PCN1", "PCN2"]
    for c in ack.claims:
        assert (c.batch_trace, c.billing_npi, c.billing_provider_qualifier, c.billing_provider_id,
                c.provider_trace) == ("0000001010001", "1234567893", "XX", "1234567893", "PROV-A")
    assert [lvl.loop for lvl in ack.levels] == ["2200A", "2200B", "2200C", "2200C"]
    [rejected] = ack.level_rejections
    assert (rejected.loop, rejected.npi, rejected.tin, rejected.trace, rejected.batch_trace) == (
        "2200C", "1999999992", "371234567", "PROV-B", "0000001010001")
    assert (rejected.rejected_quantity, rejected.rejected_amount) == (Decimal(2), Decimal(250))
    assert rejected.statuses[0].date is None  # STC02 is not used at 2200C

    bundle = decode(text).to_fhir()
    assert_valid_bundle(bundle)
    assert [r["outcome"] for r in resources(bundle, "ClaimResponse")] == ["queued", "queued"]
    [outcome] = resources(bundle, "OperationOutcome")
    parts = _level_ext(outcome)
    assert parts["loop"][0]["code"] == "2200C"
    assert {(i["type"]["coding"][0]["code"], i["value"]) for i in parts["identifier"]} == {
        ("XX", "1999999992"), ("FI", "371234567")}
    assert parts["batchTrace"][0]["value"] == "0000001010001" and parts["trace"][0]["value"] == "PROV-B"
    assert "1999999992" in outcome["issue"][0]["diagnostics"]


def test_billing_provider_by_tin_is_the_requestor():
    text = _277(["HL*2*1*21*1", "NM1*41*2*THERABRIDGE*****46*TB0001", "TRN*2*B1", "STC*A1:19*20250116*WQ*50",
                 "HL*3*2*19*1", "NM1*85*2*BRIGHT HANDS*****FI*371234567", "TRN*1*P1", "STC*A1:19**WQ*50",
                 "HL*4*3*PT", "NM1*QC*1*DOE*JANE****MI*M1", "TRN*2*PCN1", "STC*A2:20*20250116*WQ*50",
                 "DTP*472*D8*20250110"])
    [c] = decode(text).claim_acknowledgments[0].claims
    assert (c.billing_npi, c.billing_provider_qualifier, c.billing_provider_id) == (None, "FI", "371234567")
    [cr] = resources(decode(text).to_fhir(), "ClaimResponse")
    assert cr["requestor"]["identifier"] == {"system": "urn:oid:2.16.840.1.113883.4.4", "value": "371234567"}


def test_information_source_status_is_kept():
    text = interchange("HN", "005010X214", "277", [[
        "BHT*0085*08*ACK4472*20250116*0900*TH",
        "HL*1**20*1", "NM1*AY*2*CLEARING CO*****46*CH01", "TRN*1*SRC4472", "STC*A3:116**U",
        "DTP*050*D8*20250115", "DTP*009*D8*20250116"]])
    [level] = decode(text).claim_acknowledgments[0].level_rejections
    assert (level.level, level.entity, level.id, level.trace) == ("information-source", "AY", "CH01", "SRC4472")
    bundle = decode(text).to_fhir()
    assert_valid_bundle(bundle)
    [outcome] = resources(bundle, "OperationOutcome")
    assert _level_ext(outcome)["loop"][0]["code"] == "2200A"
    assert outcome["issue"][0]["details"]["coding"][1]["code"] == "116"


def test_further_statuses_stc10_stc11_and_free_text():
    """STC10/STC11 carry more reasons under the same action code; STC12 is free text."""
    text = _277([
        "HL*2*1*21*1", "NM1*41*2*THERABRIDGE*****46*TB0001", "TRN*2*B1", "STC*A1:19*20250116*WQ*105",
        "HL*3*2*19*1", "NM1*85*2*BRIGHT HANDS*****XX*1234567893", "TRN*1*P1", "STC*A1:19**WQ*105",
        "HL*4*3*PT", "NM1*QC*1*DOE*JANE****MI*M1", "TRN*2*PCN7",
        "STC*A3:21*20250116*U*50******A7:187*A6:562:82*CHECK DATES", "DTP*472*D8*20250110",
        "HL*5*3*PT", "NM1*QC*1*ROE*RAY****MI*M2", "TRN*2*PCN8",
        "STC*A2:20*20250116*WQ*55******A3:187", "DTP*472*D8*20250110",
    ])
    rejected, accepted = decode(text).claim_acknowledgments[0].claims
    assert [(s.element, s.category, s.code, s.entity, s.action) for s in rejected.statuses] == [
        (1, "A3", "21", "", "U"), (10, "A7", "187", "", "U"), (11, "A6", "562", "82", "U")]
    assert rejected.statuses[2].message == "CHECK DATES" and rejected.outcome == "error"
    assert [s.element for s in accepted.statuses] == [1, 10] and accepted.outcome == "queued"
    bundle = decode(text).to_fhir()
    assert_valid_bundle(bundle)
    bad = resources(bundle, "ClaimResponse")[0]
    assert [e["code"]["coding"][1]["code"] for e in bad["error"]] == ["21", "187", "562"]
    assert bad["processNote"][-1]["text"] == "CHECK DATES"
