"""Spending budgets: refused when a model has no price, every billed answer counted (unusable ones too),
and a budget stop that finishes the items already under way instead of throwing their calls away."""

from __future__ import annotations

import orjson
import pytest
import yaml

from .evaluate_helpers import conversation_row, write_rows
from .helpers import invoke, make_config, read_rows

FAST_RETRY = {"max_attempts": 10, "base_delay": 0.01, "max_delay": 0.05}
PRICE = {"input_cost_per_million": 2.0, "output_cost_per_million": 8.0}
VERBATIM = {"generator": "simple", "options": {"instructions": ["How do I sort a list?", "What is a cache?"]}}


def generate(srv, cfg, *extra: str):
    return invoke("generate", str(cfg), "--api-base", srv.api_base, "-q", *extra)


@pytest.mark.parametrize(
    "sections,flags,field",
    [
        ({}, ("--max-cost", "5"), "respondent"),
        ({"budget": {"max_cost_usd": 5.0}}, (), "respondent"),
        (
            {"respondent": {"model": "fake-model", **PRICE}, "correspondent": {"model": "new-model"}},
            ("--max-cost", "5"),
            "correspondent",
        ),
    ],
)
def test_a_cost_budget_over_an_unpriced_model_is_refused_at_start(
    fake_server, tmp_path, sections, flags, field
) -> None:
    sections = {"respondent": {"model": "fake-model"}, **sections}
    if "correspondent" in sections:
        sections["correspondent"] = {**sections["correspondent"], "api_base": fake_server.api_base}
    cfg = make_config(tmp_path, retry=FAST_RETRY, **sections)
    result = generate(fake_server, cfg, "-n", "3", *flags)
    assert result.exit_code == 2, result.stderr
    message = result.stderr
    model = sections[field]["model"]
    assert f"{field} model '{model}' has no known price" in message
    assert f"{field}.input_cost_per_million" in message and f"{field}.output_cost_per_million" in message
    assert fake_server.stats["requests"] == 0 and not (tmp_path / "out.jsonl").exists()


def test_validate_and_dry_run_say_so_too(fake_server, tmp_path) -> None:
    served = {"model": "fake-model", "api_base": fake_server.api_base}
    cfg = make_config(tmp_path, respondent=served, budget={"max_cost_usd": 5.0})
    for args in (("validate", str(cfg)), ("generate", str(cfg), "--dry-run")):
        result = invoke(*args)
        assert result.exit_code == 2 and "respondent model 'fake-model' has no known price" in result.stderr


def test_a_priced_model_or_a_token_budget_needs_no_price_map(fake_server, tmp_path) -> None:
    cfg = make_config(tmp_path, retry=FAST_RETRY, respondent={"model": "fake-model", **PRICE})
    assert generate(fake_server, cfg, "-n", "2", "--max-cost", "5").exit_code == 0
    unpriced = make_config(tmp_path, retry=FAST_RETRY, respondent={"model": "fake-model"})
    assert generate(fake_server, unpriced, "-n", "3", "--max-total-tokens", "100000").exit_code == 0


def test_evaluate_refuses_a_cost_budget_over_an_unpriced_judge(fake_server, tmp_path) -> None:
    source = write_rows(tmp_path / "in.jsonl", [conversation_row(i) for i in range(3)])
    config = tmp_path / "evaluate.yaml"
    judge = {"model": "fake-model", "api_base": fake_server.api_base}
    config.write_text(yaml.safe_dump({"respondent": judge, "budget": {"max_cost_usd": 1.0}}))
    result = invoke("evaluate", str(source), "-o", str(tmp_path / "out.jsonl"), "--config", str(config))
    assert result.exit_code == 2 and "evaluation.judge model 'fake-model' has no known price" in result.stderr
    assert fake_server.stats["requests"] == 0


def test_unusable_structured_answers_are_counted_in_tokens_and_cost(fake_server, tmp_path) -> None:
    fake_server.rate_bad_structured = 0.4
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    cfg = make_config(
        tmp_path,
        retry=FAST_RETRY,
        respondent={"model": "fake-model", **PRICE},
        generation={"kind": "structured", "output_schema": schema},
    )
    result = generate(fake_server, cfg, "-n", "20", "--json", "--max-cost", "100")
    assert result.exit_code == 0, result.stderr
    summary = orjson.loads(result.stdout)
    stats = fake_server.stats
    assert stats["bad_structured"] > 0 and summary["errors"]["invalid_output"] == stats["bad_structured"]
    # Every answer the server billed is counted, the rejected ones included.
    assert summary["calls"] == stats["ok"]
    assert summary["prompt_tokens"] == stats["prompt_tokens"]
    assert summary["completion_tokens"] == stats["completion_tokens"]
    billed = (stats["prompt_tokens"] * 2.0 + stats["completion_tokens"] * 8.0) / 1e6  # PRICE, per token
    assert summary["cost_usd"] == pytest.approx(billed)
    rows = read_rows(tmp_path / "out.jsonl")
    assert sum(r["metadata"]["usage"]["cost_usd"] for r in rows) == pytest.approx(billed)


def test_a_budget_stop_finishes_the_items_under_way_and_resumes(fake_server, tmp_path) -> None:
    fake_server.latency = 0.01
    cfg = make_config(
        tmp_path,
        retry=FAST_RETRY,
        respondent={"model": "fake-model", **PRICE},
        generation={"min_turns": 3, "max_turns": 3, "concurrency": 8},
        instructions=VERBATIM,
    )
    result = generate(fake_server, cfg, "-n", "60", "--max-cost", "0.002")
    assert result.exit_code == 1
    assert "cost budget reached" in result.stderr and "re-run" in result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert 0 < len(rows) < 60
    # Three turns are five calls (three answers, two simulated questions). Every call the server answered
    # belongs to a written row: the items in flight when the budget was reached were finished, not dropped.
    assert all(len(r["conversations"]) == 6 for r in rows)
    assert fake_server.stats["ok"] == 5 * len(rows)
    result = generate(fake_server, cfg, "-n", "60")
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 60 and len({r["id"] for r in rows}) == 60
