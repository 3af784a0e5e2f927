"""generation.kind: preference through the CLI against the fake server: every strategy ends with exactly N rows of
distinct chosen/rejected answers to a prompt that ends with the user; undecided pairs (ties, orders that disagree,
small margins) are rejected items, replaced, counted in the summary and bounded by preference.max_dropped_share;
every candidate and judge call is counted and priced."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

from afterimage_cli.engine.ledger import ledger_path, read_ledger
from afterimage_cli.export.rows import row_pairs

from .helpers import invoke, make_config, read_rows

FAST_RETRY = {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.05}
OPENINGS = [f"Question {n}: how do I tune setting {n}?" for n in range(40)]
PRICED = {"input_cost_per_million": 2.0, "output_cost_per_million": 8.0}


def preference(server: Any, strategy: str, **settings: Any) -> dict[str, Any]:
    """A preference block for `strategy`, its extra model served by the fake server."""
    block: dict[str, Any] = {"strategy": strategy, **settings}
    if strategy == "models":
        block.setdefault("rejected_model", {"model": "weak-model", "api_base": server.api_base})
    if strategy == "on_policy":
        block.setdefault("policy", {"model": "policy-model", "api_base": server.api_base})
    if strategy in ("samples", "on_policy"):
        block.setdefault("temperature", 1.0)
    return block


def run(server: Any, tmp_path: Any, *extra: str, n: int = 6, generation: dict[str, Any] | None = None, **sections: Any):
    server.weak_models = ("weak-model",)
    server.sample_spread = True
    sections.setdefault("instructions", {"generator": "simple", "options": {"instructions": OPENINGS}})
    gen = {"kind": "preference", "num_conversations": n, "min_turns": 1, "max_turns": 3, **(generation or {})}
    cfg = make_config(tmp_path, retry=FAST_RETRY, generation=gen, **sections)
    return invoke("generate", str(cfg), "--model", "fake-model", "--api-base", server.api_base, "--json", *extra)


def summary_of(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, result.stderr
    summary: dict[str, Any] = orjson.loads(result.stdout)
    return summary


def rejections(tmp_path: Any) -> Counter[str]:
    return Counter(r["cause"] for r in read_ledger(ledger_path(tmp_path / "out.jsonl")) if r["event"] == "rejected")


def assert_pair_rows(rows: list[dict[str, Any]], n: int) -> None:
    """Exactly n rows, each once; every pair has distinct non-empty answers to a prompt ending with the user."""
    assert len(rows) == n and len({r["id"] for r in rows}) == n
    for row in rows:
        pairs = row_pairs(row)
        assert pairs, row
        for prompt, chosen, rejected in pairs:
            assert prompt and prompt[-1]["role"] == "user"
            assert chosen["role"] == rejected["role"] == "assistant"
            assert chosen["content"].strip() and rejected["content"].strip()
            assert chosen["content"] != rejected["content"]
            # The conversation goes on with the chosen answer.
            assert row["conversations"][len(prompt)]["content"] == chosen["content"]


@pytest.mark.parametrize("strategy", ["models", "samples", "degrade", "on_policy"])
def test_each_strategy_ends_with_exactly_n_rows_of_pairs(fake_server, tmp_path, strategy) -> None:
    summary = summary_of(run(fake_server, tmp_path, preference=preference(fake_server, strategy)))
    rows = read_rows(tmp_path / "out.jsonl")
    assert_pair_rows(rows, 6)
    for row in rows:
        info = row["metadata"]["preference"]
        assert info["strategy"] == strategy and info["turn"] == len(row["conversations"]) // 2  # at_turn last
        assert info["margin"] >= 0.1 and len(info["rationale"]) == 2 and info["judge_model"]
        scores = [c["score"] for c in info["candidates"]]
        assert scores[info["chosen"]] > scores[info["rejected"]]
        assert {c["source"] for c in info["candidates"]} == {
            "models": {"respondent", "rejected_model"},
            "samples": {"respondent", "sample"},
            "degrade": {"respondent", "degraded"},
            "on_policy": {"policy"},
        }[strategy]
        # The judge decides, whatever wrote the answer: here the fake judge marks weak, degraded and later
        # samples down, so the respondent's (or the first sample's) answer wins.
        assert info["candidates"][info["chosen"]]["source"] in ("respondent", "policy")
    if strategy == "models":
        assert {r["metadata"]["preference"]["rejected_model"] for r in rows} == {"openai/weak-model"}
    if strategy == "degrade":
        assert all(r["metadata"]["preference"]["axis"] in ("ignores_persona", "verbose", "wrong") for r in rows)
    pairs = summary["preference"]
    assert pairs["kept"] == 6 and pairs["judged"] == 6 + pairs["ties"] + pairs["disagreements"]
    # Two judge calls (both orders) per judged pair, each one counted like every other call.
    assert fake_server.stats["comparisons"] == 2 * pairs["judged"]
    assert summary["calls"] == fake_server.stats["ok"]


def test_every_turn_branches_and_the_dialog_follows_the_chosen_answers(fake_server, tmp_path) -> None:
    summary = summary_of(
        run(
            fake_server,
            tmp_path,
            generation={"min_turns": 3},
            preference=preference(fake_server, "degrade", at_turn="every"),
        )
    )
    rows = read_rows(tmp_path / "out.jsonl")
    assert_pair_rows(rows, 6)
    for row in rows:
        turns = len(row["conversations"]) // 2
        kept = [p["turn"] for p in row["earlier_pairs"]] + [row["metadata"]["preference"]["turn"]]
        dropped = [d["turn"] for d in row["metadata"]["preference"]["dropped"]]
        assert sorted(kept + dropped) == list(range(1, turns + 1))
        assert all(not a["content"].startswith("Roughly") for a in row["conversations"][1::2])
    assert summary["preference"]["kept"] == sum(len(row_pairs(r)) for r in rows) > 6


def test_random_turn_cuts_the_dialog_at_its_pair(fake_server, tmp_path) -> None:
    summary_of(
        run(
            fake_server,
            tmp_path,
            n=12,
            generation={"min_turns": 3},
            preference=preference(fake_server, "samples", at_turn="random"),
        )
    )
    rows = read_rows(tmp_path / "out.jsonl")
    assert_pair_rows(rows, 12)
    turns = {r["metadata"]["preference"]["turn"] for r in rows}
    assert turns <= {1, 2, 3} and len(turns) > 1
    assert all(r["metadata"]["preference"]["turn"] == len(r["conversations"]) // 2 for r in rows)


def test_a_user_who_ends_early_still_gets_a_pair_at_the_last_turn(fake_server, tmp_path) -> None:
    """The simulated user says [END] after the first answer of a planned three: the pair branches there, and for
    on_policy the respondent's answer the dialog already has is replaced by the policy's candidates."""
    fake_server.end_rate = 1.0
    settings = preference(fake_server, "on_policy")
    summary = summary_of(run(fake_server, tmp_path, n=4, generation={"min_turns": 3}, preference=settings))
    rows = read_rows(tmp_path / "out.jsonl")
    assert_pair_rows(rows, 4)
    assert all(r["metadata"]["ended_by"] == "end_token" and len(r["conversations"]) == 2 for r in rows)
    assert all(r["chosen"]["content"].endswith(")") for r in rows)  # a policy sample's take, not the respondent's
    assert fake_server.stats["models"]["policy-model"] == 2 * summary["preference"]["judged"]


def test_position_bias_is_a_rejected_item_replaced_and_counted(fake_server, tmp_path) -> None:
    fake_server.judge_position_bias = 0.4
    settings = preference(fake_server, "degrade", max_dropped_share=0.9)
    summary = summary_of(run(fake_server, tmp_path, n=20, preference=settings))
    rows = read_rows(tmp_path / "out.jsonl")
    assert_pair_rows(rows, 20)
    causes = rejections(tmp_path)
    pairs = summary["preference"]
    assert causes["pair_disagreement"] == pairs["disagreements"] == pairs["position_bias"] > 0
    assert summary["rejected_by_cause"] == dict(causes)
    assert pairs["judged"] == 20 + sum(causes.values())
    assert pairs["agreement_rate"] == round((pairs["judged"] - pairs["disagreements"]) / pairs["judged"], 4)
    assert summary["rows_total"] == 20


def test_ties_are_counted_and_replaced(fake_server, tmp_path) -> None:
    fake_server.judge_flat = 0.3
    summary = summary_of(
        run(fake_server, tmp_path, n=12, preference=preference(fake_server, "degrade", max_dropped_share=0.9))
    )
    assert_pair_rows(read_rows(tmp_path / "out.jsonl"), 12)
    assert summary["preference"]["ties"] == rejections(tmp_path)["pair_tie"] > 0


def test_a_judge_that_cannot_decide_stops_the_run_naming_the_budget(fake_server, tmp_path) -> None:
    fake_server.judge_position_bias = 1.0  # every comparison prefers the answer shown first
    result = run(fake_server, tmp_path, n=30, preference=preference(fake_server, "models"))
    assert result.exit_code == 1
    assert "preference.max_dropped_share" in result.stderr and "pair_disagreement" in result.stderr
    assert "position bias" in result.stderr and "Traceback" not in result.stderr
    assert rejections(tmp_path)["pair_disagreement"] >= 10


def test_pairs_below_min_margin_are_dropped(fake_server, tmp_path) -> None:
    # The fake judge: the respondent's answer 0.9, the weak model's 0.6 → a margin of 0.3.
    result = run(fake_server, tmp_path, n=12, preference=preference(fake_server, "models", min_margin=0.35))
    assert result.exit_code == 1 and "pair_margin" in result.stderr and "margin 0.3" in result.stderr
    kept = summary_of(
        run(fake_server, tmp_path, "--overwrite", n=4, preference=preference(fake_server, "models", min_margin=0.3))
    )
    assert kept["preference"]["kept"] == 4


def test_identical_candidates_are_not_sent_to_the_judge(fake_server, tmp_path) -> None:
    settings = preference(fake_server, "samples", max_dropped_share=0.9)
    settings.pop("temperature")  # the fake server answers a repeated request alike unless it samples
    result = run(fake_server, tmp_path, n=12, preference=settings)
    assert result.exit_code == 1 and "pair_identical" in result.stderr
    assert fake_server.stats["comparisons"] == 0


def test_a_degrade_axis_that_never_applies_is_named(fake_server, tmp_path) -> None:
    settings = preference(fake_server, "degrade", axes=["unfaithful"])  # the test config has no documents
    result = run(fake_server, tmp_path, n=12, preference=settings)
    assert result.exit_code == 1
    assert "no_degrade_axis" in result.stderr and "'unfaithful' needs a context" in result.stderr


def test_every_extra_call_is_counted_and_priced(fake_server, tmp_path) -> None:
    priced = {"api_base": fake_server.api_base, **PRICED}
    settings = preference(fake_server, "models", rejected_model={"model": "weak-model", **priced})
    summary = summary_of(
        run(
            fake_server,
            tmp_path,
            respondent={"model": "offline", **PRICED},
            evaluation={"judge": {"model": "judge-model", **priced}},
            preference=settings,
        )
    )
    assert summary["calls"] == fake_server.stats["ok"]
    assert summary["prompt_tokens"] == fake_server.stats["prompt_tokens"]
    expected = (summary["prompt_tokens"] * 2.0 + summary["completion_tokens"] * 8.0) / 1e6
    assert summary["cost_usd"] == pytest.approx(expected)
    models = fake_server.stats["models"]
    assert models["judge-model"] == 2 * summary["preference"]["judged"] and models["weak-model"] >= 6
    rows = read_rows(tmp_path / "out.jsonl")
    rejected_calls = sum(
        r["usage"]["calls"] for r in read_ledger(ledger_path(tmp_path / "out.jsonl")) if r["event"] == "rejected"
    )
    assert sum(r["metadata"]["usage"]["calls"] for r in rows) + rejected_calls == summary["calls"]


def test_dry_run_counts_candidate_and_judge_calls_per_row(tmp_path) -> None:
    def estimate(**settings: Any) -> dict[str, Any]:
        cfg = make_config(
            tmp_path,
            generation={"kind": "preference", "num_conversations": 100, "min_turns": 2, "max_turns": 2},
            preference=settings,
        )
        result = invoke("generate", str(cfg), "--dry-run", "--json")
        assert result.exit_code == 0, result.stderr
        return orjson.loads(result.stdout)["estimate"]

    # A two-turn dialog is 4 calls (the opening, two answers, one question).
    assert estimate(strategy="samples", candidates=4)["calls_per_row"] == 4 + 3 + 2
    assert estimate(strategy="degrade")["calls_per_row"] == 4 + 1 + 2
    assert estimate(strategy="degrade", at_turn="every")["calls_per_row"] == 4 + 2 * (1 + 2)
    text = invoke("generate", str(make_config(tmp_path, generation={"kind": "preference"})), "--dry-run").stdout
    assert "of them candidates and judging" in text


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"preference": {"strategy": "models"}}, "strategy 'models' needs preference.rejected_model"),
        ({"preference": {"strategy": "on_policy"}}, "strategy 'on_policy' needs preference.policy"),
        ({"preference": {"strategy": "degrade", "candidates": 3}}, "apply to strategies samples and on_policy"),
        ({"preference": {"strategy": "samples", "axes": ["wrong"]}}, "preference.axes applies to strategy degrade"),
        ({"preference": {"strategy": "samples", "at_turn": "first"}}, "preference.at_turn"),
        ({"generation": {"kind": "conversation"}, "preference": {}}, "set generation.kind: preference"),
        ({"quality": {"auto_improve": True}}, "quality.keep_pairs"),
        ({"generation": {"kind": "conversation"}, "quality": {"keep_pairs": True}}, "keep_pairs needs auto_improve"),
    ],
)
def test_config_errors_name_the_field(tmp_path, settings, message) -> None:
    sections = {"generation": {"kind": "preference"}, **settings}
    result = invoke("validate", str(make_config(tmp_path, **sections)))
    assert result.exit_code == 2, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr


def test_schema_knows_the_preference_settings() -> None:
    schema = orjson.loads(invoke("schema").stdout)
    assert "preference" in schema["$defs"]["GenerationConfig"]["properties"]["kind"]["enum"]
    settings = schema["$defs"]["PreferenceConfig"]["properties"]
    assert {"strategy", "at_turn", "candidates", "rejected_model", "policy", "axes", "min_margin"} <= set(settings)
    assert "keep_pairs" in schema["$defs"]["QualityConfig"]["properties"]


def test_the_preference_block_decides_the_fingerprint_only_in_preference_runs(tmp_path) -> None:
    from afterimage_cli.config_loader import load_config
    from afterimage_cli.engine.fingerprint import run_fingerprint

    def fingerprint(**sections: Any) -> str:
        return run_fingerprint(load_config(make_config(tmp_path, **sections)))

    plain = {"generation": {"kind": "preference"}}
    assert fingerprint(**plain) == fingerprint(**plain, preference={"strategy": "samples", "min_margin": 0.1})
    assert fingerprint(**plain) != fingerprint(**plain, preference={"min_margin": 0.2})
    assert fingerprint(**plain) == fingerprint(**plain, preference={"max_dropped_share": 0.9})  # operational
    assert fingerprint(**plain) != fingerprint(**plain, evaluation={"judge": {"model": "offline", "temperature": 0}})


def test_batch_mode_runs_candidates_and_both_orders_in_rounds(fake_server, tmp_path) -> None:
    sections = {"batch": {"poll_interval": 0.01}}
    settings = preference(fake_server, "samples", candidates=3)
    summary = summary_of(
        run(fake_server, tmp_path, "--mode", "batch", n=8, generation={"min_turns": 3}, preference=settings, **sections)
    )
    rows = read_rows(tmp_path / "out.jsonl")
    assert_pair_rows(rows, 8)
    assert fake_server.stats["requests"] == 0  # every call went through the batch API
    received = fake_server.batch_api.lines_received
    assert max(received.values()) == 1 and sum(received.values()) == summary["calls"]
    assert fake_server.stats["comparisons"] == 2 * summary["preference"]["judged"]
    # A three-turn dialog is five rounds (answer, question, answer, question, the branch's candidates at once);
    # both orders of the comparison are one more.
    assert summary["batch"]["rounds"] == 6
    again = summary_of(
        run(fake_server, tmp_path, "--mode", "batch", n=8, generation={"min_turns": 3}, preference=settings, **sections)
    )
    assert again["rows_resumed"] == 8 and again["calls"] == 0


@pytest.mark.parametrize("bias", [0.0, 1.0])
def test_evaluate_reports_agreement_margins_and_position_bias_of_the_pairs(fake_server, tmp_path, bias) -> None:
    summary_of(
        run(
            fake_server,
            tmp_path,
            n=6,
            generation={"min_turns": 2},
            preference=preference(fake_server, "degrade", at_turn="every"),
        )
    )
    pairs = sum(len(row_pairs(r)) for r in read_rows(tmp_path / "out.jsonl"))
    fake_server.judge_position_bias = bias
    out = tmp_path / "judged.jsonl"
    args = ("evaluate", str(tmp_path / "out.jsonl"), "-o", str(out), "--judge-model", "fake-model")
    result = invoke(*args, "--api-base", fake_server.api_base, "--json")
    report = summary_of(result)["preference"]
    assert report["pairs"] == pairs
    if bias == 0:  # the fake judge sees the degraded answer 0.3 below, in both orders
        assert report["label_agreement_rate"] == report["order_agreement_rate"] == 1.0
        assert report["position_bias_rate"] == 0.0 and report["margin"]["p50"] == pytest.approx(0.3)
    else:  # it prefers whatever it is shown first
        assert report["label_agreement_rate"] == report["order_agreement_rate"] == 0.0
        assert report["position_bias_rate"] == 1.0 and report["disagreements"] == pairs
    reviews = [review for row in read_rows(out) for review in row["evaluation"]["preference"]]
    assert len(reviews) == pairs and all(r["judge_model"] for r in reviews)
    text = invoke(*args, "--api-base", fake_server.api_base).stderr  # resumed: the report reads the rows written
    assert "preference pairs:" in text and "position bias" in text


def test_api_base_points_the_policy_at_the_server_too(fake_server, tmp_path) -> None:
    settings = preference(fake_server, "on_policy", policy={"model": "policy-model"})
    summary_of(run(fake_server, tmp_path, n=2, preference=settings))
    assert fake_server.stats["models"]["policy-model"] >= 4
    offline = preference(fake_server, "on_policy", policy={"model": "offline"})
    result = run(fake_server, tmp_path, "--overwrite", n=2, preference=offline)
    assert result.exit_code == 2 and "set preference.policy.model" in result.stderr


def test_a_candidate_that_fails_a_hygiene_check_is_sampled_afresh(fake_server, tmp_path) -> None:
    """A one-character answer would make a pair any judge settles, and teach nothing: candidates pass the run's
    turn checks like the dialog's answers, or are regenerated (with a seed of their own) until they do."""
    fake_server.rate_short = 0.4
    summary = summary_of(run(fake_server, tmp_path, n=8, preference=preference(fake_server, "samples", candidates=3)))
    rows = read_rows(tmp_path / "out.jsonl")
    assert_pair_rows(rows, 8)
    assert all(len(side["content"]) > 1 for r in rows for _, *sides in row_pairs(r) for side in sides)
    assert summary["regenerated_by_check"].get("short", 0) > 0
