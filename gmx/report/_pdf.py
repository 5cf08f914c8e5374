"""The case report as a PDF (:func:`to_pdf`), with fpdf2 (pure Python, no system libraries).

Text is set in DejaVu Sans, the TrueType font that matplotlib (a gmx dependency) ships, so any
Unicode name or label prints (a glyph the font lacks prints as a blank, never an error). Strings are
written as plain text (no markdown, no markup), so nothing in a syndrome name or case id is
interpreted.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from gmx.report._model import CaseReport, ReportMap

#: Page layout (millimetres): A4 portrait, margins, line height, map tile and colour-bar sizes.
PAGE_FORMAT = "A4"
MARGIN_MM = 15.0
LINE_MM = 5.0
TILE_MM = 32.0
BAR_MM = 2.5
#: Font sizes (points): title, section heads, body, small print.
TITLE_PT, HEAD_PT, BODY_PT, SMALL_PT = 16, 12, 9.5, 7.5
#: Colours (RGB): demo notice background and text, table header, muted text.
DEMO_FILL = (255, 236, 179)
DEMO_TEXT = (140, 0, 0)
HEAD_FILL = (243, 243, 243)
MUTED = (85, 85, 85)
FONT = "DejaVu"

_FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


class _Writer:
    """A thin layout helper over :class:`fpdf.FPDF` (sections, tables, paragraphs)."""

    def __init__(self, report: CaseReport) -> None:
        from fpdf import FPDF

        # fpdf2 logs one line per missing glyph (e.g. emoji in a name); they print as blanks.
        logging.getLogger("fpdf").setLevel(logging.ERROR)
        logging.getLogger("fontTools").setLevel(logging.ERROR)
        pdf = FPDF(orientation="portrait", unit="mm", format=PAGE_FORMAT)
        pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
        pdf.set_auto_page_break(auto=True, margin=MARGIN_MM)
        for style, name in _FONT_FILES.items():
            pdf.add_font(FONT, style, str(_font_dir() / name))
        pdf.set_title(f"{report.title} {report.case_id}")
        pdf.set_creator(f"gmx {report.provenance.gmx_version}")
        pdf.set_creation_date(datetime.fromisoformat(report.provenance.created_utc))
        pdf.add_page()
        self.pdf = pdf

    @property
    def width(self) -> float:
        return self.pdf.epw

    def text(self, text: str, size: float = BODY_PT, bold: bool = False, muted: bool = False):
        pdf = self.pdf
        pdf.set_font(FONT, "B" if bold else "", size)
        pdf.set_text_color(*(MUTED if muted else (0, 0, 0)))
        pdf.multi_cell(self.width, size * 0.45, text, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)

    def head(self, text: str) -> None:
        self.pdf.ln(2)
        if self.pdf.get_y() > self.pdf.page_break_trigger - 4 * LINE_MM:
            self.pdf.add_page()
        self.text(text, HEAD_PT, bold=True)
        self.pdf.ln(1)

    def table(self, head: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float]):
        pdf = self.pdf
        pdf.set_font(FONT, "", SMALL_PT + 0.5)
        with pdf.table(
            col_widths=tuple(widths),
            width=self.width,
            line_height=LINE_MM * 0.8,
            headings_style=_heading_style(),
            text_align="LEFT",
        ) as table:
            row = table.row()
            for h in head:
                row.cell(h)
            for cells in rows:
                row = table.row()
                for c in cells:
                    row.cell(c)
        pdf.ln(1)

    def image(self, png: bytes, x: float, y: float, w: float, h: float) -> None:
        self.pdf.image(io.BytesIO(png), x=x, y=y, w=w, h=h)


def _heading_style():
    from fpdf.fonts import FontFace

    return FontFace(family=FONT, emphasis="BOLD", fill_color=HEAD_FILL)


def _demo(w: _Writer, notice: str) -> None:
    pdf = w.pdf
    pdf.set_fill_color(*DEMO_FILL)
    pdf.set_text_color(*DEMO_TEXT)
    pdf.set_font(FONT, "B", BODY_PT)
    pdf.multi_cell(w.width, LINE_MM, notice, fill=True, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.set_fill_color(255, 255, 255)  # tables below fill with the current colour
    pdf.ln(2)


def _maps(w: _Writer, maps: Sequence[ReportMap], reading: str) -> None:
    if not maps:
        w.text("No explanation maps were included.")
        return
    w.text(reading, SMALL_PT, muted=True)
    pdf = w.pdf
    rows: dict[str, list[ReportMap]] = {}
    for m in maps:
        rows.setdefault(m.row_label, []).append(m)
    label_w = 38.0
    gap = 2.0
    per_line = max(1, int((w.width - label_w) // (TILE_MM + gap)))
    legend_h = 3 * LINE_MM * 0.7
    for label, cells in rows.items():
        for start in range(0, len(cells), per_line):
            block = cells[start : start + per_line]
            need = LINE_MM * 2 + TILE_MM + BAR_MM + legend_h + gap
            if pdf.get_y() + need > pdf.page_break_trigger:
                pdf.add_page()
            y0 = pdf.get_y()
            pdf.set_font(FONT, "B", SMALL_PT)
            pdf.set_xy(pdf.l_margin, y0 + LINE_MM * 1.5)
            pdf.multi_cell(label_w - gap, LINE_MM * 0.7, label, align="L")
            for j, m in enumerate(block):
                x = pdf.l_margin + label_w + j * (TILE_MM + gap)
                pdf.set_font(FONT, "B", SMALL_PT)
                pdf.set_xy(x, y0)
                pdf.multi_cell(TILE_MM, LINE_MM * 0.7, m.method_name, align="L")
                top = y0 + LINE_MM * 1.5
                w.image(m.png, x, top, TILE_MM, TILE_MM)
                w.image(m.colour_bar_png, x, top + TILE_MM + 0.5, TILE_MM, BAR_MM)
                pdf.set_font(FONT, "", SMALL_PT - 1)
                pdf.set_xy(x, top + TILE_MM + BAR_MM + 1)
                pdf.multi_cell(TILE_MM, LINE_MM * 0.6, f"{m.legend} ({m.units})", align="L")
            pdf.set_xy(pdf.l_margin, y0 + need)
        w.text(cells[0].reading, SMALL_PT, muted=True)
        pdf.ln(1)


def to_pdf(report: CaseReport) -> bytes:
    """The report as PDF bytes (A4; pictures embedded as PNG; text extractable)."""
    w = _Writer(report)
    if report.demo_notice:
        _demo(w, report.demo_notice)
    w.text(report.title, TITLE_PT, bold=True)
    w.text(f"Case {report.case_id}", BODY_PT + 1, bold=True)
    w.text(report.caveat, SMALL_PT, muted=True)
    if report.face_png is not None:
        w.head("Aligned face")
        y = w.pdf.get_y()
        face_mm = TILE_MM * 1.25
        w.image(report.face_png, w.pdf.l_margin, y, face_mm, face_mm)
        w.pdf.set_y(y + face_mm + 2)

    w.head(f"Top {len(report.matches)} syndromes")
    w.table(
        ("Rank", "Syndrome", "Distance", "Gestalt score", "Genes"),
        [
            (
                str(m.rank),
                f"{m.name} ({m.syndrome_id}{', OMIM ' + m.omim if m.omim else ''})",
                f"{m.distance:.3f}",
                f"{m.gestalt_score:.3f}",
                ", ".join(m.genes),
            )
            for m in report.matches
        ],
        (1, 5, 1.6, 1.6, 3),
    )
    w.head("Calibrated statements")
    w.text(f"Calibration: {report.calibration_note}", SMALL_PT, muted=True)
    if all(m.calibrated is None for m in report.matches):
        w.text("No calibration: no statement can be made about these distances.")
    for m in report.matches:
        c = m.calibrated
        if c is None:
            continue
        ppv = "no PPV" if c.ppv is None else f"PPV {c.ppv:.0%} ({c.ppv_low:.0%}-{c.ppv_high:.0%})"
        w.text(f"#{m.rank} {m.name} ({ppv})", BODY_PT, bold=True)
        w.text(c.sentence, SMALL_PT + 0.5)
        w.pdf.ln(1)

    w.head("Genes")
    if report.genes:
        w.table(
            ("Rank", "Gene", "Syndrome", "Distance", "Gestalt score"),
            [
                (str(g.rank), g.gene, g.syndrome, f"{g.distance:.3f}", f"{g.gestalt_score:.3f}")
                for g in report.genes
            ],
            (1, 2, 5, 1.6, 1.6),
        )
    else:
        w.text("The gallery lists no genes for these syndromes.")

    w.head("Facial features (HPO)")
    if report.features:
        w.table(
            ("Status", "HPO term", "Suggested by"),
            [
                (
                    "confirmed" if f.confirmed else "not assessed",
                    f.display,
                    ", ".join(f.syndromes) if f.syndromes else "(given by the user)",
                )
                for f in report.features
            ],
            (1.6, 5, 4),
        )
    else:
        w.text("No facial features listed.")
    if report.n_rejected_features:
        w.text(
            f"{report.n_rejected_features} feature(s) marked absent by the user are not listed.",
            SMALL_PT,
            muted=True,
        )

    w.head("Explanation maps")
    _maps(w, report.maps, report.map_reading)

    if report.scorecard_note:
        w.head("Scorecard verdicts")
        w.text(report.scorecard_note, SMALL_PT, muted=True)
        for name, words in report.scorecard:
            w.text(f"{name}: {words}")

    w.head("Region relevance")
    if report.regions:
        w.text(report.region_note, SMALL_PT, muted=True)
        w.table(
            ("Syndrome", "Method", "Top regions", "Its features' regions"),
            [
                (
                    r.row_label,
                    r.method_name,
                    r.top,
                    "\n".join(
                        f"{'highlighted' if hit else 'not among the top regions'}: {words}"
                        for words, hit in r.features
                    )
                    or "no HPO features in the gallery's metadata",
                )
                for r in report.regions
            ],
            (2.5, 1.6, 4, 5),
        )
    else:
        w.text("No explanation maps were included.")

    w.head("Provenance")
    w.table(("Item", "Value"), report.provenance.items(), (1.3, 4))
    return bytes(w.pdf.output())


__all__ = ["to_pdf"]
