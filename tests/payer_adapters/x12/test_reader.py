"""Tokenising: separators from the ISA, newlines or not, several interchanges, chunk boundaries."""
from __future__ import annotations

import io

import pytest

from payer_adapters.x12 import decode
from payer_adapters.x12.segments import SegmentReader, Separators


def _resep(text: str, seps: Separators, newline: str = "") -> str:
    """Rewrite a ``* ^ : ~`` file with other separators."""
    out = []
    for seg in text.replace("\n", "").split("~"):
        if not seg:
            continue
        if seg.startswith("ISA"):
            parts = seg.split("*")
            parts[11], parts[16] = seps.repetition, seps.component
            out.append(seps.element.join(parts))
        else:
            out.append(seg.translate(str.maketrans({"*": seps.element, ":": seps.component, "^": seps.repetition})))
    return "".join(s + seps.segment + newline for s in out)


def test_with_and_without_newlines(examples):
    text = (examples / "835_ot_remittance.x12").read_text()
    flat = text.replace("\n", "")
    crlf = text.replace("\n", "\r\n")
    a, b, c = (decode(t).remittances[0] for t in (text, flat, crlf))
    assert a.claims == b.claims == c.claims


def test_other_separators_and_several_interchanges(examples):
    one = (examples / "835_ot_remittance.x12").read_text()
    two = _resep((examples / "277ca_ot_claim_ack.x12").read_text(), Separators("|", "!", ">", "\\"), "\n")
    three = _resep((examples / "271_ot_eligibility_response.x12").read_text(), Separators("^", "{", "}", "~"))
    result = decode((one + two + three).encode())
    kinds = [type(t).__name__ for t in result.transactions]
    assert kinds == ["Remittance", "Ack277", "Eligibility"]
    assert result.claim_acknowledgments[0].claims[1].statuses[0].entity == "82"
    assert result.eligibility[0].summaries()[0].service_type in ("30", "AD")
    assert {s.service_type for s in result.eligibility[0].summaries()} == {"30", "AD"}


@pytest.mark.parametrize("chunk", [1, 7, 105, 106, 4096])
def test_chunk_boundaries(examples, chunk):
    data = (examples / "277ca_ot_claim_ack.x12").read_bytes() * 2
    whole = list(SegmentReader(data))
    streamed = list(SegmentReader(io.BytesIO(data), chunk_size=chunk))
    assert len(whole) == 78
    assert streamed == whole


def test_segment_terminator_newline_only(examples):
    text = (examples / "999_accept_837p.x12").read_text().replace("~\n", "\n")
    text = text[:105] + "\n" + text[106:]
    assert decode(text).acknowledgments[0].sets[0].status == "A"


def test_path_and_file_objects(examples):
    p = examples / "999_accept_837p.x12"
    with open(p, "rb") as fh:
        assert decode(fh).acknowledgments[0].group_control_number == "101"
    assert decode(str(p)).acknowledgments[0].group_control_number == "101"
