"""`afterimage status OUT`: how a run stands, from its output and ledger, without calling anything."""

from __future__ import annotations

import orjson
import typer

from . import app
from .common import run_command

MAX_BATCHES_SHOWN = 10  # the latest; --json lists them all


def _text(report: dict[str, object]) -> str:
    causes = report["rejected_by_cause"]
    assert isinstance(causes, dict)
    target = report["target"]
    cost = report["cost_usd"]
    lines = [
        f"{report['output']}: {report['state']}" + (f" ({report['reason']})" if report.get("reason") else ""),
        f"  rows      {report['rows']}" + (f" of {target}" if target is not None else ""),
        f"  rejected  {report['rejected']}"
        + (" (" + ", ".join(f"{cause} {n}" for cause, n in causes.items()) + ")" if causes else ""),
        "  cost      " + ("unpriced" if cost is None else f"${cost:.4f}") + f" over {report['sessions']} session(s)",
    ]
    endpoints = report.get("endpoints")
    if isinstance(endpoints, dict):
        lines.append("  endpoints (last session)")
        for model, entries in endpoints.items():
            for e in entries:
                p50, p95 = e.get("p50_ms"), e.get("p95_ms")
                latency = "" if p50 is None else f", p50 {p50:.0f} ms, p95 {p95:.0f} ms"
                counts = f"{e['calls']} calls, {e['errors']} errors{latency}"
                lines.append(f"    {model} @ {e['endpoint']}  {counts}  {e['state']}")
    batch = report.get("batch")
    if isinstance(batch, dict):
        lines.append(
            f"  batches   {len(batch['batches'])} over {batch['rounds']} round(s), "
            f"{batch['requests_submitted']:,} requests, {batch['in_flight']} in flight"
        )
        for b in batch["batches"][-MAX_BATCHES_SHOWN:]:
            done = f" {b['completed']} done, {b['failed']} failed" if "completed" in b else ""
            lines.append(f"    round {b['round']}  {b['id']}  {b['model']}  {b['requests']} req  {b['status']}{done}")
    return "\n".join(lines)


@app.command()
def status(
    output: str = typer.Argument(..., help="A run's output (what -o named)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Rows done, items rejected by cause, cost so far and whether the run finished (calls nothing)."""

    def body() -> None:
        from ..engine.run_status import run_status

        report = run_status(output)
        typer.echo(orjson.dumps(report).decode() if json_out else _text(report))

    run_command(body, debug=debug)
