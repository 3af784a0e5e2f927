"""Bench scenarios for rate limits: does adaptive concurrency reach a provider's limit without tripping it?

Two servers a user meets: one that admits a fixed number of requests per second and answers the rest
429 (a real rate limit), and one that answers a share of requests 429 whatever the load (a flaky
gateway). The first must be used up to its limit with few refused requests; the second must not make
us slow down.
"""

from __future__ import annotations

from pathlib import Path

from tests.bench import generate, http, note, write_config

SCENARIOS = (
    # name, knobs, concurrency, conversations
    ("admits 200 req/s", {"admit_rps": 200, "rate_429": 0.0, "retry_after": None}, 64, 3_000),
    ("20 % stray 429s", {"admit_rps": None, "rate_429": 0.2, "retry_after": 0.1}, 64, 6_000),
)
LATENCY = 0.05


def run_scenarios(server_url: str, workdir: Path) -> list[dict[str, object]]:
    """One row per scenario: successful calls/s against what the server allows, and the share refused."""
    rows: list[dict[str, object]] = []
    try:
        for name, knobs, concurrency, n in SCENARIOS:
            note(f"rate limits: {name}, concurrency {concurrency}, n={n} …")
            http(f"{server_url}/_knobs", {"latency": LATENCY, **knobs})
            before = http(f"{server_url}/_stats")
            config = workdir / f"ratelimit-{len(rows)}.yaml"
            write_config(config, {"model": "openai/fake-model", "api_base": f"{server_url}/v1"}, concurrency)
            summary, _ = generate(config, n, concurrency, workdir, allow_errors=True)
            after = http(f"{server_url}/_stats")
            ok = after["ok"] - before["ok"]
            refused = after["429"] - before["429"]
            elapsed = float(summary["elapsed_s"])
            allowed = knobs["admit_rps"] or concurrency / LATENCY * (1 - float(knobs["rate_429"] or 0))
            rows.append(
                {
                    "scenario": name,
                    "concurrency": concurrency,
                    "ok_per_s": ok / elapsed,
                    "allowed_per_s": float(allowed),
                    "refused_share": refused / max(ok + refused, 1),
                    "cuts": summary["concurrency_cuts"],
                }
            )
    finally:
        http(f"{server_url}/_knobs", {"latency": LATENCY, "admit_rps": None, "rate_429": 0.0, "retry_after": 0.05})
    return rows


def table_lines(rows: list[dict[str, object]]) -> list[str]:
    """The scenarios as a Markdown table."""
    lines = [
        "| server | concurrency | successful calls/s | the server allows | used | refused (429) share | cuts |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok, allowed = float(str(r["ok_per_s"])), float(str(r["allowed_per_s"]))
        lines.append(
            f"| {r['scenario']} | {r['concurrency']} | {ok:,.0f} | {allowed:,.0f} | {ok / allowed:.0%} "
            f"| {float(str(r['refused_share'])):.0%} | {r['cuts']} |"
        )
    return lines
