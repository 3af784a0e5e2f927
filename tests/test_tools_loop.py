"""The tool loop's bounds and its place in the run: max_calls_per_turn, hygiene regenerating a turn that called
tools, an MCP server's tools, batch mode, documents + RAG + personas, kill -9 and resume, and --dry-run."""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import sys
import textwrap
import time
from typing import Any

import orjson
import pytest

from afterimage_cli.config_tools import ToolDefinition, ToolsConfig
from afterimage_cli.errors import ItemRejected
from afterimage_cli.providers.base import BaseProvider, LLMResponse, Messages, ToolCall
from afterimage_cli.tools.chat import Toolbox, ToolChat
from afterimage_cli.tools.definitions import ToolSet
from afterimage_cli.tools.sources import MockResults

from .helpers import cli_subprocess, invoke, read_rows
from .tools_helpers import FIVE_TOOLS, NAMES, call_pairs, check_calls, tools_config

PING = ToolDefinition(name="ping", parameters={"type": "object", "properties": {"n": {"type": "integer"}}})


class CallsUntilForbidden(BaseProvider):
    """A model that calls `per_step` tools at each step while it may (`ignore_none`: even when it may not)."""

    model_name = "double"

    def __init__(self, per_step: int = 1, ignore_none: bool = False) -> None:
        self.per_step, self.ignore_none = per_step, ignore_none
        self.choices: list[Any] = []

    async def acomplete(self, messages: Messages, **kwargs: Any) -> LLMResponse:
        self.choices.append(kwargs.get("tool_choice"))
        assert kwargs["tools"][0]["function"]["name"] == "ping"
        if kwargs.get("tool_choice") == "none" and not self.ignore_none:
            return LLMResponse(text="done")
        step = len(self.choices)
        calls = [
            ToolCall(id="call_0", name="ping", arguments=f'{{"n": {step * 10 + k}}}') for k in range(self.per_step)
        ]
        return LLMResponse(text="", tool_calls=calls, finish_reason="tool_calls")


def _chat(model: BaseProvider, **settings: Any) -> ToolChat:
    cfg = ToolsConfig(definitions=[PING], results="mock", mock={"ping": "pong"}, **settings)
    return ToolChat(model, "system", Toolbox(cfg, lambda: ToolSet([PING]), MockResults(cfg.mock)))


def test_a_turn_makes_at_most_max_calls_then_must_answer_in_text() -> None:
    model = CallsUntilForbidden(per_step=1)
    chat = _chat(model, max_calls_per_turn=3)
    answer = asyncio.run(chat.asend_message("hi"))
    assert answer.text == "done" and model.choices == ["auto", "auto", "auto", "none"]
    ids = [m["tool_call_id"] for m in chat.last_exchange if m["role"] == "tool"]
    assert len(ids) == 3 == len(set(ids))  # the model's repeated id call_0 made unique in the conversation
    assert [m["role"] for m in chat.history] == ["user"] + ["assistant", "tool"] * 3 + ["assistant"]


@pytest.mark.parametrize("per_step,ignore_none", [(4, False), (1, True)])
def test_a_model_that_will_not_stop_calling_rejects_the_item(per_step: int, ignore_none: bool) -> None:
    chat = _chat(CallsUntilForbidden(per_step, ignore_none), max_calls_per_turn=3, tool_choice="required")
    with pytest.raises(ItemRejected) as info:
        asyncio.run(chat.asend_message("hi"))
    assert info.value.cause == "tool_call_limit" and "tools.max_calls_per_turn (3)" in str(info.value)
    assert chat.history == []  # a failed exchange leaves the dialog as it was


def test_hygiene_regenerates_a_turn_with_tool_calls_without_keeping_the_failed_one(fake_server, tmp_path) -> None:
    bodies: list[dict[str, Any]] = []

    def short_first_answer(body: dict[str, Any]) -> str | None:
        bodies.append(body)
        last = body["messages"][-1]
        if last.get("role") == "tool" and "seed" not in body and body.get("tools"):
            return "x"  # fails the `short` check: the turn is generated again with a seed of its own
        return None

    fake_server.responder = short_first_answer
    generation = {"num_conversations": 4, "min_turns": 2, "max_turns": 2, "concurrency": 2}
    assert invoke("generate", str(tools_config(tmp_path, fake_server, generation=generation)), "-q").exit_code == 0
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 4
    for row in rows:
        check_calls(row)
        assert row["metadata"]["hygiene"]["regenerations"].get("short", 0) >= 1
        assert all(t["content"] != "x" for t in row["conversations"])
    for body in bodies:  # no request ever carried a discarded attempt's steps
        ids = [c["id"] for m in body["messages"] for c in m.get("tool_calls") or ()]
        assert len(ids) == len(set(ids)), ids
        assert sum(1 for m in body["messages"] if m["role"] == "tool") == len(ids)


MCP_SERVER = textwrap.dedent(
    """
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("tiny")


    @server.tool()
    def add(a: int, b: int) -> int:
        \"\"\"Add two whole numbers.\"\"\"
        return a + b


    @server.tool()
    def shout(text: str) -> str:
        \"\"\"The text in capitals.\"\"\"
        return text.upper()


    if __name__ == "__main__":
        server.run("stdio")
    """
)


@pytest.mark.skipif(
    importlib.util.find_spec("mcp") is None or importlib.util.find_spec("mcp.server.mcpserver") is None,
    reason="needs the mcp 2.x package (pip install 'afterimage[mcp]')",
)
def test_mcp_server_gives_the_tools_and_answers_the_calls(fake_server, tmp_path) -> None:
    (tmp_path / "server.py").write_text(MCP_SERVER)
    tools = {"from_mcp": {"command": sys.executable, "args": [str(tmp_path / "server.py")]}, "results": "mcp"}
    config = tools_config(tmp_path, fake_server, tools=tools, generation={"num_conversations": 6})
    result = invoke("generate", str(config), "-q")
    assert result.exit_code == 0, result.output
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 6
    assert [t["function"]["name"] for t in rows[0]["tools"]] == ["add", "shout"]
    answered = 0
    for row in rows:
        assert row["metadata"]["tool_use"]["result_source"] == "mcp"
        for call, answer in call_pairs(row):
            arguments = orjson.loads(call["function"]["arguments"])
            expected = arguments["a"] + arguments["b"] if call["function"]["name"] == "add" else None
            if expected is not None:
                assert answer["content"] == str(expected)
            else:
                assert answer["content"] == arguments["text"].upper()
            answered += 1
    assert answered >= 6


def test_batch_mode_runs_each_tool_step_as_a_round(fake_server, tmp_path) -> None:
    config = tools_config(
        tmp_path, fake_server, generation={"num_conversations": 6, "max_turns": 2}, batch={"poll_interval": 0.01}
    )
    result = invoke("generate", str(config), "--mode", "batch", "--json")
    assert result.exit_code == 0, result.output
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 6 and fake_server.stats["requests"] == 0  # every call went through the batch API
    assert sum(1 for row in rows if row["metadata"]["tool_use"]["calls"]) >= 5
    for row in rows:
        check_calls(row)
    assert orjson.loads(result.stdout)["batch"]["rounds"] >= 4  # opening, call, simulated result, answer


def test_documents_rag_and_personas_still_apply(fake_server, tmp_path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "travel.md").write_text(
        "Lisbon airport (LIS) is 7 km from the centre. The metro red line reaches it in twenty minutes.\n\n"
        "Refunds for cancelled flights are paid within seven days to the card used for the booking."
    )
    config = tools_config(
        tmp_path,
        fake_server,
        generation={"num_conversations": 6, "max_turns": 2},
        documents={"sources": [str(docs)], "chunk_size": 100, "chunk_overlap": 10},
        retriever={"type": "qdrant", "path": ":memory:", "top_k": 1},
        modifiers=[{"name": "persona"}, {"name": "rag"}],
    )
    openings: list[str] = []

    def record(body: dict[str, Any]) -> None:
        text = str(body["messages"][-1].get("content"))
        if text.startswith("Write the first message"):
            openings.append(text)

    fake_server.responder = record
    assert invoke("generate", str(config), "-q").exit_code == 0
    rows = read_rows(tmp_path / "out.jsonl")
    assert len(rows) == 6
    # Each request was asked for in the item's persona's voice, about its target tools and a document chunk.
    assert len(openings) == 6 and all("You are: a student" in o or "You are: an engineer" in o for o in openings)
    assert all("Context:" in o and "The tools the assistant has:" in o for o in openings)
    assert all(row["persona"] in ("a student", "an engineer") for row in rows)
    assert all(row["instruction_context"] and row["response_context"] for row in rows)
    assert all(row["metadata"]["document_ids"] for row in rows)
    assert sum(1 for row in rows if row["metadata"]["tool_use"]["calls"]) >= 5


def test_kill_9_then_resume_gives_exactly_n(fake_server, tmp_path) -> None:
    fake_server.latency = 0.03
    fake_server.hang_after = 120  # some rows, never all: the kill lands mid-run
    config = tools_config(tmp_path, fake_server, generation={"num_conversations": 30, "concurrency": 4})
    out = tmp_path / "out.jsonl"
    proc = cli_subprocess("generate", str(config), "--quiet")
    deadline = time.monotonic() + 60
    while not out.exists() or out.read_bytes().count(b"\n") < 5:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert 0 < out.read_bytes().count(b"\n") < 30
    fake_server.release_hung()
    rerun = cli_subprocess("generate", str(config), "--quiet")
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err.decode()
    rows = read_rows(out)
    assert len(rows) == 30 and len({row["id"] for row in rows}) == 30
    for row in rows:
        check_calls(row)


def test_dry_run_estimates_the_tool_steps(fake_server, tmp_path) -> None:
    plain = invoke("generate", str(tools_config(tmp_path, fake_server, tools={"results": "mock", "mock": {}})), "-q")
    assert plain.exit_code == 2 and "results: mock needs tools.mock" in plain.output
    config = tools_config(tmp_path, fake_server, generation={"num_conversations": 10, "min_turns": 2, "max_turns": 2})
    result = invoke("generate", str(config), "--dry-run")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("# estimate:"))
    # Per row: the opening, 2 answers, 1 simulated user, and per turn a tool step and a simulated result.
    assert "1 tool call per turn" in line and "8 LLM calls per row, making 2 tool calls" in line
    assert len(NAMES) == len(FIVE_TOOLS)


def test_cut_off_answers_and_reasoning_are_recorded_at_their_messages(fake_server, tmp_path) -> None:
    fake_server.rate_truncated = 1.0  # every text answer is cut off; the calls are not
    fake_server.reasoning = True
    generation = {"num_conversations": 4, "min_turns": 2, "max_turns": 2, "on_truncated": "keep"}
    mock = {"results": "mock", "mock": dict.fromkeys(NAMES, "ok")}  # a simulator's answers would be cut off too
    config = tools_config(tmp_path, fake_server, generation=generation, tools=mock)
    assert invoke("generate", str(config), "-q").exit_code == 0
    for row in read_rows(tmp_path / "out.jsonl"):
        turns = row["conversations"]
        answers = [i for i, t in enumerate(turns) if t["role"] == "assistant" and not t.get("tool_calls")]
        assert row["metadata"]["tool_use"]["calls"] and len(answers) == 2
        asked = [i for i, t in enumerate(turns) if t["role"] == "user" and i > 0]  # the simulated user's, cut too
        # The final answers and the simulated user's turns, at their index: not the steps that called tools.
        assert row["metadata"]["cut_off_turns"] == sorted(answers + asked)
        assert all(t["reasoning_content"] for t in turns if t["role"] == "assistant")


class RecoversAfterAnError(BaseProvider):
    """A model whose first call breaks the schema; after the error result it calls again, right, then answers."""

    model_name = "double"

    async def acomplete(self, messages: Messages, **kwargs: Any) -> LLMResponse:
        results = [m["content"] for m in messages if m["role"] == "tool"]
        if len(results) == 2:
            return LLMResponse(text=f"ping said {results[-1]}")
        arguments = '{"n": "seven"}' if not results else '{"n": 7}'
        return LLMResponse(text="", tool_calls=[ToolCall(id=f"c{len(results)}", name="ping", arguments=arguments)])


def test_an_invalid_call_gets_an_error_result_and_the_model_may_call_again() -> None:
    chat = _chat(RecoversAfterAnError())
    answer = asyncio.run(chat.asend_message("ping seven"))
    assert answer.text == "ping said pong"
    error, result = [m["content"] for m in chat.last_exchange if m["role"] == "tool"]
    assert orjson.loads(error) == {
        "error": "ping was not called: n: 'seven' is not of type 'integer'. Call it again with arguments that fit "
        "its parameters."
    }
    assert result == "pong" and chat.invalid_ids == {"c0"}
