"""Tokenising and writing X12 segments.

The reader is a generator over ``list[str]`` segments (``seg[0]`` is the segment id) that reads its
source in chunks, so memory stays bounded whatever the file size. Separators are taken from each
ISA (element = 4th character, repetition = ISA11, component = ISA16, segment terminator = the
character after ISA16), so a file may hold several interchanges with different separators.
Newlines (CR/LF) and indentation between segments are ignored, and so are a UTF-8 byte-order mark
and whitespace before an ISA; anything else where an ISA should start is refused, naming what was
found (never echoing the data).
"""
from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, TextIO, Union

from payer_adapters.x12.errors import X12SyntaxError

ISA_LENGTH = 106  # fixed-length ISA including its terminator
CHUNK = 1 << 18  # 256 KiB: bounds the reader's memory whatever the file size

Source = Union[bytes, bytearray, str, Path, BinaryIO, TextIO]


@dataclass(frozen=True, slots=True)
class Separators:
    element: str = "*"
    repetition: str = "^"
    component: str = ":"
    segment: str = "~"

    @classmethod
    def from_isa(cls, isa: str, *, segment_index: int | None = None) -> "Separators":
        """Separators of one interchange, read from its first 106 characters."""
        if len(isa) < ISA_LENGTH or not isa.startswith("ISA"):
            raise X12SyntaxError("ISA segment is shorter than 106 characters or missing",
                                 segment_index=segment_index, segment_id="ISA", loop_id="ISA")
        element = isa[3]
        fields = isa[: ISA_LENGTH - 1].split(element)
        if len(fields) != 17:
            raise X12SyntaxError(f"ISA has {len(fields) - 1} elements, expected 16",
                                 segment_index=segment_index, segment_id="ISA", loop_id="ISA")
        # 4010-style ISA11 is the standards identifier ``U``, not a separator: a letter never is one.
        repetition = fields[11] if len(fields[11]) == 1 and not fields[11].isalnum() else "^"
        component = fields[16]
        segment = isa[ISA_LENGTH - 1]
        chars = {element, component, segment}
        if len(component) != 1 or len(chars) != 3 or element.isalnum() or segment.isalnum():
            raise X12SyntaxError("ISA separators are not three distinct special characters",
                                 segment_index=segment_index, segment_id="ISA", loop_id="ISA",
                                 element_position=16)
        return cls(element, repetition, component, segment)


def _is_path(text: str) -> bool:
    """A ``str`` source is a file name only when it is short, one line, not X12 and an existing file."""
    return (len(text) < 4096 and "\n" not in text and not text.lstrip().startswith("ISA")
            and os.path.isfile(text))


def _text_chunks(source: Source, chunk_size: int) -> Iterator[str]:
    """Yield decoded text chunks from bytes, a string, a path or a file object."""
    if isinstance(source, str):
        if not _is_path(source):
            yield source
            return
        source = Path(source)
    if isinstance(source, (bytes, bytearray)):
        yield bytes(source).decode("utf-8", errors="replace")
        return
    if isinstance(source, Path):
        with open(source, "rb") as fh:
            yield from _text_chunks(fh, chunk_size)
        return
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        block = source.read(chunk_size)
        if not block:
            break
        yield block if isinstance(block, str) else decoder.decode(block)
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


#: What may stand before an ISA: whitespace and byte-order marks (files saved by editors, files
#: concatenated with their BOMs).
_BEFORE_ISA = re.compile(r"[\s\ufeff]+")
_SEGMENT_START = re.compile(r"([A-Za-z][A-Za-z0-9]{1,2})[^A-Za-z0-9\s]")


def _skip_before_isa(text: str) -> str:
    m = _BEFORE_ISA.match(text)
    return text[m.end():] if m else text


def _found(text: str) -> tuple[str, str | None]:
    """What stands where an ISA should: a description and, when it looks like a segment, its id.
    Never the data itself (it may be member data)."""
    head = text[:8]
    if "\ufffd" in head or "\x00" in head:
        return "bytes that are not UTF-8 text (UTF-16 or a binary file?)", None
    if head[:1] in ("{", "["):
        return "JSON, not X12", None
    if head[:1] == "<":
        return "XML or HTML, not X12", None
    if head.startswith("%PDF"):
        return "a PDF, not X12", None
    m = _SEGMENT_START.match(text)
    if m:
        tag = m[1]
        if tag.upper() == "ISA":
            return f"segment id {tag!r} (segment ids are upper case)", tag
        return f"segment {tag}: the file has no ISA interchange header", tag
    return "text that is not an X12 segment", None


class SegmentReader:
    """Iterate segments of one or more interchanges.

    ``index`` is the 1-based position of the last segment yielded in the whole file;
    ``separators`` are those of the current interchange.
    """

    def __init__(self, source: Source, *, chunk_size: int = CHUNK) -> None:
        self._chunks = _text_chunks(source, chunk_size)
        self.index = 0
        self.separators: Separators | None = None

    def _more(self) -> str:
        return next(self._chunks, "")

    def __iter__(self) -> Iterator[list[str]]:
        buf = ""
        eof = False
        while True:
            # Start of an interchange: find ISA and its separators.
            buf = _skip_before_isa(buf)
            while len(buf) < ISA_LENGTH and not eof:
                more = self._more()
                if not more:
                    eof = True
                buf = _skip_before_isa(buf + more)
            if not buf:
                return
            if not buf.startswith("ISA"):
                what, tag = _found(buf)
                raise X12SyntaxError(f"expected an ISA segment, found {what}", segment_index=self.index + 1,
                                     segment_id=tag, loop_id="ISA")
            seps = Separators.from_isa(buf, segment_index=self.index + 1)
            self.separators = seps
            term, ele = seps.segment, seps.element
            strip_nl = term not in "\r\n"
            restart = False
            while not restart:
                parts = buf.split(term)
                buf = parts.pop()
                for i, raw in enumerate(parts):
                    # line breaks and indentation between segments; a segment id never starts with
                    # whitespace, and trailing spaces of the last element are data, so kept
                    raw = raw.lstrip(" \t\r\n").rstrip("\r\n")
                    if not raw:
                        continue
                    self.index += 1
                    seg = raw.split(ele)
                    yield seg
                    if seg[0] == "IEA":
                        # The next interchange may use other separators: re-read its ISA.
                        rest = parts[i + 1:]
                        if rest:
                            buf = term.join(rest) + term + buf
                        restart = True
                        break
                if restart:
                    break
                if eof:
                    tail = buf.strip("\r\n\t ") if strip_nl else buf.strip()
                    if tail:
                        self.index += 1
                        raise X12SyntaxError("file ends inside a segment (no segment terminator)",
                                             segment_index=self.index, segment_id=tail.split(ele)[0][:3])
                    return
                more = self._more()
                if not more:
                    eof = True
                else:
                    buf += more


def iter_segments(source: Source) -> Iterator[list[str]]:
    """Shorthand for ``iter(SegmentReader(source))``."""
    return iter(SegmentReader(source))


class SegmentWriter:
    """Build X12 text with given separators, counting segments for SE01.

    ``seg("CLM", "PCN1", "250", "", "", ("11", "B", "1"))`` writes ``CLM*PCN1*250***11:B:1~``:
    tuples become composites, trailing empty elements are dropped.
    """

    def __init__(self, separators: Separators, *, newline: bool = False) -> None:
        self.seps = separators
        self._out: list[str] = []
        self._term = separators.segment + ("\n" if newline else "")
        self.count = 0  # segments since the last reset (ST counts itself)

    def seg(self, tag: str, *elements: object) -> None:
        ele = self.seps.element
        comp = self.seps.component
        vals = []
        for e in elements:
            if e is None:
                vals.append("")
            elif isinstance(e, tuple):
                c = list(e)
                while c and (c[-1] is None or c[-1] == ""):
                    c.pop()
                vals.append(comp.join("" if x is None else str(x) for x in c))
            else:
                vals.append(str(e))
        while vals and vals[-1] == "":
            vals.pop()
        self._out.append(tag + (ele + ele.join(vals) if vals else "") + self._term)
        self.count += 1

    def raw(self, text: str) -> None:
        self._out.append(text + self._term)

    def text(self) -> str:
        return "".join(self._out)


def to_text(source: Source) -> str:
    """Whole source as text (small files only)."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source).decode("utf-8", errors="replace")
    if isinstance(source, Path):
        return source.read_text("utf-8", errors="replace")
    if isinstance(source, str):
        return Path(source).read_text("utf-8", errors="replace") if _is_path(source) else source
    data = source.read()
    return data if isinstance(data, str) else data.decode("utf-8", errors="replace")


__all__ = ["Separators", "SegmentReader", "SegmentWriter", "iter_segments", "to_text", "Source"]
