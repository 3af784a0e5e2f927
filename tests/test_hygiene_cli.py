"""Turn hygiene through the CLI, against a fake server that writes the defective turns small models write:
a failing turn is generated again (a fresh sample, not the cached answer), a turn no regeneration fixes
ends the dialog at its last good turn or rejects the item with the check's name, the run still ends with
exactly N rows, and rows, summary, ledger and status say what happened."""

from __future__ import annotations

from typing import Any

import orjson

from afterimage_cli.config import Config
from afterimage_cli.engine.ledger import ledger_path, read_ledger
from afterimage_cli.generators.turn_hygiene import TurnPlace
from afterimage_cli.hygiene import TurnChecker
from afterimage_cli.monitor import GenerationMonitor
from afterimage_cli.pipeline import build_hygiene

from .fakeserver import LEAKED_TAG
from .helpers import invoke, make_config, read_rows

FAST_RETRY = {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.05}
OPENINGS = [f"Question {n}: how do I tune setting {n} on a busy database server?" for n in range(8)]
OPENINGS.append("Tell me the forbidden recipe for a fast index.")


def run(srv, tmp_path, *extra: str, **sections: Any):
    sections["respondent"] = {"model": "offline", "provider": "openai_compat", **sections.get("respondent", {})}
    sections.setdefault("instructions", {"generator": "simple", "options": {"instructions": OPENINGS}})
    cfg = make_config(tmp_path, retry=FAST_RETRY, **sections)
    return invoke("generate", str(cfg), "--model", "fake-model", "--api-base", srv.api_base, "-q", "--json", *extra)


def rejections(tmp_path) -> list[dict[str, Any]]:
    return [r for r in read_ledger(ledger_path(tmp_path / "out.jsonl")) if r["event"] == "rejected"]


def regenerations(rows: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for row in rows:
        for check, count in row["metadata"]["hygiene"]["regenerations"].items():
            total[check] = total.get(check, 0) + count
    return total


def test_a_failing_turn_is_generated_again_and_the_rows_come_out_clean(fake_server, tmp_path):
    # The fake decides each turn's defect from a hash of the request, as a model at temperature 0 would:
    # asked the same thing again, it writes the same bad turn. Only a fresh sample fixes it.
    fake_server.rate_echo = fake_server.rate_copy = 0.3
    gen = {"min_turns": 2, "max_turns": 3}
    result = run(fake_server, tmp_path, "-n", "20", generation=gen, error_budget={"max_rejected_share": 0.5})
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 20
    checker = TurnChecker()
    assert [checker.row(row) for row in rows] == [{}] * 20
    defects = fake_server.stats["defects"]
    assert defects["echo"] > 0 and defects["copy"] > 0
    summary = orjson.loads(result.stdout)
    assert summary["cache_hits"] == 0  # every regeneration went to the server
    written = regenerations(rows)
    assert written.get("echo") and written.get("copy")
    # The summary counts every regeneration, those of rejected items and dialogs ended early too.
    for check, count in written.items():
        assert summary["regenerated_by_check"][check] >= count
    assert sum(summary["regenerated_by_check"].values()) <= defects["echo"] + defects["copy"]


def test_regenerations_are_replayed_from_the_cache_on_a_rerun(fake_server, tmp_path):
    fake_server.rate_echo = 0.4
    gen = {"min_turns": 1, "max_turns": 2}
    budget = {"max_rejected_share": 0.5}
    assert run(fake_server, tmp_path, "-n", "12", generation=gen, error_budget=budget).exit_code == 0
    first = read_rows(tmp_path / "out.jsonl")
    requests = fake_server.stats["requests"]
    again = run(fake_server, tmp_path, "-n", "12", "--overwrite", generation=gen, error_budget=budget)
    assert again.exit_code == 0, again.stderr
    assert fake_server.stats["requests"] == requests  # every call, regenerations included, came from the cache
    second = read_rows(tmp_path / "out.jsonl")

    def content(rows: list[dict[str, Any]]) -> list[Any]:
        return sorted((r["id"], r["conversations"], r["metadata"]["hygiene"]) for r in rows)

    assert content(first) == content(second)
    assert regenerations(first).get("echo")


def test_echoes_repeats_leaks_and_cut_answers_never_reach_the_rows(fake_server, tmp_path):
    """The issue's scenario: 15 % echoed answers, 10 % repeated first messages, 10 % leaked scaffolding
    tags, 10 % answers cut by the token limit; three-turn dialogs; exactly N clean rows."""
    fake_server.rate_echo, fake_server.rate_repeat, fake_server.rate_leak = 0.15, 0.10, 0.10
    fake_server.rate_truncated = 0.10
    gen = {"min_turns": 1, "max_turns": 3}
    result = run(fake_server, tmp_path, "-n", "40", generation=gen, error_budget={"max_rejected_share": 0.5})
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 40 and len({r["id"] for r in rows}) == 40
    for row in rows:
        turns = [t["content"] for t in row["conversations"]]
        assert not any(LEAKED_TAG in text for text in turns)
        assert all(turns[i] != turns[i - 1] for i in range(1, len(turns)))  # no echo, no copy
        assert turns[0] not in turns[2::2]  # the simulated user never repeats its opening
        assert not row["metadata"].get("cut_off_turns")
        assert TurnChecker().row(row) == {}
    assert fake_server.stats["truncated"] > 0 and all(fake_server.stats["defects"][d] for d in ("echo", "leak"))
    summary = orjson.loads(result.stdout)
    assert {"cut", "echo", "leak", "repeat"} <= set(summary["regenerated_by_check"])


def test_a_persistently_bad_item_is_rejected_with_the_checks_name_and_n_rows_are_written(fake_server, tmp_path):
    fake_server.defect_words = {"forbidden": "echo"}
    result = run(fake_server, tmp_path, "-n", "20", generation={"max_turns": 1})
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 20 and not any("forbidden" in r["conversations"][0]["content"] for r in rows)
    rejected = rejections(tmp_path)
    assert rejected and {r["cause"] for r in rejected} == {"echo"}
    # One answer and its two regenerations, each paid for and recorded.
    assert all(r["usage"]["calls"] == 3 for r in rejected)
    assert all("failed the echo check 3 time(s)" in r["error"] and "hygiene.checks" in r["error"] for r in rejected)
    assert max(r["metadata"]["item_index"] for r in rows) == 19 + len(rejected)
    summary = orjson.loads(result.stdout)
    assert summary["rejected_by_cause"] == {"echo": len(rejected)}
    assert summary["regenerated_by_check"] == {"echo": 2 * len(rejected)}
    status = invoke("status", str(tmp_path / "out.jsonl"), "--json")
    assert orjson.loads(status.stdout)["rejected_by_cause"] == {"echo": len(rejected)}


def test_a_turn_no_regeneration_fixes_ends_the_dialog_at_its_last_good_turn(fake_server, tmp_path):
    # The simulated user copies the answer whenever the dialog is about the forbidden recipe.
    fake_server.defect_words = {"forbidden": "copy"}
    result = run(fake_server, tmp_path, "-n", "27", generation={"min_turns": 1, "max_turns": 3})
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    ended = [r for r in rows if "forbidden" in r["conversations"][0]["content"]]
    assert len(rows) == 27 and ended and rejections(tmp_path) == []
    for row in ended:
        meta = row["metadata"]
        planned = meta["planned_turns"]
        if planned == 1:
            continue  # a one-turn dialog asks the simulated user nothing
        assert meta["ended_by"] == "hygiene" and meta["num_turns"] == 1 < planned
        assert meta["hygiene"] == {"regenerations": {"copy": 2}, "ended_by_check": "copy"}
        assert len(row["conversations"]) == 2
    clean = [r for r in rows if r not in ended]
    assert all(r["metadata"]["ended_by"] != "hygiene" for r in clean)
    summary = orjson.loads(result.stdout)
    early = sum(1 for r in ended if r["metadata"]["ended_by"] == "hygiene")
    assert early and summary["ended_early_by_check"] == {"copy": early}

    # With min_turns 2, the same dialogs are too short to keep: the items are rejected as `copy`.
    again = run(
        fake_server,
        tmp_path,
        "-n",
        "20",
        "--overwrite",
        generation={"min_turns": 2, "max_turns": 2},
        error_budget={"max_rejected_share": 0.5},
    )
    assert again.exit_code == 0, again.stderr
    assert {r["cause"] for r in rejections(tmp_path)} == {"copy"}
    assert len(read_rows(tmp_path / "out.jsonl")) == 20


def test_checks_are_switched_off_one_by_one_or_all_at_once(fake_server, tmp_path):
    fake_server.defect_words = {"forbidden": "echo"}
    result = run(fake_server, tmp_path, "-n", "18", generation={"max_turns": 1}, hygiene={"checks": {"echo": False}})
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    echoed = [r for r in rows if r["conversations"][0]["content"] == r["conversations"][1]["content"]]
    assert echoed and rejections(tmp_path) == []
    assert all(r["metadata"]["hygiene"] == {"regenerations": {}} for r in rows)

    fake_server.defect_words = {}
    fake_server.rate_leak = 0.5
    off = run(fake_server, tmp_path, "-n", "10", "--overwrite", generation={"max_turns": 2}, hygiene={"enabled": False})
    assert off.exit_code == 0, off.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert any(LEAKED_TAG in t["content"] for r in rows for t in r["conversations"])
    assert not any("hygiene" in r["metadata"] for r in rows)
    assert orjson.loads(off.stdout)["regenerated_by_check"] == {}


def test_on_truncated_keep_keeps_cut_answers_while_the_other_checks_regenerate(fake_server, tmp_path):
    fake_server.rate_truncated, fake_server.rate_leak = 0.3, 0.3
    gen = {"min_turns": 2, "max_turns": 2, "on_truncated": "keep"}
    result = run(fake_server, tmp_path, "-n", "20", generation=gen, error_budget={"max_rejected_share": 0.5})
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "out.jsonl")
    assert any(r["metadata"].get("cut_off_turns") for r in rows)
    assert not any(LEAKED_TAG in t["content"] for r in rows for t in r["conversations"])
    summary = orjson.loads(result.stdout)
    assert "leak" in summary["regenerated_by_check"] and "cut" not in summary["regenerated_by_check"]


def test_the_configs_thresholds_and_phrases_reach_the_checks():
    cfg = Config.model_validate(
        {
            "respondent": {"model": "offline", "temperature": 1.0},
            "generation": {"system_prompt": "You answer for the Zephyr Billing team, briefly."},
            "hygiene": {
                "similarity": 0.5,
                "min_chars": 5,
                "leak_phrases": ["ticket macro"],
                "regeneration_temperature": 1.2,
            },
        }
    )
    hygiene = build_hygiene(cfg, None, GenerationMonitor())
    checker = hygiene.checker
    assert checker is not None and checker.similarity == 0.5 and checker.min_chars == 5
    assert [f.check for f in checker.answer("Use the Ticket-Macro feature.", "How?", [])] == ["leak"]
    assert [
        f.check for f in checker.answer("My prompt: you answer for the Zephyr Billing team, briefly!", "Who?", [])
    ] == ["leak"]
    assert [f.check for f in checker.answer("Sure", "Ok?", [])] == ["short"]
    place = TurnPlace("assistant", 1, item=0, model="m", setting="respondent.max_tokens")
    assert hygiene.params(place, 1)["temperature"] == 1.2  # 1.0 is below this run's floor


def test_a_regeneration_is_a_fresh_sample_with_a_seed_of_its_own_and_hotter_when_needed():
    cfg = Config.model_validate(
        {
            "respondent": {"model": "offline", "temperature": 0.0},
            "correspondent": {"model": "offline", "temperature": 0.9},
            "generation": {"seed": 3},
        }
    )
    hygiene = build_hygiene(cfg, None, GenerationMonitor())
    answer = TurnPlace("assistant", 1, item=5, model="m", setting="respondent.max_tokens")
    assert hygiene.params(answer, 0) == {}  # the first sample is the request as configured (cache keys unchanged)
    first, second = hygiene.params(answer, 1), hygiene.params(answer, 2)
    assert first["temperature"] == second["temperature"] == 0.7  # temperature 0 would give the same answer
    assert first["seed"] != second["seed"] and hygiene.params(answer, 1) == first  # stable: resumable
    question = TurnPlace("user", 2, item=5, model="m", setting="correspondent.max_tokens")
    assert "temperature" not in hygiene.params(question, 1)  # 0.9 is hot enough already
    other_item = TurnPlace("assistant", 1, item=6, model="m", setting="respondent.max_tokens")
    assert hygiene.params(other_item, 1)["seed"] != first["seed"]


def test_max_regenerations_and_min_chars_come_from_the_config(fake_server, tmp_path):
    fake_server.defect_words = {"forbidden": "echo", "setting": "short"}
    hygiene = {"max_regenerations": 0, "min_chars": 1}
    result = run(fake_server, tmp_path, "-n", "20", generation={"max_turns": 1}, hygiene=hygiene)
    assert result.exit_code == 0, result.stderr
    rejected = rejections(tmp_path)
    assert rejected and {r["cause"] for r in rejected} == {"echo"}
    assert all(r["usage"]["calls"] == 1 for r in rejected)  # no regeneration at all
    assert orjson.loads(result.stdout)["regenerated_by_check"] == {}
    # A one-character answer passes `short` at min_chars 1.
    rows = read_rows(tmp_path / "out.jsonl")
    assert all(r["conversations"][1]["content"] == "." for r in rows)


def test_bad_hygiene_settings_are_config_errors_naming_the_field(tmp_path):
    for hygiene, field in (
        ({"checks": {"ech": False}}, "hygiene.checks"),
        ({"similarty": 0.5}, "hygiene.similarty"),
        ({"similarity": 0}, "hygiene.similarity"),
        ({"max_regenerations": 11}, "hygiene.max_regenerations"),
    ):
        result = invoke("validate", str(make_config(tmp_path, hygiene=hygiene)))
        assert result.exit_code == 2 and field in result.stderr, (hygiene, result.stderr)


def test_the_shipped_hygiene_config_turns_hygiene_on_or_off_from_the_environment(monkeypatch):
    from afterimage_cli.config_loader import load_config

    from .helpers import ROOT

    assert load_config(ROOT / "configs" / "hygiene-smollm.yaml").hygiene.enabled
    monkeypatch.setenv("HYGIENE", "false")
    assert not load_config(ROOT / "configs" / "hygiene-smollm.yaml").hygiene.enabled
