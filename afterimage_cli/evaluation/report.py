"""The terminal summary of an evaluate run: Rich tables on stderr."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

BAR_WIDTH = 30


def _bar(count: int, largest: int) -> str:
    return "█" * (round(BAR_WIDTH * count / largest) if largest else 0)


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _percent(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "–"


def headline(summary: dict[str, Any]) -> str:
    """One line: what happened to the rows, and how fast."""
    r = summary["rows"]
    parts = [f"{r['evaluated']:,} evaluated", f"{r['written']:,} written"]
    if r["resumed"]:
        parts.append(f"{r['resumed']:,} resumed")
    if r["dropped_below_min_score"] or r["dropped_unscored"]:
        parts.append(f"{r['dropped_below_min_score'] + r['dropped_unscored']:,} dropped by --min-score")
    if r["invalid_skipped"]:
        parts.append(f"{r['invalid_skipped']:,} invalid skipped")
    if r["judge_failed"]:
        parts.append(f"{r['judge_failed']:,} failed")
    return (
        f"[bold]evaluated[/]: {' · '.join(parts)} in {summary['elapsed_s']:.1f}s ({summary['rows_per_s']:,.0f} rows/s)"
    )


def grades_table(summary: dict[str, Any]) -> Table:
    grades: dict[str, int] = summary["grades"]
    total = sum(grades.values())
    largest = max(grades.values(), default=0)
    table = Table(title="grades", title_justify="left", box=None, pad_edge=False)
    for column in ("grade", "rows", "share", ""):
        table.add_column(column, justify="right" if column in ("rows", "share") else "left")
    for grade, count in grades.items():
        table.add_row(grade, f"{count:,}", _percent(count, total), _bar(count, largest))
    return table


def criteria_table(summary: dict[str, Any]) -> Table:
    table = Table(title="scores", title_justify="left", box=None, pad_edge=False)
    for column in ("criterion", "mean", "p10", "p50", "p90", "scored", "n/a"):
        table.add_column(column, justify="left" if column == "criterion" else "right")
    rows = [*summary["criteria"].items(), ("final_score", {**summary["final_score"], "not_applicable": 0})]
    for name, s in rows:
        table.add_row(
            name,
            _number(s["mean"]),
            _number(s["p10"]),
            _number(s["p50"]),
            _number(s["p90"]),
            f"{s['count']:,}",
            f"{s['not_applicable']:,}" if s["not_applicable"] else "",
        )
    return table


def length_table(summary: dict[str, Any]) -> Table:
    lengths = summary["answer_words"]
    largest = max(lengths["counts"], default=0)
    table = Table(title=f"answer length (words; mean {lengths['mean']})", title_justify="left", box=None)
    table.add_column("words")
    table.add_column("answers", justify="right")
    table.add_column("")
    used = [i for i, count in enumerate(lengths["counts"]) if count]
    first, last = (used[0], used[-1]) if used else (0, -1)
    for label, count in list(zip(lengths["labels"], lengths["counts"], strict=True))[first : last + 1]:
        table.add_row(label, f"{count:,}", _bar(count, largest))
    return table


def findings_line(summary: dict[str, Any]) -> str:
    """Issues, duplicates, context overlap and diversity in a few lines."""
    issues = summary["issues"]
    d = summary["duplicates"]
    issue_text = " · ".join(f"{name} {count:,}" for name, count in issues.items()) or "none"
    overlap = summary["context_overlap"]
    diversity = summary["diversity"]
    hygiene = summary["hygiene"]
    unclean = " · ".join(f"{check} {count:,}" for check, count in hygiene["turns_by_check"].items()) or "none"
    lines = [
        f"[bold]issues[/]: {issue_text}",
        f"[bold]turn hygiene[/]: {hygiene['unclean_rows']:,} rows with unclean turns · turns failing: {unclean}",
        f"[bold]duplicates[/]: {d['exact']:,} exact, {d['near']:,} near (window {d['window']:,} rows)",
        f"[bold]context overlap[/]: mean {_number(overlap['mean'])} over {overlap['count']:,} rows with context",
        "[bold]diversity[/]: "
        + " · ".join(
            f"{who} distinct-1 {_number(v['distinct_1'])} distinct-2 {_number(v['distinct_2'])}"
            for who, v in diversity.items()
        ),
    ]
    return "\n".join(lines)


def preference_line(pairs: dict[str, Any]) -> str:
    """How the judge sees the rows' preference pairs, asked in both orders."""
    m = pairs["margin"]
    spread = " / ".join("–" if m[k] is None else f"{m[k]:+.2f}" for k in ("p10", "p50", "p90"))
    return (
        f"preference pairs: {pairs['pairs']:,} · judge agrees with chosen {_rate(pairs['label_agreement_rate'])} · "
        f"both orders agree {_rate(pairs['order_agreement_rate'])} · position bias "
        f"{_rate(pairs['position_bias_rate'])} · ties {pairs['ties']:,} · margin (chosen − rejected) "
        f"p10/p50/p90 {spread}"
    )


def tools_line(tools: dict[str, Any]) -> str:
    """Valid-call rate, coverage of the offered tools, calls per conversation and per tool."""
    calls, valid = tools["calls"], tools["valid_calls"]
    per_tool = " · ".join(f"{name} {t['calls']:,}" for name, t in tools["per_tool"].items())
    line = (
        f"tool calls: {calls:,} in {tools['rows']:,} rows with tools (mean "
        f"{_number(tools['calls_per_conversation']['mean'], 1)} per conversation) · valid calls {valid:,}/{calls:,} "
        f"({_percent(valid, calls)}) · tools used {tools['tools_used']}/{tools['tools_offered']} · per tool: {per_tool}"
    )
    if tools["never_called"]:
        line += f" · never called: {', '.join(tools['never_called'])}"
    return line + "".join(f"\n  invalid: {example}" for example in tools["invalid_examples"])


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def judge_line(summary: dict[str, Any]) -> str | None:
    judge = summary["judge"]
    if judge is None:
        return None
    cost = "unpriced" if judge["cost_usd"] is None else f"${judge['cost_usd']:.4f}"
    errors = sum((judge["errors"] or {}).values())
    return (
        f"[bold]judge[/] {escape(judge['model'])}: {judge['calls']:,} calls · tokens {judge['prompt_tokens']:,} in / "
        f"{judge['completion_tokens']:,} out · {cost} · cache hits {judge['cache_hits']:,} · "
        f"retries {judge['retries']} · errors {errors}"
    )


def print_summary(summary: dict[str, Any], console: Console) -> None:
    """Print the whole summary on the (stderr) console."""
    console.print(headline(summary), highlight=False)
    for example in summary["invalid_examples"]:
        console.print(f"  skipped {example}", markup=False, highlight=False)
    for example in summary["judge_failed_examples"]:
        console.print(f"  failed {example}", markup=False, highlight=False)
    if summary["rows"]["dropped_unscored"]:
        console.print(
            f"[yellow]note:[/] {summary['rows']['dropped_unscored']:,} row(s) had no final_score and were dropped "
            "by --min-score (judge them, or drop --min-score)",
            highlight=False,
        )
    if summary["rows"]["evaluated"] + summary["rows"]["resumed"] == 0:
        return
    console.print(grades_table(summary))
    console.print(criteria_table(summary))
    console.print(length_table(summary))
    console.print(findings_line(summary), highlight=False)
    if "preference" in summary:
        console.print(preference_line(summary["preference"]), highlight=False, markup=False)
    if "tools" in summary:
        console.print(tools_line(summary["tools"]), highlight=False, markup=False)
    line = judge_line(summary)
    if line:
        console.print(line, highlight=False)
