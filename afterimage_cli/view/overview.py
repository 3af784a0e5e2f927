"""The viewer's overview page: the dataset profile as cards, tables and inline SVG charts.

The charts are the evaluate report's (`evaluation.html_report`), so both pages draw the same way.
Everything here counts every row read, also the rows a `--max-rows` sample leaves out of the list.
"""

from __future__ import annotations

from collections import Counter
from html import escape
from typing import Any
from urllib.parse import quote

from ..evaluation.html_report import GRADE_COLOURS, bar_chart, html_table, range_chart


def _money(cost: float, unpriced: int) -> str:
    text = f"${cost:,.4f}"
    return f"{text} (+{unpriced:,} unpriced rows)" if unpriced else text


def _cards(summary: dict[str, Any], shown: int, rejected: int) -> str:
    final = summary["final_score"]
    usage = summary["usage"]
    kinds = ", ".join(f"{n:,} {kind}" for kind, n in summary["kinds"].items()) or "none"
    items = [
        ("rows", f"{summary['rows']:,}"),
        ("in the list", f"{shown:,}"),
        ("rows by kind", kinds),
        ("evaluated", f"{summary['evaluated']:,}"),
        ("mean final_score", "–" if final["mean"] is None else f"{final['mean']:.3f}"),
        ("cost", _money(summary["cost_usd"], summary["unpriced_rows"])),
        ("tokens", f"{usage.get('total_tokens', 0):,}"),
        ("personas", f"{summary['personas']['distinct']:,}"),
        ("chunks", f"{summary['chunks']['distinct']:,}"),
        ("documents", f"{summary['documents']:,}"),
        ("duplicate clusters", f"{summary['duplicates']['clusters']:,}"),
        ("rejected items", f"{rejected:,}"),
    ]
    calls = summary.get("tool_calls") or {}
    if calls or summary.get("tools_offered"):
        used = f"{len(calls):,} of {len(summary['tools_offered']):,} tools"
        items.append(("tool calls", f"{sum(calls.values()):,} ({used})"))
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{escape(v)}</b>{escape(k)}</div>' for k, v in items)
        + "</div>"
    )


def _binned(title: str, binned: dict[str, Any], unit: str) -> str:
    if not any(binned["counts"]):
        return ""
    mean = "" if binned["mean"] is None else f" (mean {binned['mean']:,})"
    return (
        f"<h2>{escape(title)}{escape(mean)}</h2>"
        + bar_chart(binned["labels"], binned["counts"])
        + (f'<p class="muted">{escape(unit)}</p>')
    )


def _coverage(title: str, coverage: dict[str, Any], noun: str) -> str:
    if not coverage["distinct"]:
        return ""
    top = html_table([noun, "rows"], [[name, count] for name, count in coverage["top"]])
    return (
        f"<h2>{escape(title)}: {coverage['distinct']:,} distinct</h2>"
        + bar_chart(coverage["rows_each"]["labels"], coverage["rows_each"]["counts"])
        + f'<p class="muted">how many {escape(noun)}s got 1, 2, 3–5, … rows; the most used:</p>'
        + top
    )


def _row_link(row_id: str) -> str:
    return f'<a href="#row={quote(row_id, safe="")}">{escape(row_id)}</a>'


def _duplicates(duplicates: dict[str, Any]) -> str:
    if not duplicates["clusters"]:
        return (
            "<h2>Near-duplicate clusters</h2><p class=muted>none flagged (the duplicate flags come from "
            "<code>afterimage evaluate</code>'s metrics)</p>"
        )
    items = "".join(
        f"<li>{len(members)} rows: {', '.join(_row_link(m) for m in members[:12])}"
        + (f" … (+{len(members) - 12})" if len(members) > 12 else "")
        + "</li>"
        for members in duplicates["largest"]
    )
    return (
        f"<h2>Near-duplicate clusters: {duplicates['clusters']:,}</h2>"
        f'<p class="muted">{duplicates["rows"]:,} rows in clusters · {duplicates["exact"]:,} flagged exact, '
        f"{duplicates['near']:,} near (evaluate's metrics); the largest:</p><ul class=clusters>{items}</ul>"
    )


def _models(summary: dict[str, Any]) -> str:
    rows = [[role, model, count] for role, models in summary["models"].items() for model, count in models.items()]
    rows += [["judge", model, count] for model, count in summary["judges"].items()]
    if not rows:
        return ""
    return "<h2>Models</h2>" + html_table(["role", "model", "rows"], rows)


def render_overview(summary: dict[str, Any], *, shown: int, rejected: list[dict[str, Any]]) -> str:
    """The overview's HTML (a fragment of the page)."""
    grades = summary["grades"]
    bins = len(summary["final_score"]["histogram"])
    sections = [_cards(summary, shown, len(rejected))]
    if summary["evaluated"]:
        criteria = {name: s for name, s in summary["criteria"].items() if s["count"]}
        sections += [
            "<h2>Grades</h2>",
            bar_chart(list(grades), list(grades.values()), [GRADE_COLOURS[g] for g in grades]),
            "<h2>final_score distribution</h2>",
            bar_chart([f"{i / bins:.2f}" for i in range(bins)], summary["final_score"]["histogram"]),
        ]
        if criteria:
            sections += ["<h2>Scores by criterion (p10–p90, median, mean)</h2>", range_chart(criteria)]
    else:
        sections.append('<h2>Grades</h2><p class="muted">no row is evaluated: run <code>afterimage evaluate</code></p>')
    sections += [
        _binned("User turns per conversation", summary["user_turns"], "user turns"),
        _binned("Tokens per conversation", summary["tokens"], "prompt + completion tokens of every call"),
        _models(summary),
    ]
    if summary["ended_by"]:
        ended = summary["ended_by"]
        sections += ["<h2>How conversations ended</h2>", bar_chart(list(ended), list(ended.values()))]
    sections += [
        _coverage("Personas", summary["personas"], "persona"),
        _coverage("Chunks", summary["chunks"], "chunk"),
        _duplicates(summary["duplicates"]),
    ]
    if rejected:
        causes = Counter(str(r.get("cause")) for r in rejected)
        sections += [
            "<h2>Rejected items by cause</h2>",
            bar_chart(list(causes), list(causes.values()), ["#cf222e"] * len(causes)),
        ]
    return "".join(sections)
