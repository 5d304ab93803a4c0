"""Bad input: a clear error naming the position and loop, and no result at all."""
from __future__ import annotations

import pytest

from payer_adapters.x12 import (
    DataElementError,
    EnvelopeError,
    StructureError,
    UnsupportedTransaction,
    X12Error,
    X12SyntaxError,
    decode,
    validate,
)


def _text(examples, name: str) -> str:
    return (examples / name).read_text()


def _raises(data: str, cls: type[X12Error]) -> X12Error:
    with pytest.raises(cls) as exc:
        decode(data)
    assert isinstance(exc.value, X12Error)
    errs = validate(data, use_pyx12=False)
    assert errs and isinstance(errs[0], cls)
    return exc.value


def test_truncated_file(examples):
    text = _text(examples, "835_ot_remittance.x12")
    cut = text[: text.index("SVC*HC:97530")]
    err = _raises(cut, X12SyntaxError)
    assert err.segment_id == "SE" and err.control_number == "0001"
    assert "ends inside transaction set" in str(err)


def test_truncated_mid_segment(examples):
    text = _text(examples, "999_accept_837p.x12").rstrip()
    err = _raises(text[:-1], X12SyntaxError)  # no final terminator
    assert "no segment terminator" in err.message and err.segment_index == 10


def test_not_x12():
    err = _raises("hello world, this is not an interchange" * 5, X12SyntaxError)
    assert err.segment_id == "hel" or err.loop_id == "ISA"


def test_wrong_se_count(examples):
    text = _text(examples, "835_ot_remittance.x12").replace("SE*34*0001", "SE*33*0001")
    err = _raises(text, EnvelopeError)
    assert (err.segment_id, err.element_position, err.set_position, err.code) == ("SE", 1, 34, "4")
    assert "SE01 says 33" in str(err) and "segment #" in str(err)


def test_wrong_ge_and_iea_counts(examples):
    text = _text(examples, "999_accept_837p.x12")
    err = _raises(text.replace("GE*1*501", "GE*2*501"), EnvelopeError)
    assert err.segment_id == "GE" and err.level == "group"
    err = _raises(text.replace("IEA*1*", "IEA*3*"), EnvelopeError)
    assert err.segment_id == "IEA" and err.level == "interchange"


def test_mismatched_control_numbers(examples):
    text = _text(examples, "999_accept_837p.x12")
    assert "SE*6*0001" in text
    assert _raises(text.replace("SE*6*0001", "SE*6*0002"), EnvelopeError).segment_id == "SE"
    assert _raises(text.replace("GE*1*501", "GE*1*502"), EnvelopeError).message == "GE02 does not match GS06"
    assert _raises(text.replace("IEA*1*000000501", "IEA*1*000000999"), EnvelopeError).element_position == 2


def test_unknown_transaction_type(examples):
    text = _text(examples, "999_accept_837p.x12").replace("ST*999*0001*005010X231A1", "ST*834*0001*005010X220A1")
    err = _raises(text, UnsupportedTransaction)
    assert err.segment_id == "ST" and "834" in err.message and err.set_position == 1


def test_bad_date(examples):
    text = _text(examples, "835_ot_remittance.x12").replace("DTM*472*20250114", "DTM*472*20251399", 1)
    err = _raises(text, DataElementError)
    assert (err.segment_id, err.element_position, err.code, err.loop_id) == ("DTM", 2, "8", None) or \
        (err.segment_id, err.element_position, err.code) == ("DTM", 2, "8")
    assert err.set_position is not None and err.segment_index is not None


def test_bad_amount(examples):
    text = _text(examples, "835_ot_remittance.x12").replace("SVC*HC:97165:GO*150*", "SVC*HC:97165:GO*1S0*")
    err = _raises(text, DataElementError)
    assert (err.segment_id, err.element_position) == ("SVC", 2)
    assert "1S0" not in str(err)  # values are not echoed


def test_segments_out_of_order(examples):
    text = _text(examples, "835_ot_remittance.x12")
    lines = text.splitlines()
    svc = next(i for i, line in enumerate(lines) if line.startswith("SVC"))
    clp = next(i for i, line in enumerate(lines) if line.startswith("CLP"))
    lines[svc], lines[clp] = lines[clp], lines[svc]
    err = _raises("\n".join(lines) + "\n", StructureError)
    assert err.segment_id == "SVC" and err.loop_id == "2000" and err.set_position == clp - 1
    # BPR must come first
    text2 = text.replace("BPR*", "XXX*", 1)
    assert _raises(text2, StructureError).loop_id == "HEADER"


def test_999_out_of_order(examples):
    text = _text(examples, "999_reject_837p.x12").replace("AK2*837*0001*005010X222A1~\nIK3", "IK3")
    assert "IK3" in text
    err = _raises(text.replace("SE*9*", "SE*8*"), StructureError)
    assert err.segment_id == "IK3"


def test_no_partial_results_when_a_later_interchange_is_bad(examples):
    good = _text(examples, "835_ot_remittance.x12")
    bad = good.replace("SE*34*0001", "SE*30*0001")
    with pytest.raises(EnvelopeError):
        decode(good + bad)


def test_error_messages_carry_no_member_data(examples):
    text = _text(examples, "835_ot_remittance.x12").replace("NM1*QC*1*DOE*JANE****MI*1EG4TE5MK73",
                                                            "NM1*QC*1*DOE*JANE****MI*1EG4TE5MK73*EXTRA", 1)
    text = text.replace("DTM*050*20250115", "DTM*050*2025011X")
    with pytest.raises(X12Error) as exc:
        decode(text)
    assert "DOE" not in str(exc.value) and "1EG4TE5MK73" not in str(exc.value)
    assert exc.value.to_dict()["segment_id"] == "DTM"
