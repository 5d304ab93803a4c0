"""A claim file's control numbers: the encoder reports what it wrote, the 837P decoder reads the
same back (a receipt after a crash), and the envelope reader names any file's sets even when the
checks refuse it."""
from __future__ import annotations

from payer_adapters.x12 import (
    BatchNumbers, InMemoryControlNumbers, Submission837, batch_numbers, batch_trace, decode, encode_837p,
    encode_837p_batch, headers, validate,
)
from payer_adapters.x12_files import kind_of, read_batch_numbers

from . import builders as B
from .conftest import NOW
from .envelopes import interchange

ACK_BODY = ["AK1*HC*105*005010X222A1", "AK2*837*0001*005010X222A1", "IK5*A", "AK9*A*1*1*1"]


def _two_payers() -> dict:
    """Three claims of one billing provider: two to Medicare, one to Acme (two transaction sets)."""
    b = B.many_claims_bundle(3)
    b["entry"].append({"fullUrl": "urn:uuid:organization-acme",
                       "resource": B.payer_org("Acme Health Plan", "60054", "acme")})
    b["entry"][1]["resource"]["insurer"] = {"reference": "Organization/acme"}
    return b


def test_encoder_reports_the_numbers_it_wrote_and_the_decoder_reads_the_same(partner, numbers):
    encoded = encode_837p_batch(_two_payers(), partner, numbers, now=NOW)
    assert encoded.numbers == BatchNumbers("000000101", "101", (("0101", ("P000000000", "P000000002")),
                                                                ("0102", ("P000000001",))))
    assert encoded.numbers.st == ["0101", "0102"]
    assert encoded.numbers.claims == ["P000000000", "P000000002", "P000000001"]
    assert encoded.numbers.claim_sets == {"P000000000": "0101", "P000000002": "0101", "P000000001": "0102"}
    text = encoded.data.decode()
    assert "*00501*000000101*" in text and "*101*X*005010X222A1~" in text and "ST*837*0102*" in text
    assert batch_numbers(decode(encoded.data).of_type(Submission837)) == encoded.numbers
    assert read_batch_numbers(encoded.data) == encoded.numbers


def test_encode_837p_is_the_batch_encoding(partner, numbers):
    again = InMemoryControlNumbers(start=101)
    assert encode_837p(_two_payers(), partner, numbers, now=NOW) == \
        encode_837p_batch(_two_payers(), partner, again, now=NOW).data


def test_837p_decoder_reads_the_batch_and_what_a_payer_adjudicates_by(partner, numbers):
    [sub] = decode(encode_837p(B.commercial_bundle(), partner, numbers, now=NOW)).of_type(Submission837)
    assert sub.reference == batch_trace(101, 101)  # BHT03, which a 277CA echoes in 2200B TRN02
    [claim] = sub.claims
    assert claim.billing_name == "BRIGHT HANDS OCCUPATIONAL THERAPY"
    assert claim.rendering_npi == "1982736450"  # 2310B
    assert claim.prior_authorization == "AUTH778899"  # REF*G1


def test_headers_name_the_sets_of_a_file_the_checks_refuse():
    text = interchange("FA", "005010X231A1", "999", [ACK_BODY, ACK_BODY], isa13=42, gs06=7, st02=5)
    broken = text.replace("SE*6*0006", "SE*9*0006")  # the second set's segment count is wrong
    assert validate(broken, use_pyx12=False)  # the checked reader refuses it …
    found = list(headers(broken))  # … the header reader still names both sets
    assert [(h.transaction, h.control_number, h.version) for h in found] == [
        ("999", "0005", "005010X231A1"), ("999", "0006", "005010X231A1")]
    assert {(h.interchange.control_number, h.interchange.sender_id, h.group.control_number) for h in found} == {
        ("000000042", "CLEARHOUSE01", "7")}
    assert kind_of(broken.encode()) == "999"
    assert kind_of(b'{"not": "x12"}') is None
