"""Validation: our structural checks (envelopes, counts, control numbers, loop order, dates and
amounts, 835 balancing) plus pyx12's implementation-guide checks for the guides it has a map for:
pyx12's own (5010: 837P, 835, 277CA, 999) and the 276 005010X212 map the product adds
(:mod:`payer_adapters.x12.pyx12_maps`). 270/271 and the X212 277 have none.

pyx12's exit code is unusable, so :func:`pyx12_errors` calls ``x12n_document`` in-process, reads its
boolean result and collects the ERROR records it logs.
"""
from __future__ import annotations

import io
import logging
import re


from payer_adapters.x12.decode import decoder_for
from payer_adapters.x12.decode_835 import Remittance
from payer_adapters.x12.envelope import SetHeader, SetHandler, walk
from payer_adapters.x12.pyx12_maps import GUIDES, map_path
from payer_adapters.x12.errors import DataElementError, StructureError, X12Error, X12SyntaxError
from payer_adapters.x12.segments import Source, to_text

#: (GS01, GS08) of the 5010 groups pyx12 can validate with the assembled maps.
PYX12_GUIDES = {("HC", "005010X222A1"), ("HP", "005010X221A1"), ("HN", "005010X214"), ("FA", "005010X231A1"),
                ("FA", "005010X231")} | {(g.functional_id, g.version) for g in GUIDES}
_LINE = re.compile(r"Line:(\d+)")
_ELEMENT = re.compile(r"\(([A-Z][A-Z0-9]{1,2}?)(\d{2})\)")
_NOISE = ("Failed to create 999 response",)
#: pyx12 quotes the offending value in parentheses; keep element references like "(SV103)" only,
#: so no member data reaches our messages.
_VALUE = re.compile(r"\((?![A-Z][A-Z0-9]{1,2}\d{2}\))[^()]*\)")


class _Passthrough:
    """Envelope-only handler for outbound sets we write but do not decode (270)."""

    def feed(self, seg: list[str], position: int) -> None:
        return None

    def finish(self) -> None:
        return None


def _factory(header: SetHeader, index: int) -> SetHandler:
    if (header.transaction, header.version) == ("270", "005010X279A1"):
        return _Passthrough()
    return decoder_for(header, index)


def structural_errors(data: Source) -> list[X12Error]:
    """Our own checks. The first envelope/structure error stops the walk (later positions would be
    unreliable); 835 imbalances are all reported."""
    errors: list[X12Error] = []
    try:
        for item in walk(data, _factory):
            if isinstance(item, Remittance):
                errors.extend(item.balance_errors)
    except X12Error as err:
        errors.append(err)
    return errors


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if not msg.startswith(_NOISE):
            self.messages.append(msg)


def _groups(text: str) -> set[tuple[str, str]]:
    """(GS01, GS08) of every functional group."""
    if len(text) < 106 or not text.startswith("ISA"):
        return set()
    ele, term = text[3], text[105]
    found = set()
    for seg in text.split(term):
        seg = seg.strip()
        if seg.startswith("GS" + ele):
            parts = seg.split(ele)
            if len(parts) > 8:
                found.add((parts[1], parts[8]))
    return found


def pyx12_errors(data: Source) -> list[X12Error] | None:
    """pyx12's verdict as errors (empty list = OK), or ``None`` when pyx12 has no map for the file."""
    text = to_text(data)
    if not _pyx12_can_read(text):
        return None
    # pyx12 loads only when it validates: ``therabridge x12 decode`` and the server never need it.
    import pyx12.params
    import pyx12.x12n_document

    logger = logging.getLogger("pyx12")
    capture = _Capture()
    old_propagate = logger.propagate
    logger.addHandler(capture)
    logger.propagate = False
    try:
        ok = pyx12.x12n_document.x12n_document(param=pyx12.params.params(), src_file=io.StringIO(text),
                                               fd_997=io.StringIO(), fd_html=None, map_path=map_path())
    except Exception as exc:  # pyx12 raises its own engine errors on maps it cannot walk
        return [StructureError(f"pyx12 could not validate the file: {type(exc).__name__}", code="pyx12")]
    finally:
        logger.removeHandler(capture)
        logger.propagate = old_propagate
    errors: list[X12Error] = []
    for msg in capture.messages:
        m = _LINE.search(msg)
        text_part = _VALUE.sub("(…)", msg.split(" - ", 1)[-1])
        ele = _ELEMENT.search(text_part)
        cls = DataElementError if ele else StructureError
        errors.append(cls(f"pyx12: {text_part}", segment_index=int(m.group(1)) if m else None,
                          segment_id=ele.group(1) if ele else None,
                          element_position=int(ele.group(2)) if ele else None, code="pyx12"))
    if not ok and not errors:
        errors.append(StructureError("pyx12: Failure without a message", code="pyx12"))
    return errors


def validate(data: Source, *, use_pyx12: bool = True) -> list[X12Error]:
    """All problems found, ours first then pyx12's; empty means valid. Bad content is reported in
    the list, never raised. pyx12 is skipped when the file cannot even be tokenised."""
    errors = structural_errors(data)
    if use_pyx12 and not any(isinstance(e, X12SyntaxError) for e in errors):
        extra = pyx12_errors(data)
        if extra:
            errors.extend(extra)
    return errors


def _pyx12_can_read(text: str) -> bool:
    groups = _groups(text)
    return bool(groups) and groups <= PYX12_GUIDES


def pyx12_available_for(data: Source) -> bool:
    return _pyx12_can_read(to_text(data))


__all__ = ["validate", "structural_errors", "pyx12_errors", "pyx12_available_for"]
