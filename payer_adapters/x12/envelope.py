"""ISA/GS/ST envelopes: the codec's one reader of them, and their writer.

:func:`walk` reads the segment stream with every count and control number checked::

    ISA ─┬─ GS ─┬─ ST … SE     (SE01 = segments ST..SE, SE02 = ST02)
         │      └─ GE          (GE01 = number of ST, GE02 = GS06)
         └─ IEA                (IEA01 = number of GS, IEA02 = ISA13)

and hands the segments between ST and SE to a per-transaction handler. Errors raised by a handler
are completed with the file position and the set control number before they propagate.

:func:`headers` reads the same ISA/GS/ST segments into the same records without checking
anything else: for naming a file's kind, or for answering a file (a 999) even when the checks
fail.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from payer_adapters.x12.errors import (
    DataElementError,
    EnvelopeError,
    StructureError,
    UnsupportedTransaction,
    X12Error,
    X12SyntaxError,
)
from payer_adapters.x12.partners import TradingPartner
from payer_adapters.x12.segments import Separators, SegmentReader, SegmentWriter, Source


@dataclass(slots=True)
class Interchange:
    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    date: str
    time: str
    version: str
    control_number: str
    ack_requested: bool
    usage: str
    separators: Separators


@dataclass(slots=True)
class Group:
    functional_id: str
    sender: str
    receiver: str
    date: str
    time: str
    control_number: str
    version: str


@dataclass(slots=True)
class SetHeader:
    """One transaction set's identity: ST01/ST02 and the version (ST03, else GS08)."""

    transaction: str
    control_number: str
    version: str
    interchange: Interchange
    group: Group
    segment_index: int = 0


class SetHandler(Protocol):
    """Consumes the segments of one transaction set (between ST and SE, exclusive)."""

    def feed(self, seg: list[str], position: int) -> Any:
        """``position`` is the IK302-style position (ST = 1). Return an item to stream, or None."""

    def finish(self) -> Any:
        """Called at SE after the count check; returns the decoded transaction."""


HandlerFactory = Callable[[SetHeader, int], SetHandler]


def _int(seg: list[str], pos: int, index: int, loop: str) -> int:
    raw = seg[pos] if pos < len(seg) else ""
    if not raw.isdigit():
        raise DataElementError(f"{seg[0]}{pos:02d} must be a number", segment_index=index,
                               segment_id=seg[0], loop_id=loop, element_position=pos, code="6")
    return int(raw)


#: ISA12 of every 5010 interchange; the only one this codec reads or writes.
INTERCHANGE_VERSION = "00501"


def _interchange_of(seg: list[str], seps: Separators) -> Interchange:
    """ISA as read (the tokeniser already made sure it has its 16 elements)."""
    return Interchange(seg[5], seg[6].strip(), seg[7], seg[8].strip(), seg[9], seg[10], seg[12],
                       seg[13], seg[14] == "1", seg[15], seps)


def _group_of(seg: list[str]) -> Group:
    """GS01-GS06 and GS08 as read (empty when missing)."""
    return Group(*(seg[i] if i < len(seg) else "" for i in (1, 2, 3, 4, 5, 6, 8)))


def _set_of(seg: list[str], isa: Interchange, gs: Group, index: int) -> SetHeader:
    """ST01, ST02 and the version: ST03, else GS08."""
    version = seg[3] if len(seg) > 3 and seg[3] else gs.version
    return SetHeader(seg[1] if len(seg) > 1 else "", seg[2] if len(seg) > 2 else "", version, isa, gs, index)


def _interchange(seg: list[str], seps: Separators, index: int) -> Interchange:
    """ISA with its control number and version checked."""
    if len(seg) != 17:
        raise X12SyntaxError("ISA must have 16 elements", segment_index=index, segment_id="ISA",
                             loop_id="ISA")
    ctl = seg[13]
    if len(ctl) != 9 or not ctl.isdigit():
        raise DataElementError("ISA13 must be 9 digits", segment_index=index, segment_id="ISA",
                               loop_id="ISA", element_position=13, code="6", level="interchange")
    if seg[12] != INTERCHANGE_VERSION:
        # e.g. a 4010 interchange (00401) whose ST03 claims a 5010 guide: its loops differ
        raise UnsupportedTransaction(f"interchange version {seg[12][:5]} (ISA12) is not supported; "
                                     f"this codec reads 5010 ({INTERCHANGE_VERSION})", segment_index=index,
                                     segment_id="ISA", loop_id="ISA", element_position=12, code="017",
                                     level="interchange")
    return _interchange_of(seg, seps)


def headers(source: Source) -> Iterator[SetHeader]:
    """Each transaction set's header (its ST with the ISA and GS around it), in file order,
    checking nothing but that the file can be tokenised (:class:`X12SyntaxError` otherwise). A
    set outside any GS gets an empty group."""
    reader = SegmentReader(source)
    isa: Interchange | None = None
    gs = Group("", "", "", "", "", "", "")
    for seg in reader:
        tag = seg[0]
        if tag == "ISA":
            isa = _interchange_of(seg, reader.separators or Separators())
        elif tag == "GS":
            gs = _group_of(seg)
        elif tag == "ST" and isa is not None:
            yield _set_of(seg, isa, gs, reader.index)


def walk(source: Source, factory: HandlerFactory) -> Iterator[Any]:
    """Yield what handlers stream from ``feed`` and each handler's ``finish()`` result.

    Raises an :class:`X12Error` subclass at the first envelope or content problem.
    """
    reader = SegmentReader(source)
    isa: Interchange | None = None
    gs: Group | None = None
    st: SetHeader | None = None
    handler: SetHandler | None = None
    st_count = 0
    gs_count = 0
    set_count = 0
    index = 0
    for seg in reader:
        index = reader.index
        tag = seg[0]
        if st is not None:
            st_count += 1
            if tag != "SE":
                if tag in ("ST", "GE", "IEA", "GS", "ISA"):
                    raise EnvelopeError(f"{tag} found before SE closed set {st.control_number}",
                                        segment_index=index, segment_id=tag, set_position=st_count,
                                        control_number=st.control_number, code="2")
                try:
                    item = handler.feed(seg, st_count)  # type: ignore[union-attr]
                except X12Error as err:
                    _complete(err, index, st_count, st.control_number)
                    raise
                if item is not None:
                    yield item
                continue
            _check_trailer(seg, index, st_count, st.control_number, counts="segments", within="set", header="ST02",
                           codes=("4", "3"), set_position=st_count, control_number=st.control_number)
            try:
                result = handler.finish()  # type: ignore[union-attr]
            except X12Error as err:
                _complete(err, index, st_count, st.control_number)
                raise
            if result is not None:
                yield result
            st = handler = None
            continue
        if tag == "ISA":
            if isa is not None:
                raise EnvelopeError("ISA found before IEA closed the previous interchange",
                                    segment_index=index, segment_id="ISA", level="interchange", code="024")
            isa = _interchange(seg, reader.separators or Separators(), index)
            gs_count = 0
        elif tag == "GS":
            if isa is None or gs is not None:
                raise EnvelopeError("GS outside an interchange or inside another group",
                                    segment_index=index, segment_id="GS", level="group", code="2")
            if len(seg) < 9:
                raise EnvelopeError("GS must have 8 elements", segment_index=index, segment_id="GS",
                                    level="group", code="1")
            gs = _group_of(seg)
            _int(seg, 6, index, "GS")
            gs_count += 1
            set_count = 0
        elif tag == "ST":
            if gs is None or isa is None:
                raise EnvelopeError("ST outside a functional group", segment_index=index,
                                    segment_id="ST", code="2")
            if len(seg) < 3 or not seg[2]:
                raise EnvelopeError("ST02 control number missing", segment_index=index,
                                    segment_id="ST", element_position=2, code="1")
            st = _set_of(seg, isa, gs, index)
            st_count = 1
            set_count += 1
            try:
                handler = factory(st, index)
            except X12Error as err:
                _complete(err, index, 1, st.control_number)
                raise
        elif tag == "GE":
            if gs is None:
                raise EnvelopeError("GE without GS", segment_index=index, segment_id="GE",
                                    level="group", code="2")
            _check_trailer(seg, index, set_count, gs.control_number, counts="transaction sets", within="group",
                           header="GS06", codes=("5", "4"), level="group")
            gs = None
        elif tag == "IEA":
            if isa is None or gs is not None:
                raise EnvelopeError("IEA without ISA or before GE", segment_index=index,
                                    segment_id="IEA", level="interchange", code="023")
            _check_trailer(seg, index, gs_count, isa.control_number, counts="functional groups", within="interchange",
                           header="ISA13", codes=("021", "001"), level="interchange")
            isa = None
        elif tag == "TA1" and isa is not None and gs is None:
            continue
        else:
            raise StructureError(f"segment {tag[:3]} outside a transaction set", segment_index=index,
                                 segment_id=tag[:3])
    if st is not None:
        raise X12SyntaxError(f"file ends inside transaction set {st.control_number} (no SE)",
                             segment_index=index, segment_id="SE", control_number=st.control_number,
                             level="transaction")
    if gs is not None:
        raise X12SyntaxError("file ends inside a functional group (no GE)", segment_index=index,
                             segment_id="GE", level="group")
    if isa is not None:
        raise X12SyntaxError("file ends inside an interchange (no IEA)", segment_index=index,
                             segment_id="IEA")
    if index == 0:
        raise X12SyntaxError("file is empty")


def _check_trailer(seg: list[str], index: int, count: int, control: str, *, counts: str, within: str, header: str,
                   codes: tuple[str, str], **where: Any) -> None:
    """SE, GE and IEA: element 1 counts what the envelope holds, element 2 repeats the control
    number of its header (ST02, GS06, ISA13); ``codes`` are the 999/TA1 codes of each mismatch."""
    tag = seg[0]
    declared = _int(seg, 1, index, tag)
    if declared != count:
        raise EnvelopeError(f"{tag}01 says {declared} {counts}, the {within} has {count}", segment_index=index,
                            segment_id=tag, element_position=1, code=codes[0], **where)
    if (seg[2] if len(seg) > 2 else "") != control:
        raise EnvelopeError(f"{tag}02 does not match {header}", segment_index=index, segment_id=tag,
                            element_position=2, code=codes[1], **where)


def _complete(err: X12Error, index: int, position: int, control: str) -> None:
    if err.segment_index is None:
        err.segment_index = index
    if err.set_position is None and err.level in ("segment", "element", "transaction"):
        err.set_position = position
    if err.control_number is None:
        err.control_number = control


# -- writing -----------------------------------------------------------------------------------

class SetWriter(SegmentWriter):
    """A transaction set being written; remembers its ST02 for the SE."""

    def __init__(self, separators: Separators, control: str, *, newline: bool) -> None:
        super().__init__(separators, newline=newline)
        self.control = control


@dataclass
class EnvelopeWriter:
    """Writes ISA/GS … GE/IEA around transaction sets, keeping SE01/GE01/IEA01 right.

    Use :meth:`begin_set` / :meth:`end_set` for each transaction set; the body segments go through
    the returned :class:`SegmentWriter` whose ``count`` drives SE01.
    """

    partner: TradingPartner
    isa_control: int
    gs_control: int
    functional_id: str
    version: str
    date: str  # CCYYMMDD
    time: str  # HHMM
    newline: bool = False
    _body: list[str] = field(default_factory=list)
    _sets: int = 0

    def begin_set(self, transaction: str, control: int, *, st03: bool = True) -> SetWriter:
        ctl = f"{control:04d}"
        w = SetWriter(self.partner.separators, ctl, newline=self.newline)
        if st03:
            w.seg("ST", transaction, ctl, self.version)
        else:
            w.seg("ST", transaction, ctl)
        return w

    @property
    def interchange_control(self) -> str:
        """ISA13 and IEA02 as written."""
        return f"{self.isa_control:09d}"

    @property
    def group_control(self) -> str:
        """GS06 and GE02 as written."""
        return str(self.gs_control)

    def end_set(self, w: SetWriter) -> None:
        w.seg("SE", w.count + 1, w.control)
        self._body.append(w.text())
        self._sets += 1

    def text(self) -> str:
        p = self.partner
        s = p.separators
        w = SegmentWriter(s, newline=self.newline)
        isa = s.element.join([
            "ISA", "00", " " * 10, "00", " " * 10,
            p.sender_qualifier, p.sender_id.ljust(15)[:15],
            p.receiver_qualifier, p.receiver_id.ljust(15)[:15],
            self.date[2:], self.time, s.repetition, "00501", self.interchange_control,
            "1" if p.ack_requested else "0", p.usage_indicator, s.component,
        ])
        w.raw(isa)
        w.seg("GS", self.functional_id, p.application_sender, p.application_receiver, self.date,
              self.time, self.group_control, "X", self.version)
        head = w.text()
        t = SegmentWriter(s, newline=self.newline)
        t.seg("GE", self._sets, self.group_control)
        t.seg("IEA", 1, self.interchange_control)
        return head + "".join(self._body) + t.text()
