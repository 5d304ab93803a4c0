"""837P for secondary and tertiary claims (loops 2320/2330A/2330B/2430): pyx12 accepts them, they
balance per the TR3 COB rules, and the codec reads them back; a prior adjudication that does not
balance against the claim is refused."""
from __future__ import annotations

from decimal import Decimal

import pytest

from payer_adapters.x12 import EncodeError, Submission837, decode, encode_837p, validate

from . import builders as B
from . import cob_builders as CB
from .conftest import NOW
from .pyx12_check import assert_pyx12_ok


def segs(x12: bytes) -> list[list[str]]:
    return [s.strip().split("*") for s in x12.decode().split("~") if s.strip()]


def _loops_2320(s: list[list[str]]) -> list[list[list[str]]]:
    """The segments of each 2320 loop through its 2330B (up to the next 2320 or the first LX)."""
    start = next(i for i, x in enumerate(s) if x[0] == "CLM")
    loops: list[list[list[str]]] = []
    for x in s[start:]:
        if x[0] == "LX":
            break
        if x[0] == "SBR":
            loops.append([])
        if loops:
            loops[-1].append(x)
    return loops


def _lines(s: list[list[str]]) -> list[dict]:
    """Per 2400: the charge and, per SVD, (payer, paid, Σ CAS)."""
    out: list[dict] = []
    for x in s:
        if x[0] == "SV1":
            out.append({"charge": Decimal(x[2]), "svd": []})
        elif x[0] == "SVD":
            out[-1]["svd"].append([x[1], Decimal(x[2]), Decimal(0)])
        elif x[0] == "CAS" and out and out[-1]["svd"]:
            out[-1]["svd"][-1][2] += sum(Decimal(x[i]) for i in range(3, len(x), 3) if x[i])
    return out


def _check_balance(s: list[list[str]], payers: list[str]) -> None:
    clm02 = Decimal(next(x for x in s if x[0] == "CLM")[2])
    lines = _lines(s)
    for line in lines:
        assert [p for p, _, _ in line["svd"]] == payers
        for _, paid, cas in line["svd"]:
            assert line["charge"] == paid + cas  # SV102 = SVD02 + Σ 2430 CAS
    for n, loop in enumerate(_loops_2320(s)):
        amt_d = Decimal(next(x for x in loop if x[:2] == ["AMT", "D"])[2])
        claim_cas = sum((Decimal(x[i]) for x in loop if x[0] == "CAS" for i in range(3, len(x), 3) if x[i]), Decimal(0))
        line_cas = sum((line["svd"][n][2] for line in lines), Decimal(0))
        assert clm02 == amt_d + claim_cas + line_cas  # CLM02 = AMT*D + Σ 2320 CAS + Σ 2430 CAS
        assert amt_d == sum((line["svd"][n][1] for line in lines), Decimal(0)) - claim_cas


def test_secondary_claim(partner, numbers):
    out = encode_837p(CB.secondary_bundle(), partner, numbers, now=NOW)
    assert_pyx12_ok(out)
    assert validate(out, use_pyx12=False) == []
    s = segs(out)
    assert [x[1] for x in s if x[0] == "SBR"] == ["S", "P"]
    assert next(x for x in s if x[0] == "SBR") == ["SBR", "S", "18", "MEDIGAP-F", "", "", "", "", "", "CI"]
    [loop] = _loops_2320(s)
    assert [x[0] + ("*" + x[1] if x[0] in ("AMT", "NM1", "REF") else "") for x in loop] == [
        "SBR", "AMT*D", "AMT*EAF", "OI", "NM1*IL", "N3", "N4", "NM1*PR", "REF*F8"]
    assert loop[0] == ["SBR", "P", "18", "", "", "", "", "", "", "MB"]
    assert loop[1] == ["AMT", "D", "129.36"] and loop[2] == ["AMT", "EAF", "82.34"]
    assert loop[4][9] == "1EG4TE5MK73" and loop[7][9] == "00952" and loop[8] == ["REF", "F8", "MCR0001ICN"]
    assert [x for x in s if x[0] == "SVD"][0] == ["SVD", "00952", "82.8", "HC:97165:GO", "", "1"]
    assert [x[3] for x in s if x[:2] == ["DTP", "573"]] == ["20250203"] * 3  # line level only
    _check_balance(s, ["00952"])
    # Our 2000B is the supplement: its member and payer.
    assert next(x for x in s if x[:2] == ["NM1", "IL"])[9] == "SUPP44556677"
    assert next(x for x in s if x[:2] == ["NM1", "PR"])[9] == "ACME01"


def test_medicare_as_secondary_payer_carries_the_msp_type(partner, numbers):
    """Medicare billed after an employer plan: 2000B SBR*S with SBR05 (the Coverage's MSP type),
    pyx12-clean; the prior payer's 2320 SBR has none (SBR05 is for Medicare as a later payer)."""
    out = encode_837p(CB.msp_bundle("12"), partner, numbers, now=NOW)
    assert_pyx12_ok(out)
    s = segs(out)
    sbr = [x for x in s if x[0] == "SBR"]
    assert sbr[0][:2] == ["SBR", "S"] and sbr[0][5] == "12" and sbr[0][9] == "MB"
    assert sbr[1][1] == "P" and sbr[1][5] == "" and sbr[1][9] == "CI"
    _check_balance(s, ["ACME01"])  # the employer plan paid first
    primary = encode_837p(B.medicare_ot_bundle(), partner, numbers, now=NOW)
    assert next(x for x in segs(primary) if x[0] == "SBR")[5] == ""  # never for a primary payer
    with pytest.raises(EncodeError) as err:
        encode_837p(CB.msp_bundle(None), partner, numbers, now=NOW)
    assert err.value.segment_id == "SBR" and "Secondary Payer type" in str(err.value)


def test_tertiary_claim(partner, numbers):
    out = encode_837p(CB.tertiary_bundle(), partner, numbers, now=NOW)
    assert_pyx12_ok(out)
    s = segs(out)
    assert [x[1] for x in s if x[0] == "SBR"] == ["T", "P", "S"]
    assert [x[2] for x in s if x[:2] == ["REF", "F8"]] == ["MCR0001ICN", "SUPP0002ICN"]
    assert [x[9] for x in s if x[:2] == ["NM1", "PR"]] == ["THIRD01", "00952", "ACME01"]
    assert [x[2] for x in s if x[:2] == ["AMT", "EAF"]] == ["82.34", "12.34"]
    _check_balance(s, ["00952", "ACME01"])
    [sub] = decode(out).of_type(Submission837)
    [claim] = sub.claims
    assert claim.payer_sequence == "T" and claim.original_reference is None  # REF*F8 of 2330B is not a replacement
    assert [(o.sequence, o.payer_id, o.paid, o.claim_number) for o in claim.other_payers] == [
        ("P", "00952", Decimal("129.36"), "MCR0001ICN"), ("S", "ACME01", Decimal("70"), "SUPP0002ICN")]
    assert [p[0] for p in claim.lines[2].prior_payments] == ["00952", "ACME01"]


def test_primary_claim_has_no_cob_loops(partner, numbers):
    s = segs(encode_837p(B.medicare_ot_bundle(), partner, numbers, now=NOW))
    assert not [x for x in s if x[0] in ("SVD", "OI", "AMT")] and [x[1] for x in s if x[0] == "SBR"] == ["P"]


def test_unbalanced_prior_adjudication_is_refused(partner, numbers):
    b = CB.secondary_bundle()
    response = next(e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "ClaimResponse")
    response["item"][0]["adjudication"][1]["amount"]["value"] = 90  # paid more than charge − CAS
    with pytest.raises(EncodeError) as err:
        encode_837p(b, partner, numbers, now=NOW)
    assert err.value.loop_id == "2430" and "line 1" in err.value.message


def test_prior_payer_without_claim_response_is_refused(partner, numbers):
    b = CB.secondary_bundle()
    del b["entry"][0]["resource"]["insurance"][0]["claimResponse"]
    with pytest.raises(EncodeError) as err:
        encode_837p(b, partner, numbers, now=NOW)
    assert err.value.loop_id == "2320"


def test_835_crossover_payer_is_read(examples):
    """2100 NM1*TT (the payer Medicare forwarded the claim to) and MOA remark MA18 are read."""
    text = (examples / "835_ot_remittance.x12").read_text()
    rendering = "NM1*82*1*JONES*EMILY****XX*1982736450~"
    first = text.index(rendering) + len(rendering)
    text = text[:first] + "NM1*TT*2*ACME MEDIGAP*****PI*ACME01~MOA***MA18~" + text[first:]
    count = text[text.index("ST*835"):text.index("SE*")].count("~") + 1
    se = text[text.index("SE*"):].split("~")[0]
    text = text.replace(se, f"SE*{count}*{se.split('*')[2]}", 1)
    assert validate(text) == []
    [rem] = decode(text).remittances
    assert rem.claims[0].crossover_payer == ("ACME MEDIGAP", "ACME01") and "MA18" in rem.claims[0].remarks
    assert rem.claims[1].crossover_payer is None
