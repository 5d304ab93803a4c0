"""The printable patient statement (PDF, drawn with reportlab).

Built ``invariant`` (no creation time or random document id inside), so the same statement
always gives the same bytes.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from decimal import Decimal

from reportlab.lib.pagesizes import LETTER
from reportlab.lib.utils import simpleSplit
from reportlab.pdfgen.canvas import Canvas

MARGIN = 54.0
LINE = 14.0
COLUMNS = (MARGIN, MARGIN + 70, 300.0, 370.0, 435.0, 498.0)  # text columns start here; amounts end 60 pt right of it


@dataclass
class StatementRow:
    service_date: str
    service: str
    charge: Decimal
    insurance_paid: Decimal
    adjustments: Decimal
    patient: Decimal


@dataclass
class StatementView:
    """Everything the printed statement shows (HRG/NMBA statement content)."""
    practice: str
    practice_contact: list[str]
    patient: str
    account_number: str
    statement_date: str
    due_date: str
    rows: list[StatementRow]
    payments: list[tuple[str, str, Decimal]]  # date, what (method, kind), amount
    responsibility: Decimal
    paid: Decimal
    adjusted: Decimal
    amount_due: Decimal
    notes: list[str] = field(default_factory=list)
    stage: str = ""  # a notice shown under the amount due (past due), empty on a first statement


def _usd(amount: Decimal) -> str:
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


class _Page:
    def __init__(self, canvas: Canvas) -> None:
        self.c = canvas
        self.y = LETTER[1] - MARGIN

    def need(self, lines: int = 1) -> None:
        if self.y - lines * LINE < MARGIN:
            self.c.showPage()
            self.y = LETTER[1] - MARGIN

    def text(self, x: float, s: str, *, size: float = 10, bold: bool = False, right: bool = False) -> None:
        self.c.setFont("Helvetica-Bold" if bold else "Helvetica", size)
        (self.c.drawRightString if right else self.c.drawString)(x, self.y, s)

    def next(self, lines: float = 1) -> None:
        self.y -= LINE * lines


def render(view: StatementView) -> bytes:
    """The statement as PDF bytes."""
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=LETTER, invariant=1, pageCompression=1)
    canvas.setTitle(f"Statement {view.statement_date}")
    canvas.setAuthor(view.practice)
    p = _Page(canvas)
    right = LETTER[0] - MARGIN
    p.text(MARGIN, view.practice, size=14, bold=True)
    p.text(right, "STATEMENT", size=14, bold=True, right=True)
    p.next()
    for line in view.practice_contact:
        p.text(MARGIN, line, size=9)
        p.next()
    p.next(0.5)
    for label, value in (("Patient", view.patient), ("Account number", view.account_number),
                         ("Statement date", view.statement_date), ("Due date", view.due_date)):
        p.text(MARGIN, f"{label}:", bold=True)
        p.text(MARGIN + 110, value)
        p.next()
    p.next(0.5)
    p.text(MARGIN, "Amount due:", size=12, bold=True)
    p.text(MARGIN + 110, _usd(view.amount_due), size=12, bold=True)
    p.next()
    if view.stage:
        p.text(MARGIN, view.stage, size=11, bold=True)
        p.next()
    p.next()

    heads = ("Date", "Service", "Charge", "Insurance paid", "Adjustments", "Your share")
    p.need(3)
    for n, head in enumerate(heads):
        p.text(COLUMNS[n] if n < 2 else COLUMNS[n] + 60, head, size=9, bold=True, right=n >= 2)
    p.next()
    for row in view.rows:
        p.need()
        p.text(COLUMNS[0], row.service_date, size=9)
        p.text(COLUMNS[1], row.service[:36], size=9)
        for n, amount in enumerate((row.charge, row.insurance_paid, row.adjustments, row.patient), start=2):
            p.text(COLUMNS[n] + 60, _usd(amount), size=9, right=True)
        p.next()
    p.next(0.5)
    if view.payments:
        p.need(2)
        p.text(MARGIN, "Your payments and account adjustments", bold=True)
        p.next()
        for when, what, amount in view.payments:
            p.need()
            p.text(COLUMNS[0], when, size=9)
            p.text(COLUMNS[1], what, size=9)
            p.text(COLUMNS[5] + 60, _usd(-amount), size=9, right=True)
            p.next()
        p.next(0.5)
    for label, amount in (("Your share after insurance", view.responsibility), ("Your payments", -view.paid),
                          ("Account adjustments", -view.adjusted), ("Amount due", view.amount_due)):
        p.need()
        p.text(COLUMNS[3], label, bold=label == "Amount due")
        p.text(COLUMNS[5] + 60, _usd(amount), bold=label == "Amount due", right=True)
        p.next()
    p.next()
    for note in view.notes:
        for line in simpleSplit(note, "Helvetica", 9, LETTER[0] - 2 * MARGIN):
            p.need()
            p.text(MARGIN, line, size=9)
            p.next()
    canvas.showPage()
    canvas.save()
    return out.getvalue()
