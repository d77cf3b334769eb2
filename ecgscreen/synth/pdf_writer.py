"""Write a ``printout.Page`` as a vector PDF, the way an ECG cart exports a report."""

from __future__ import annotations

import io

from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from .printout import Page

__all__ = ["write_pdf"]


def _rgb(color: tuple[int, int, int]) -> tuple[float, float, float]:
    return tuple(c / 255.0 for c in color)


def write_pdf(page: Page, title: str = "12-lead ECG", encrypt: str | None = None) -> bytes:
    """The page as PDF bytes: one page, vector grid and traces, real text.

    Output is byte-identical for identical input (reportlab's ``invariant`` mode drops the
    timestamp and random document ID). ``encrypt`` sets a user password (for testing the
    intake's refusal of encrypted files).
    """
    buffer = io.BytesIO()
    width, height = page.size_mm
    canvas = Canvas(buffer, pagesize=(width * mm, height * mm), invariant=1, encrypt=encrypt)
    canvas.setTitle(title)
    canvas.setCreator("ecgscreen synthetic cart")

    def xy(x: float, y: float) -> tuple[float, float]:
        return x * mm, (height - y) * mm  # PDF's origin is bottom left, y up

    if page.grid is not None:
        grid = page.grid
        x0, y0, x1, y1 = grid.box
        for step, color, line_mm, style in (
            (1, grid.minor, grid.minor_mm, grid.minor_style),
            (5, grid.major, grid.major_mm, "solid"),
        ):
            xs = [x0 + i * step for i in range(int((x1 - x0) / step) + 1)]
            ys = [y0 + i * step for i in range(int((y1 - y0) / step) + 1)]
            canvas.setStrokeColorRGB(*_rgb(color))
            if style == "solid":
                canvas.setLineWidth(line_mm * mm)
                canvas.lines([(*xy(x, y0), *xy(x, y1)) for x in xs] + [(*xy(x0, y), *xy(x1, y)) for y in ys])
            elif style == "dotted":  # a dot at each crossing: a stroke as long as it is wide
                dot = max(line_mm, 0.15)
                canvas.setLineWidth(dot * mm)
                canvas.lines([(*xy(x, y), *xy(x + dot, y)) for x in xs for y in ys])

    canvas.setLineJoin(1)
    canvas.setLineCap(1)
    for line in page.lines:
        canvas.setStrokeColorRGB(*_rgb(line.color))
        canvas.setLineWidth(line.width_mm * mm)
        path = canvas.beginPath()
        path.moveTo(*xy(*line.points[0]))
        for x, y in line.points[1:]:
            path.lineTo(*xy(x, y))
        canvas.drawPath(path, stroke=1, fill=0)

    canvas.setFillColorRGB(0, 0, 0)
    for text in page.texts:
        canvas.setFont("Helvetica", text.size_mm * mm)
        # Text.y is the top of the glyphs; PDF places the baseline.
        canvas.drawString(*xy(text.x, text.y + 0.8 * text.size_mm), text.text)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
