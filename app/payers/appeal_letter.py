"""The printable appeal letter (PDF, drawn with reportlab like the patient statement).

Built ``invariant`` (no creation time or random document id inside): the same appeal always
gives the same bytes, so a letter made again is recognisably the same letter.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

from reportlab.lib.pagesizes import LETTER
from reportlab.lib.utils import simpleSplit
from reportlab.pdfgen.canvas import Canvas

MARGIN = 60.0
LINE = 14.0
WIDTH = LETTER[0] - 2 * MARGIN


@dataclass
class LetterView:
    """Everything the letter says: who writes to whom about which claim, the codes the payer gave,
    the argument for the denial's category and the enclosures."""

    practice: str
    practice_contact: list[str]
    date: str
    payer: str
    subject: str  # "Request for redetermination"
    facts: list[tuple[str, str]]  # (label, value): patient, member id, claim numbers, dates of service …
    codes: list[str]  # "CO-50: These are non-covered services …"
    argument: list[str]  # paragraphs
    enclosures: list[str]
    signature: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # each disputed line: date, service, codes, amount


class _Writer:
    def __init__(self, canvas: Canvas) -> None:
        self.c = canvas
        self.y = LETTER[1] - MARGIN

    def line(self, text: str, *, size: float = 10, bold: bool = False, x: float = MARGIN) -> None:
        if self.y < MARGIN + LINE:
            self.c.showPage()
            self.y = LETTER[1] - MARGIN
        self.c.setFont("Helvetica-Bold" if bold else "Helvetica", size)
        self.c.drawString(x, self.y, text)
        self.y -= LINE

    def paragraph(self, text: str, *, size: float = 10, indent: float = 0) -> None:
        for part in simpleSplit(text, "Helvetica", size, WIDTH - indent) or [""]:
            self.line(part, size=size, x=MARGIN + indent)

    def gap(self, lines: float = 0.5) -> None:
        self.y -= LINE * lines


def render(view: LetterView) -> bytes:
    """The letter as PDF bytes."""
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=LETTER, invariant=1, pageCompression=1)
    canvas.setTitle(view.subject)
    canvas.setAuthor(view.practice)
    w = _Writer(canvas)
    w.line(view.practice, size=14, bold=True)
    for line in view.practice_contact:
        w.line(line, size=9)
    w.gap()
    w.line(view.date)
    w.line(view.payer, bold=True)
    w.gap()
    w.line(view.subject, size=12, bold=True)
    for label, value in view.facts:
        w.paragraph(f"{label}: {value}", indent=0)
    w.gap()
    w.line("Denial codes on the payer's decision", bold=True)
    for code in view.codes:
        w.paragraph(f"- {code}", indent=10)
    w.gap()
    if view.lines:
        w.line("Lines disputed", bold=True)
        for line in view.lines:
            w.paragraph(f"- {line}", indent=10)
        w.gap()
    for paragraph in view.argument:
        w.paragraph(paragraph)
        w.gap()
    if view.enclosures:
        w.line("Enclosures", bold=True)
        for n, enclosure in enumerate(view.enclosures, start=1):
            w.paragraph(f"{n}. {enclosure}", indent=10)
        w.gap()
    for line in view.signature:
        w.line(line)
    canvas.showPage()
    canvas.save()
    return out.getvalue()
