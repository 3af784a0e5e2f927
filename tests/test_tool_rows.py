"""The row check knows tool turns: calls pair with their results, arguments are strings, rows without tools
are checked as before; export and evaluate name the line and field of a broken tool row."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from afterimage_cli.rowcheck import row_problem
from afterimage_cli.types import ConversationRow
from tests.test_export_support import invoke_export, write_jsonl
from tests.tool_rows import call, calling, plain_row, recovery_row, result, said, tool_row


def test_tool_rows_pass_in_both_modes_and_validate_as_the_row_model() -> None:
    for row in (tool_row(), recovery_row(), plain_row()):
        assert row_problem(row) is None
        assert row_problem(row, strict_turns=False) is None
        ConversationRow.model_validate(row)


def test_an_answer_may_carry_an_empty_or_null_list_of_calls() -> None:
    row = plain_row()
    for empty in ([], None):
        row["conversations"][1]["tool_calls"] = empty
        assert row_problem(row) is None


def test_an_assistant_step_may_have_null_content_beside_its_calls() -> None:
    row = tool_row()
    row["conversations"][1]["content"] = None
    assert row_problem(row) is None
    row["conversations"][3]["content"] = None  # a final answer without calls still needs text
    assert row_problem(row) == "conversations[3].content: expected a string, got null"


def broken(edit: Any) -> dict[str, Any]:
    row = copy.deepcopy(tool_row())
    edit(row["conversations"])
    return row


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda turns: turns.pop(2),  # call_1's result is gone
            "conversations[1].tool_calls[0].id: call 'call_1' has no tool message (one {role: tool, "
            "tool_call_id} per call)",
        ),
        (
            lambda turns: turns.pop(7),  # the second of two parallel results is gone
            "conversations[5].tool_calls[1].id: call 'call_3' has no tool message (one {role: tool, "
            "tool_call_id} per call)",
        ),
        (
            lambda turns: turns.insert(1, result("call_9", "get_weather", "{}")),
            "conversations[1].tool_call_id: 'call_9' answers no call of the assistant message before it",
        ),
        (
            lambda turns: turns.insert(4, result("call_1", "get_weather", "{}")),  # answered twice
            "conversations[4].tool_call_id: 'call_1' answers no call of the assistant message before it",
        ),
        (
            lambda turns: turns[1]["tool_calls"][0]["function"].update(arguments={"city": "Oslo"}),
            "conversations[1].tool_calls[0].function.arguments: expected a JSON string, got an object",
        ),
        (
            lambda turns: turns[1]["tool_calls"][0].update(type="code"),
            "conversations[1].tool_calls[0].type: expected 'function', got 'code'",
        ),
        (
            lambda turns: turns[5]["tool_calls"][1].update(id="call_2"),
            "conversations[5].tool_calls[1].id: 'call_2' is used by an earlier call",
        ),
        (
            lambda turns: turns[2].pop("tool_call_id"),
            "conversations[2].tool_call_id: expected the id of a call (a string), got null",
        ),
        (
            lambda turns: turns[1].update(tool_calls={"id": "call_1"}),
            "conversations[1].tool_calls: expected a list of calls or null, got an object",
        ),
        (
            lambda turns: turns.__delitem__(slice(3, None)),  # ends on a tool result, no answer
            "conversations[3]: the last turn is a user turn with no assistant answer",
        ),
    ],
)
def test_broken_tool_turns_name_the_turn_and_field(edit: Any, message: str) -> None:
    row = broken(edit)
    if message.endswith("no assistant answer"):
        # An exchange that stops at a tool result is unanswered: the strict check wants the answer.
        assert row_problem(row) == "conversations[2]: the exchange ends on a tool result, with no assistant answer"
        return
    assert row_problem(row) == message
    assert row_problem(row, strict_turns=False) == message  # pairing holds whether or not order is checked


def test_strict_order_puts_tool_steps_inside_an_exchange() -> None:
    turns = [said("user", "q"), calling(call("c1", "get_weather", "{}")), result("c1", "get_weather", "{}")]
    row = {"conversations": [*turns, said("user", "again?"), said("assistant", "a")]}
    assert row_problem(row) == (
        "conversations[3].role: expected 'assistant' (turns alternate user/assistant, starting with user), got 'user'"
    )
    assert row_problem(row, strict_turns=False) is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("tools", {"name": "x"}, "tools: expected a list of tool definitions, got an object"),
        (
            "tools",
            [{"name": "get_weather"}],
            'tools[0]: expected {"type": "function", "function": {"name", "parameters"}}',
        ),
        ("metadata", {"tool_use": 3}, "metadata.tool_use: expected an object, got a number"),
    ],
)
def test_top_level_tool_fields_are_checked(field: str, value: Any, message: str) -> None:
    assert row_problem({**tool_row(), field: value}) == message


def test_export_and_evaluate_name_the_line_of_a_broken_tool_row(tmp_path: Path) -> None:
    bad = broken(lambda turns: turns.pop(2))
    source = write_jsonl(tmp_path / "rows.jsonl", [tool_row(0), bad])
    result = invoke_export(str(source), "--format", "messages")
    assert result.exit_code == 1
    assert f"{source}:2: conversations[1].tool_calls[0].id: call 'call_1' has no tool message" in result.output

    from typer.testing import CliRunner

    from afterimage_cli.cli import app

    evaluated = CliRunner().invoke(app, ["evaluate", str(source), "--no-judge", "-o", str(tmp_path / "e.jsonl")])
    assert evaluated.exit_code == 1
    assert f"{source}:2: conversations[1].tool_calls[0].id" in evaluated.output
    assert orjson.loads((tmp_path / "e.jsonl").read_bytes().splitlines()[0])["id"] == "tools-000"


def test_schema_rows_prints_the_row_schema_with_tool_fields() -> None:
    from typer.testing import CliRunner

    from afterimage_cli.cli import app

    printed = CliRunner().invoke(app, ["schema", "--rows"])
    assert printed.exit_code == 0, printed.output
    schema = orjson.loads(printed.stdout)
    message = schema["$defs"]["Message"]["properties"]
    assert schema["$defs"]["Message"]["properties"]["role"]["enum"] == ["user", "assistant", "tool"]
    assert {"tool_calls", "tool_call_id", "name"} <= set(message)
    assert "tools" in schema["properties"]
    config = orjson.loads(CliRunner().invoke(app, ["schema"]).stdout)
    assert "generation" in config["properties"]  # without --rows: the config's schema, as before
