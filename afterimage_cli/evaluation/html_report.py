"""`--report FILE.html`: one self-contained page with inline SVG charts (no scripts, no CDN, no fonts)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import orjson

GRADE_COLOURS = {
    "perfect": "#1a7f37",
    "good": "#4ac26b",
    "needs_improvement": "#d4a72c",
    "bad": "#e16f24",
    "not_acceptable": "#cf222e",
    "ungraded": "#8c959f",
}
BAR_COLOUR = "#0969da"
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:980px;color:#1f2328}
h1{font-size:1.5rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.5rem 0}
td,th{padding:.25rem .7rem;text-align:right;border-bottom:1px solid #eaeef2}
td:first-child,th:first-child{text-align:left}.muted{color:#656d76}svg text{font:11px system-ui,sans-serif;fill:#1f2328}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{border:1px solid #d0d7de;border-radius:6px;padding:.6rem .9rem}
.card b{display:block;font-size:1.3rem}pre{background:#f6f8fa;padding:.8rem;overflow:auto;font-size:12px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def bar_chart(labels: list[str], counts: list[int], colours: list[str] | None = None, height: int = 180) -> str:
    """Vertical bars with their counts above and labels below (each slot wide enough for its label)."""
    longest = max((len(label) for label in labels), default=0)
    width = max(320, round(max(46, 6.5 * longest + 10) * len(labels)) + 20)
    top, bottom = 16, 36
    slot = (width - 20) / max(len(labels), 1)
    largest = max(counts, default=0) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for i, (label, count) in enumerate(zip(labels, counts, strict=True)):
        bar_height = (height - top - bottom) * count / largest
        x = 10 + i * slot + slot * 0.12
        y = height - bottom - bar_height
        colour = colours[i] if colours else BAR_COLOUR
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.76:.1f}" height="{bar_height:.1f}" fill="{colour}">'
            f"<title>{_e(label)}: {count:,}</title></rect>"
        )
        centre = x + slot * 0.38
        parts.append(f'<text x="{centre:.1f}" y="{y - 3:.1f}" text-anchor="middle">{count:,}</text>')
        parts.append(
            f'<text x="{centre:.1f}" y="{height - bottom + 14}" text-anchor="middle">'
            f"{_e(label.replace('_', ' '))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def range_chart(criteria: dict[str, dict[str, Any]]) -> str:
    """One row per criterion: the p10–p90 range as a bar, p50 as a tick, the mean as a dot, on [0, 1]."""
    left, width, row = 110, 520, 26
    height = row * len(criteria) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 30}" height="{height}" role="img">']
    for tick in range(0, 11, 2):
        x = left + width * tick / 10
        parts.append(f'<line x1="{x}" y1="4" x2="{x}" y2="{height - 20}" stroke="#eaeef2"/>')
        parts.append(f'<text x="{x}" y="{height - 6}" text-anchor="middle">{tick / 10:.1f}</text>')
    for i, (name, s) in enumerate(criteria.items()):
        y = 8 + i * row
        parts.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{_e(name)}</text>')
        if s["count"] == 0:
            parts.append(f'<text x="{left + 4}" y="{y + 13}" class="muted">not scored</text>')
            continue
        x10, x50, x90 = (left + width * s[p] for p in ("p10", "p50", "p90"))
        parts.append(
            f'<rect x="{x10:.1f}" y="{y + 4}" width="{max(x90 - x10, 2):.1f}" height="12" fill="{BAR_COLOUR}" '
            f'opacity=".35"><title>{_e(name)}: p10 {s["p10"]} · p50 {s["p50"]} · p90 {s["p90"]}</title></rect>'
        )
        parts.append(
            f'<line x1="{x50:.1f}" y1="{y + 1}" x2="{x50:.1f}" y2="{y + 19}" stroke="{BAR_COLOUR}" stroke-width="2"/>'
        )
        mean_x = left + width * s["mean"]
        parts.append(
            f'<circle cx="{mean_x:.1f}" cy="{y + 10}" r="4" fill="#1f2328"><title>mean {s["mean"]}</title></circle>'
        )
    parts.append("</svg>")
    return "".join(parts)


def html_table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cards(summary: dict[str, Any]) -> str:
    r = summary["rows"]
    final = summary["final_score"]
    items = [
        ("rows evaluated", f"{r['evaluated']:,}"),
        ("rows written", f"{r['written']:,}"),
        ("resumed", f"{r['resumed']:,}"),
        ("dropped (--min-score)", f"{r['dropped_below_min_score'] + r['dropped_unscored']:,}"),
        ("invalid skipped", f"{r['invalid_skipped']:,}"),
        ("judge failed", f"{r['judge_failed']:,}"),
        ("mean final_score", _fmt(final["mean"])),
        ("duplicates", f"{summary['duplicates']['exact']:,} exact · {summary['duplicates']['near']:,} near"),
    ]
    return (
        '<div class="cards">' + "".join(f'<div class="card"><b>{_e(v)}</b>{_e(k)}</div>' for k, v in items) + "</div>"
    )


def render_html(summary: dict[str, Any]) -> str:
    """The report page for an evaluate summary."""
    grades = summary["grades"]
    final = summary["final_score"]
    bins = len(final["histogram"])
    score_labels = [f"{i / bins:.2f}" for i in range(bins)]
    criteria = {**summary["criteria"], "final_score": final}
    criteria_rows = [
        [name, _fmt(s["mean"]), _fmt(s["p10"]), _fmt(s["p50"]), _fmt(s["p90"]), s["count"], s.get("not_applicable", 0)]
        for name, s in criteria.items()
    ]
    judge = summary["judge"]["model"] if summary["judge"] else "none (--no-judge)"
    diversity_rows = [[who, _fmt(v["distinct_1"]), _fmt(v["distinct_2"])] for who, v in summary["diversity"].items()]
    hygiene = summary["hygiene"]
    hygiene_rows = [[c, n, hygiene["rows_by_check"].get(c, 0)] for c, n in hygiene["turns_by_check"].items()]
    sections = [
        f"<h1>afterimage evaluate — {_e(summary['input'])}</h1>",
        f'<p class="muted">output {_e(summary["output"])} · judge {_e(judge)} · {summary["elapsed_s"]:.1f}s</p>',
        _cards(summary),
        "<h2>Grades</h2>",
        bar_chart(list(grades), list(grades.values()), [GRADE_COLOURS[g] for g in grades]),
        "<h2>Scores</h2>",
        range_chart(criteria),
        html_table(["criterion", "mean", "p10", "p50", "p90", "scored", "not applicable"], criteria_rows),
        "<h2>final_score distribution</h2>",
        bar_chart(score_labels, final["histogram"]),
        "<h2>Answer length (words per assistant turn)</h2>",
        bar_chart(summary["answer_words"]["labels"], summary["answer_words"]["counts"]),
        "<h2>User turns per conversation</h2>",
        bar_chart(summary["user_turns"]["labels"], summary["user_turns"]["counts"]),
        "<h2>Issues and duplicates</h2>",
        html_table(["issue", "rows"], [[k, v] for k, v in summary["issues"].items()] or [["none", 0]]),
        "<h2>Turn hygiene</h2>",
        html_table(["check", "turns", "rows"], hygiene_rows or [["none", 0, 0]]),
        *_tool_sections(summary.get("tools")),
        "<h2>Diversity (distinct-n across the set)</h2>",
        html_table(["turns", "distinct-1", "distinct-2"], diversity_rows),
        "<h2>Scoring rules</h2>",
        f"<pre>{_e(orjson.dumps(summary['scoring'], option=orjson.OPT_INDENT_2).decode())}</pre>",
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>afterimage evaluate report</title>'
        f"<style>{CSS}</style></head><body>{''.join(sections)}</body></html>\n"
    )


def _tool_sections(tools: dict[str, Any] | None) -> list[str]:
    """Valid-call rate, coverage and calls per conversation, for a set with tool rows (none otherwise)."""
    if not tools:
        return []
    calls = tools["calls_per_conversation"]
    per_tool = [[name, t["calls"], t["offered_in"]] for name, t in tools["per_tool"].items()]
    facts = [
        ["rows with tools", f"{tools['rows']:,}"],
        ["calls", f"{tools['calls']:,}"],
        ["valid calls", f"{tools['valid_calls']:,} ({_fmt(tools['valid_call_rate'])})"],
        ["tools used / offered", f"{tools['tools_used']} / {tools['tools_offered']}"],
        ["mean share of its tools a row used", _fmt(tools["row_coverage_mean"])],
        ["never called", ", ".join(tools["never_called"]) or "none"],
        *(["invalid call", example] for example in tools["invalid_examples"]),
    ]
    return [
        "<h2>Tool calls</h2>",
        html_table(["", ""], facts),
        html_table(["tool", "calls", "rows offering it"], per_tool),
        "<h2>Tool calls per conversation</h2>",
        bar_chart(calls["labels"], calls["counts"]),
    ]


def write_html_report(summary: dict[str, Any], path: Path) -> None:
    """Write the report (creating its folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(summary), encoding="utf-8")
