"""Case reports: one diagnosed photo as a self-contained HTML page or a PDF, built in memory.

* :func:`build_report` -> :class:`CaseReport` (frozen): top-k syndromes with distances, gestalt
  scores and calibrated statements, genes, HPO features (confirmed ones marked, rejected ones left
  out), the chosen explanation maps with method names, colour bars and legends, the demo notice
  where it applies, and the provenance (:class:`Provenance`). The aligned face is in it only with
  ``include_face=True``.
* :func:`to_html` (one page, pictures inlined, every string escaped) and :func:`to_pdf` (fpdf2).
* :func:`report_calibration`: the gallery's calibration (stored, else computed) and its source.

Nothing is written to disk here; ``gmx report --out`` writes the file (see ``docs/report.md``).
"""

from __future__ import annotations

from gmx.report._html import to_html
from gmx.report._model import (
    CALIBRATION_COMPUTED,
    CALIBRATION_STORED,
    DEFAULT_TOP_K,
    CaseReport,
    Provenance,
    ReportFeature,
    ReportGene,
    ReportMap,
    ReportMaps,
    ReportMatch,
    ReportRegions,
    build_report,
    gallery_metadata_sha256,
    report_calibration,
)
from gmx.report._pdf import to_pdf

#: Report formats by file extension.
REPORT_FORMATS = {".html": "html", ".htm": "html", ".pdf": "pdf"}


def render(report: CaseReport, fmt: str) -> bytes:
    """The report in ``fmt`` (``"html"`` as UTF-8 bytes, or ``"pdf"``).

    Raises:
        ValueError: for another format.
    """
    if fmt == "html":
        return to_html(report).encode("utf-8")
    if fmt == "pdf":
        return to_pdf(report)
    raise ValueError(f"report format must be html or pdf, got {fmt!r}")


__all__ = [
    "CALIBRATION_COMPUTED",
    "CALIBRATION_STORED",
    "DEFAULT_TOP_K",
    "REPORT_FORMATS",
    "CaseReport",
    "Provenance",
    "ReportFeature",
    "ReportGene",
    "ReportMap",
    "ReportMaps",
    "ReportMatch",
    "ReportRegions",
    "build_report",
    "gallery_metadata_sha256",
    "render",
    "report_calibration",
    "to_html",
    "to_pdf",
]
