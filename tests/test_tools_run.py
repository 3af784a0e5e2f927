"""Tool-calling runs through the CLI against the fake server: exactly N rows, calls and results in OpenAI's layout,
invalid calls recovered or rejected, every result source, the simulator's consistency and the targets' coverage."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import orjson

from afterimage_cli import prompts
from afterimage_cli.engine.ledger import ledger_path, read_ledger

from .helpers import invoke, read_rows
from .tools_helpers import FIVE_TOOLS, NAMES, call_pairs, check_calls, tools_config


def _generate(config) -> Any:
    result = invoke("generate", str(config), "--quiet")
    assert result.exit_code == 0, result.output
    return result


def test_five_tools_three_turns_exactly_n_rows(fake_server, tmp_path) -> None:
    fake_server.invalid_tool_args_rate = 0.2
    fake_server.parallel_tool_calls = 2
    _generate(tools_config(tmp_path, fake_server))
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 20
    with_calls = [row for row in rows if row["metadata"]["tool_use"]["calls"]]
    assert len(with_calls) / len(rows) >= 0.8
    invalid = 0
    for row in rows:
        check_calls(row)  # every call valid, or a recorded invalid one answered by an error result
        use = row["metadata"]["tool_use"]
        calls = [call for call, _ in call_pairs(row)]
        assert use["calls"] == len(calls) and use["invalid_calls"] == len(use["invalid_call_ids"])
        assert use["result_source"] == "simulate"
        assert use["tools_used"] == sorted(
            {c["function"]["name"] for c in calls if c["id"] not in use["invalid_call_ids"]}
        )
        assert [tool["function"]["name"] for tool in row["tools"]] == NAMES
        assert all("returns" not in tool["function"] for tool in row["tools"])
        assert row["metadata"]["num_turns"] == sum(1 for t in row["conversations"] if t["role"] == "user")
        invalid += use["invalid_calls"]
    assert 0 < invalid <= fake_server.stats["invalid_tool_args"]  # (a regenerated turn's calls are not kept)


def test_simulated_results_fit_returns_and_the_same_call_gets_the_same_result(fake_server, tmp_path) -> None:
    simulator_calls: list[dict[str, Any]] = []

    def count(body: dict[str, Any]) -> None:
        system = str(body["messages"][0].get("content"))
        if system.startswith(prompts.TOOL_SIMULATOR_MARKER):
            simulator_calls.append(body)
        return None

    fake_server.responder = count
    # Two calls per step to a tool list of one: the fake samples the same arguments twice, and each turn again.
    one_tool = {"definitions": [FIVE_TOOLS[0]]}
    generation = {"num_conversations": 6, "max_turns": 3, "min_turns": 3, "concurrency": 2, "seed": 3}
    fake_server.parallel_tool_calls = 2
    _generate(tools_config(tmp_path, fake_server, tools=one_tool, generation=generation))
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 6
    for row in rows:
        results: dict[bytes, set[str]] = {}
        for call, answer in call_pairs(row):
            key = orjson.dumps(orjson.loads(call["function"]["arguments"]), option=orjson.OPT_SORT_KEYS)
            results.setdefault(key, set()).add(answer["content"])
            value = orjson.loads(answer["content"])
            assert set(value) == {"temperature", "sky"}  # fits returns
        assert all(len(contents) <= 1 for contents in results.values())
        assert row["metadata"]["tool_use"]["calls"] >= 2
    # The simulator wrote one result per distinct call of each conversation, not one per call.
    calls = sum(row["metadata"]["tool_use"]["calls"] for row in rows)
    assert len(simulator_calls) == len(rows) < calls


def test_reject_mode_replaces_items_with_invalid_calls(fake_server, tmp_path) -> None:
    fake_server.invalid_tool_args_rate = 0.25
    # The fake draws invalid arguments by the user's text: requests that differ, so a replacement can succeed.
    requests = [f"Request {n}: please {NAMES[n % 5].replace('_', ' ')} for me." for n in range(40)]
    config = tools_config(
        tmp_path,
        fake_server,
        tools={"on_invalid_call": "reject"},
        instructions={"generator": "simple", "options": {"instructions": requests}},
        error_budget={"max_rejected_share": 0.8},
    )
    _generate(config)
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 20
    for row in rows:
        check_calls(row)
        assert row["metadata"]["tool_use"]["invalid_calls"] == 0
    rejected = [r for r in read_ledger(ledger_path(tmp_path / "out.jsonl")) if r["event"] == "rejected"]
    assert rejected and {r["cause"] for r in rejected} == {"invalid_tool_call"}
    assert all("tools.on_invalid_call: reject" in r["error"] for r in rejected)


def test_mock_results(fake_server, tmp_path) -> None:
    mock = {name: {"ok": name} for name in NAMES}
    mock["get_weather"] = {"temperature": 21.5, "sky": "clear"}
    mock["convert_currency"] = 12.5
    mock["send_email"] = "sent"
    _generate(tools_config(tmp_path, fake_server, tools={"results": "mock", "mock": mock}))
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 20
    seen = set()
    for row in rows:
        assert row["metadata"]["tool_use"]["result_source"] == "mock"
        for call, answer in call_pairs(row):
            name = call["function"]["name"]
            seen.add(name)
            if name == "send_email":
                assert answer["content"] == "sent"  # a string result is the content as it is
            else:
                assert orjson.loads(answer["content"]) == mock[name]
    assert len(seen) >= 3


def test_python_results(fake_server, tmp_path, monkeypatch) -> None:
    (tmp_path / "my_tools.py").write_text(
        "async def answer(name, arguments):\n"
        "    if name == 'lookup_order':\n"
        "        raise KeyError(arguments['order_id'])\n"
        "    return {'tool': name, 'echo': arguments}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_tools", None)
    _generate(tools_config(tmp_path, fake_server, tools={"results": "python", "python": "my_tools:answer"}))
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 20
    names = Counter()
    for row in rows:
        for call, answer in call_pairs(row):
            name = call["function"]["name"]
            names[name] += 1
            value = orjson.loads(answer["content"])
            if name == "lookup_order":  # the function raised: the model sees an error result
                assert value["error"].startswith("lookup_order failed: KeyError")
            else:
                assert value == {"tool": name, "echo": orjson.loads(call["function"]["arguments"])}
    assert len(names) >= 3


def test_every_tool_is_a_target_once_before_any_twice(fake_server, tmp_path) -> None:
    _generate(tools_config(tmp_path, fake_server, generation={"num_conversations": 12, "concurrency": 5}))
    rows = sorted(read_rows(tmp_path / "out.jsonl"), key=lambda r: r["metadata"]["item_index"])
    targets = [row["metadata"]["tool_use"]["target_tools"] for row in rows]
    assert [len(t) for t in targets] == [1, 2] * 6  # alone, then chained, in turn
    flat = [name for item in targets for name in item]
    assert sorted(flat[:5]) == sorted(NAMES)  # every tool once before any twice
    assert sorted(flat[5:10]) == sorted(NAMES)
    # The fake calls the tool the request names: the generated requests do ask for their targets.
    first_calls = [call_pairs(row)[0][0]["function"]["name"] for row in rows if row["metadata"]["tool_use"]["calls"]]
    assert sum(call in item for call, item in zip(first_calls, targets, strict=False)) >= len(rows) // 2
    assert all("target_tools" not in row["metadata"] for row in rows)
