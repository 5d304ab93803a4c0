"""What may come before an ISA: a UTF-8 byte-order mark, whitespace and line breaks (and
indentation between segments) are accepted; anything else is refused with an error that says
what was found instead of the ISA — without echoing the data."""
from __future__ import annotations

import io

import pytest

from payer_adapters.x12 import UnsupportedTransaction, X12SyntaxError, decode

from .envelopes import interchange

ACK = interchange("FA", "005010X231A1", "999", [["AK1*HC*101*005010X222A1", "AK2*837*0001*005010X222A1",
                                                 "IK5*A", "AK9*A*1*1*1"]])


def _status(source) -> str:
    return decode(source).acknowledgments[0].sets[0].status


@pytest.mark.parametrize("prefix", [b"\xef\xbb\xbf", b"\n\r\n  \t", b"\xef\xbb\xbf\r\n   ", b"  \n\xef\xbb\xbf"])
def test_bom_and_leading_whitespace_are_accepted(prefix):
    data = prefix + ACK.encode()
    assert _status(data) == "A"
    assert _status(io.BytesIO(data)) == "A"
    assert _status(data.decode("utf-8")) == "A"


def test_bom_file_on_disk(tmp_path):
    path = tmp_path / "ack.999"
    path.write_bytes(b"\xef\xbb\xbf" + ACK.encode())
    assert _status(path) == "A" and _status(str(path)) == "A"


def test_indented_segments_are_accepted():
    indented = "\n".join("    " + line if not line.startswith("ISA") else line for line in ACK.splitlines())
    assert _status("\ufeff  " + indented) == "A"


def test_two_interchanges_each_with_a_bom():
    both = ("\ufeff" + ACK + "\ufeff\n" + ACK).encode()
    assert [a.sets[0].status for a in decode(both).acknowledgments] == ["A", "A"]


@pytest.mark.parametrize("data, found, segment_id", [
    (b"ST*835*0001~BPR*I*10*C*ACH~SE*3*0001~", "found segment ST", "ST"),
    (b'{"transactions": []}' + b" " * 120, "found JSON", None),
    (b"<?xml version='1.0'?><ClaimAck/>" + b" " * 100, "found XML", None),
    ("\ufeffISA".encode("utf-16") + b"*00*" * 40, "not UTF-8 text", None),
    (b"hello world, this is not an interchange" * 4, "not an X12 segment", None),
    (b"isa*00*" + b" " * 120, "upper case", "isa"),
])
def test_anything_else_before_isa_is_named(data, found, segment_id):
    with pytest.raises(X12SyntaxError) as err:
        decode(data)
    assert found in str(err.value) and "expected an ISA segment" in str(err.value)
    assert err.value.segment_id == segment_id and err.value.segment_index == 1
    assert "hello" not in str(err.value) and "transactions" not in str(err.value)


def test_a_4010_interchange_is_refused_at_isa12():
    """ISA12 00401 with an ST03 that claims a 5010 guide: the loops differ, so refuse, saying why."""
    text = interchange("HB", "005010X279A1", "271", [["BHT*0022*11*R1*20250110*1200"]], isa12="00401")
    with pytest.raises(UnsupportedTransaction) as err:
        decode(text)
    assert (err.value.segment_id, err.value.element_position, err.value.level) == ("ISA", 12, "interchange")
    assert "00401" in str(err.value)
