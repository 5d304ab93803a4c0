"""The weekly KPI summary as a one-page PDF (reportlab): each KPI's value for the week, the
previous week's and the change, with whether the change is an improvement.

Built ``invariant`` (no creation time or random document id inside) and from the figures only,
so the same week with the same figures always gives the same bytes and a rerun stores nothing.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date

from reportlab.lib.pagesizes import LETTER
from reportlab.pdfgen.canvas import Canvas

MARGIN = 54.0
LINE = 16.0
COLUMNS = (MARGIN, 300.0, 390.0, 470.0)  # KPI name; then right edges of the three figures
DASH = "-"


@dataclass(frozen=True)
class KpiLine:
    title: str
    unit: str  # UCUM: "d" (days), else a fraction (0..1, shown as a percentage)
    value: float | None
    previous: float | None
    improvement: str  # "increase" or "decrease" is better


def figure(value: float | None, unit: str) -> str:
    if value is None:
        return DASH
    return f"{value:.1f} d" if unit == "d" else f"{value * 100:.1f} %"


def change(line: KpiLine) -> tuple[str, str]:
    """(the change as text, "better" / "worse" / "")."""
    if line.value is None or line.previous is None:
        return DASH, ""
    delta = line.value - line.previous
    text = f"{delta:+.1f} d" if line.unit == "d" else f"{delta * 100:+.1f} pts"
    if round(delta, 6) == 0:
        return text, ""
    better = (delta > 0) == (line.improvement == "increase")
    return text, "better" if better else "worse"


def render(*, practice: str, week: str, start: date, end: date, lines: list[KpiLine]) -> bytes:
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=LETTER, invariant=1, pageCompression=0)
    canvas.setTitle(f"KPI summary {week}")
    canvas.setAuthor(practice)
    y = LETTER[1] - MARGIN
    right = LETTER[0] - MARGIN

    def text(x: float, s: str, *, size: float = 10, bold: bool = False, align_right: bool = False) -> None:
        canvas.setFont("Helvetica-Bold" if bold else "Helvetica", size)
        (canvas.drawRightString if align_right else canvas.drawString)(x, y, s)

    text(MARGIN, practice, size=14, bold=True)
    text(right, "WEEKLY KPI SUMMARY", size=12, bold=True, align_right=True)
    y -= LINE * 1.5
    text(MARGIN, f"Week {week}: {start.isoformat()} to {end.isoformat()}")
    y -= LINE * 2
    for n, head in enumerate(("KPI", "This week", "Previous week", "Change")):
        text(COLUMNS[n], head, size=9, bold=True, align_right=n > 0)
    y -= LINE
    for line in lines:
        delta, verdict = change(line)
        text(COLUMNS[0], line.title, size=10)
        text(COLUMNS[1], figure(line.value, line.unit), size=10, align_right=True)
        text(COLUMNS[2], figure(line.previous, line.unit), size=10, align_right=True)
        text(COLUMNS[3], delta, size=10, align_right=True)
        if verdict:
            text(COLUMNS[3] + 8, verdict, size=9)
        y -= LINE
    y -= LINE
    text(MARGIN, "Figures are the stored weekly MeasureReports (Measure/{id}/$evaluate-measure over the week).",
         size=8)
    canvas.showPage()
    canvas.save()
    return out.getvalue()
