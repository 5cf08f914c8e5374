"""The case report as one self-contained HTML page (:func:`to_html`).

Every picture is inlined as a base64 PNG ``data:`` URI and every string is escaped
(:func:`html.escape`, quotes included): syndrome names, HPO labels, the case id and the parameters
are data, never markup. The page's Content-Security-Policy allows no script, no external request
and no form, so even a string that escaped the escaping could not run or call out.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from html import escape

from gmx.report._model import CaseReport, ReportMap

#: Content-Security-Policy of the report page: inline style and ``data:`` images only.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'none'"

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:60em;color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#f3f3f3}
.num{text-align:right;font-variant-numeric:tabular-nums}
.demo{background:#ffecb3;color:#8c0000;padding:.6em 1em;font-weight:bold;border:1px solid #e0a800}
.caveat{color:#555}.flag{color:#8c0000}.maps td{text-align:center}.maps img{display:block}
.small{font-size:.85em;color:#555}.prov td:first-child{white-space:nowrap;font-weight:bold}
.prov td{font-family:ui-monospace,monospace;font-size:.85em;word-break:break-all}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _img(png: bytes, alt: str, width: int | None = None) -> str:
    src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    size = "" if width is None else f' width="{int(width)}"'
    return f'<img src="{src}" alt="{_e(alt)}"{size}>'


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table of already escaped cells (``head`` is escaped here)."""
    klass = f' class="{cls}"' if cls else ""
    out = [f"<table{klass}><thead><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr></thead>"]
    out.append("<tbody>")
    for row in rows:
        out.append("<tr>" + "".join(row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _td(text: object, num: bool = False) -> str:
    return f'<td class="num">{_e(text)}</td>' if num else f"<td>{_e(text)}</td>"


def _matches(report: CaseReport) -> str:
    rows = []
    for m in report.matches:
        omim = f"OMIM {m.omim}" if m.omim else ""
        rows.append(
            (
                _td(m.rank, num=True),
                f"<td>{_e(m.name)}<div class='small'>{_e(m.syndrome_id)} {_e(omim)}</div></td>",
                _td(f"{m.distance:.3f}", num=True),
                _td(f"{m.gestalt_score:.3f}", num=True),
                _td(", ".join(m.genes)),
            )
        )
    parts = [_table(("Rank", "Syndrome", "Distance", "Gestalt score", "Genes"), rows)]
    parts.append("<h2>Calibrated statements</h2>")
    parts.append(f"<p class='small'>Calibration: {_e(report.calibration_note)}</p>")
    if not any(m.calibrated is not None for m in report.matches):
        parts.append("<p>No calibration: no statement can be made about these distances.</p>")
    else:
        parts.append("<ol>")
        for m in report.matches:
            c = m.calibrated
            if c is None:
                continue
            ppv = (
                "no PPV" if c.ppv is None else f"PPV {c.ppv:.0%} ({c.ppv_low:.0%}-{c.ppv_high:.0%})"
            )
            flag = (
                "<div class='flag'>Not closer than typical.</div>"
                if c.not_closer_than_typical
                else ""
            )
            parts.append(
                f"<li><b>#{_e(m.rank)} {_e(m.name)}</b> ({_e(ppv)}): {_e(c.sentence)}{flag}</li>"
            )
        parts.append("</ol>")
    return "".join(parts)


def _genes(report: CaseReport) -> str:
    if not report.genes:
        return "<p>The gallery lists no genes for these syndromes.</p>"
    rows = [
        (
            _td(g.rank, num=True),
            _td(g.gene),
            _td(g.syndrome),
            _td(f"{g.distance:.3f}", num=True),
            _td(f"{g.gestalt_score:.3f}", num=True),
        )
        for g in report.genes
    ]
    return _table(("Rank", "Gene", "Syndrome", "Distance", "Gestalt score"), rows)


def _features(report: CaseReport) -> str:
    parts = []
    if not report.features:
        parts.append("<p>No facial features listed.</p>")
    else:
        rows = [
            (
                _td("confirmed" if f.confirmed else "not assessed"),
                _td(f.display),
                _td(", ".join(f.syndromes) if f.syndromes else "(given by the user)"),
            )
            for f in report.features
        ]
        parts.append(_table(("Status", "HPO term", "Suggested by"), rows))
    if report.n_rejected_features:
        parts.append(
            f"<p class='small'>{report.n_rejected_features} feature(s) marked absent by the user "
            "are not listed.</p>"
        )
    return "".join(parts)


def _maps(maps: Sequence[ReportMap], reading: str) -> str:
    if not maps:
        return "<p>No explanation maps were included.</p>"
    rows: dict[str, list[ReportMap]] = {}
    for m in maps:
        rows.setdefault(m.row_label, []).append(m)
    methods = next(iter(rows.values()))
    head = "<tr><th>Syndrome</th>" + "".join(
        f"<th>{_e(m.method_name)}<div class='small'>{_e(m.units)}</div></th>" for m in methods
    )
    out = [f"<p class='small'>{_e(reading)}</p>", "<table class='maps'><thead>", head]
    out.append("</tr></thead><tbody>")
    for label, cells in rows.items():
        out.append(f"<tr><td>{_e(label)}</td>")
        for m in cells:
            out.append(
                "<td>"
                + _img(m.png, f"{m.method_name}: {m.row_label}")
                + _img(m.colour_bar_png, f"colour bar of {m.method_name}")
                + f"<div class='small'>{_e(m.legend)}</div></td>"
            )
        out.append("</tr>")
    out.append("</tbody></table><ul class='small'>")
    for label in rows:
        out.append(f"<li>{_e(rows[label][0].reading)}</li>")
    out.append("</ul>")
    return "".join(out)


def _scorecard(report: CaseReport) -> str:
    items = "".join(f"<li><b>{_e(name)}</b>: {_e(words)}</li>" for name, words in report.scorecard)
    return f"<p class='small'>{_e(report.scorecard_note)}</p>" + (
        f"<ul>{items}</ul>" if items else ""
    )


def _regions(report: CaseReport) -> str:
    if not report.regions:
        return "<p>No explanation maps were included.</p>"
    rows = [
        (
            _td(r.row_label),
            _td(r.method_name),
            _td(r.top),
            "<td>"
            + (
                "<ul class='small'>"
                + "".join(
                    f"<li>{'highlighted' if hit else 'not among the top regions'}: {_e(words)}</li>"
                    for words, hit in r.features
                )
                + "</ul>"
                if r.features
                else "no HPO features in the gallery's metadata"
            )
            + "</td>",
        )
        for r in report.regions
    ]
    note = f"<p class='small'>{_e(report.region_note)}</p>"
    return note + _table(("Syndrome", "Method", "Top regions", "Its features' regions"), rows)


def _provenance(report: CaseReport) -> str:
    rows = [(_td(k), _td(v)) for k, v in report.provenance.items()]
    return _table(("Item", "Value"), rows, cls="prov")


def to_html(report: CaseReport) -> str:
    """The report as one self-contained HTML page (UTF-8 text; no external resource, no script)."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_e(report.title)} {_e(report.case_id)}</title><style>{_STYLE}</style></head><body>",
    ]
    if report.demo_notice:
        parts.append(f"<div class='demo'>{_e(report.demo_notice)}</div>")
    parts.append(f"<h1>{_e(report.title)}</h1><p>Case <b>{_e(report.case_id)}</b></p>")
    parts.append(f"<p class='caveat'>{_e(report.caveat)}</p>")
    if report.face_png is not None:
        parts.append("<h2>Aligned face</h2>" + _img(report.face_png, "aligned face", 224))
    parts.append(f"<h2>Top {len(report.matches)} syndromes</h2>")
    parts.append(_matches(report))
    parts.append("<h2>Genes</h2>" + _genes(report))
    parts.append("<h2>Facial features (HPO)</h2>" + _features(report))
    parts.append("<h2>Explanation maps</h2>" + _maps(report.maps, report.map_reading))
    parts.append("<h2>Region relevance</h2>" + _regions(report))
    if report.scorecard_note:
        parts.append("<h2>Scorecard verdicts</h2>" + _scorecard(report))
    parts.append("<h2>Provenance</h2>" + _provenance(report))
    parts.append("</body></html>")
    return "\n".join(parts)
