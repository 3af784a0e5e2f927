"""A row's shape, checked with plain code (pydantic per row would halve export's throughput).

Rows follow seeds/jsonl-schema.txt (``afterimage_cli.types.ConversationRow``). Only the fields the
commands read are checked; everything else passes through untouched, so rows written by the published
afterimage (no ``id``, no ``evaluation``, ``final_score`` absent or null, no ``reasoning_content``)
load as well as our own.

Tool-calling rows (TOOLS.md) add OpenAI-shaped steps inside an exchange: an assistant message with
``tool_calls`` is followed by one ``tool`` message per call (its ``tool_call_id``), then by more steps,
and the exchange ends with an assistant message without calls. A call's ``arguments`` must be a string;
whether it parses as JSON is a metric (evaluate's valid-call rate), since a recorded invalid call and
the model's recovery are legitimate training data.
"""

from __future__ import annotations

from typing import Any

from .types import GRADES

_ROLES = ("user", "assistant", "tool")
_GRADE_LIST = ", ".join(GRADES)
_OPTIONAL_TEXT = ("instruction_context", "response_context", "persona")


def row_problem(row: Any, *, strict_turns: bool = True) -> str | None:
    """What is wrong with a parsed row, as 'field.path: message', or None.

    `strict_turns` also demands user/assistant alternation from a user turn to an assistant turn (tool
    steps inside an exchange; export needs it); without it, broken alternation is left for the caller to
    report as a metric. Tool calls and their results must pair up in both modes.
    """
    if type(row) is not dict:
        return f"expected a JSON object, got {json_type(row)}"
    turns = row.get("conversations")
    if type(turns) is not list or not turns:
        return "conversations: expected a non-empty list of turns"
    expected = "user"
    calls = _PendingCalls()
    for index, turn in enumerate(turns):
        problem = _turn_problem(turn)
        if problem is None:
            problem = calls.step(turn, index)
        if problem is None and strict_turns:
            problem = _order_problem(turn["role"], expected)
        if problem is not None:
            return f"conversations[{index}]{problem}" if problem[0] in ".:" else f"conversations{problem}"
        expected = _next_role(turn, calls)
    problem = calls.unanswered()
    if problem is not None:
        return f"conversations{problem}"
    if strict_turns and expected == "assistant":
        last = len(turns) - 1
        if turns[last]["role"] == "tool":
            return f"conversations[{last}]: the exchange ends on a tool result, with no assistant answer"
        return f"conversations[{last}]: the last turn is a user turn with no assistant answer"
    return _fields_problem(row)


def _next_role(turn: dict[str, Any], calls: _PendingCalls) -> str:
    """The role the strict order expects after `turn`: results while calls wait, the answer after them."""
    role = turn["role"]
    if role == "user":
        return "assistant"
    if calls.waiting:
        return "tool"
    return "assistant" if role == "tool" else "user"


def _order_problem(role: str, expected: str) -> str | None:
    """Unanswered calls and stray results are reported by `_PendingCalls`; this is the user/assistant order."""
    if role == expected:
        return None
    return f".role: expected {expected!r} (turns alternate user/assistant, starting with user), got {role!r}"


class _PendingCalls:
    """The calls of the latest assistant step that still wait for their tool message."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        """call id → its path, e.g. '[2].tool_calls[0].id'."""
        self.answered: set[str] = set()

    @property
    def waiting(self) -> bool:
        return bool(self.ids)

    def step(self, turn: dict[str, Any], index: int) -> str | None:
        """Check one turn against the calls in flight; an assistant turn with calls starts a new step."""
        role = turn["role"]
        if role == "tool":
            call_id = turn.get("tool_call_id")
            if type(call_id) is not str:
                return f".tool_call_id: expected the id of a call (a string), got {json_type(call_id)}"
            if self.ids.pop(call_id, None) is None:
                return f".tool_call_id: {call_id!r} answers no call of the assistant message before it"
            return None
        problem = self.unanswered()
        if problem is not None:
            return problem
        if role == "assistant" and turn.get("tool_calls"):  # null or [] is an answer without calls
            return self._start(turn["tool_calls"], index)
        return None

    def _start(self, calls: Any, index: int) -> str | None:
        if type(calls) is not list:
            return f".tool_calls: expected a list of calls or null, got {json_type(calls)}"
        for number, call in enumerate(calls):
            problem = call_problem(call)
            if problem is not None:
                return f".tool_calls[{number}]{problem}"
            call_id = call["id"]
            if call_id in self.ids or call_id in self.answered:
                return f".tool_calls[{number}].id: {call_id!r} is used by an earlier call"
            self.ids[call_id] = f"[{index}].tool_calls[{number}].id"
            self.answered.add(call_id)
        return None

    def unanswered(self) -> str | None:
        """The first call still waiting, as '[i].tool_calls[j].id: …', or None."""
        for call_id, path in self.ids.items():
            return f"{path}: call {call_id!r} has no tool message (one {{role: tool, tool_call_id}} per call)"
        return None


def call_problem(call: Any) -> str | None:
    """What is wrong with one OpenAI tool call {id, type: function, function: {name, arguments: str}}."""
    if type(call) is not dict:
        return f": expected a call object, got {json_type(call)}"
    if type(call.get("id")) is not str or not call["id"]:
        return f".id: expected a non-empty string, got {json_type(call.get('id'))}"
    kind = call.get("type", "function")
    if kind != "function":
        return f".type: expected 'function', got {kind!r}"
    function = call.get("function")
    if type(function) is not dict:
        return f".function: expected an object with name and arguments, got {json_type(function)}"
    if type(function.get("name")) is not str or not function["name"]:
        return f".function.name: expected a non-empty string, got {json_type(function.get('name'))}"
    if type(function.get("arguments")) is not str:
        return f".function.arguments: expected a JSON string, got {json_type(function.get('arguments'))}"
    return None


def _turn_problem(turn: Any) -> str | None:
    """Check one turn; the message starts with the sub-path ('.role: …') or ': …' for the turn itself."""
    if type(turn) is not dict:
        return f": expected an object with role and content, got {json_type(turn)}"
    role = turn.get("role")
    if role not in _ROLES:
        return f".role: expected 'user', 'assistant' or 'tool', got {role!r}"
    content = turn.get("content")
    if type(content) is not str and not (content is None and role == "assistant" and turn.get("tool_calls")):
        return f".content: expected a string, got {json_type(content)}"
    reasoning = turn.get("reasoning_content")
    if reasoning is not None and type(reasoning) is not str:
        return f".reasoning_content: expected a string or null, got {json_type(reasoning)}"
    if role == "tool" and turn.get("name") is not None and type(turn["name"]) is not str:
        return f".name: expected a string, got {json_type(turn['name'])}"
    return None


def _fields_problem(row: dict[str, Any]) -> str | None:
    """Check the optional top-level fields the commands read or write."""
    metadata = row.get("metadata")
    if metadata is not None and type(metadata) is not dict:
        return f"metadata: expected an object, got {json_type(metadata)}"
    for key in _OPTIONAL_TEXT:
        value = row.get(key)
        if value is not None and type(value) is not str:
            return f"{key}: expected a string or null, got {json_type(value)}"
    row_id = row.get("id")
    if row_id is not None and type(row_id) not in (str, int):
        return f"id: expected a string or integer, got {json_type(row_id)}"
    score = row.get("final_score")
    if score is not None and type(score) not in (float, int):
        return f"final_score: expected a number or null, got {json_type(score)}"
    problem = _tools_problem(row.get("tools"), metadata)
    if problem is not None:
        return problem
    if "chosen" in row or "rejected" in row or "earlier_pairs" in row:
        problem = _pairs_problem(row)
        if problem is not None:
            return problem
    evaluation = row.get("evaluation")
    if evaluation is None:
        return None
    if type(evaluation) is not dict:
        return f"evaluation: expected an object or null, got {json_type(evaluation)}"
    grade = evaluation.get("overall_grade")
    if grade is not None and grade not in GRADES:
        return f"evaluation.overall_grade: expected one of {_GRADE_LIST}, got {grade!r}"
    return None


def _tools_problem(tools: Any, metadata: dict[str, Any] | None) -> str | None:
    """The tools a row offered: OpenAI definitions; metadata.tool_use, when present, an object."""
    if tools is not None:
        if type(tools) is not list:
            return f"tools: expected a list of tool definitions, got {json_type(tools)}"
        for index, tool in enumerate(tools):
            function = tool.get("function") if type(tool) is dict else None
            if type(function) is not dict or type(function.get("name")) is not str:
                return f'tools[{index}]: expected {{"type": "function", "function": {{"name", "parameters"}}}}'
    tool_use = metadata.get("tool_use") if metadata is not None else None
    if tool_use is not None and type(tool_use) is not dict:
        return f"metadata.tool_use: expected an object, got {json_type(tool_use)}"
    return None


def user_turn_indices(turns: list[Any]) -> list[int]:
    """Where each user turn sits in `turns` (tool steps make this differ from 0, 2, 4, …)."""
    return [index for index, turn in enumerate(turns) if type(turn) is dict and turn.get("role") == "user"]


def pair_turn(row: dict[str, Any]) -> int:
    """The user turn (1-based) a row's chosen/rejected pair answers: metadata.preference.turn, else the last."""
    metadata = row.get("metadata")
    preference = metadata.get("preference") if type(metadata) is dict else None
    turn = preference.get("turn") if type(preference) is dict else None
    return turn if type(turn) is int else len(user_turn_indices(row["conversations"]))


def _pairs_problem(row: dict[str, Any]) -> str | None:
    """Check a preference row's pairs: assistant answers, at a turn the conversation has."""
    turns = len(user_turn_indices(row["conversations"]))
    problem = _pair_problem(row, "", pair_turn(row), turns)
    if problem is not None:
        return problem
    earlier = row.get("earlier_pairs")
    if earlier is None:
        return None
    if type(earlier) is not list:
        return f"earlier_pairs: expected a list, got {json_type(earlier)}"
    for index, pair in enumerate(earlier):
        if type(pair) is not dict:
            return f"earlier_pairs[{index}]: expected an object with turn, chosen and rejected, got {json_type(pair)}"
        problem = _pair_problem(pair, f"earlier_pairs[{index}].", pair.get("turn"), turns)
        if problem is not None:
            return problem
    return None


def _pair_problem(holder: dict[str, Any], prefix: str, turn: Any, turns: int) -> str | None:
    if type(turn) is not int or not 1 <= turn <= turns:
        where = f"{prefix}turn" if prefix else "metadata.preference.turn"
        return f"{where}: expected a user turn of the conversation (1-{turns}), got {turn!r}"
    for side in ("chosen", "rejected"):
        answer = holder.get(side)
        if type(answer) is not dict:
            return f"{prefix}{side}: expected an assistant message, got {json_type(answer)}"
        if answer.get("role") != "assistant":
            return f"{prefix}{side}.role: expected 'assistant', got {answer.get('role')!r}"
        problem = _turn_problem(answer)
        if problem is not None:
            return f"{prefix}{side}{problem}"
    return None


def json_type(value: Any) -> str:
    """Name a parsed JSON value's type the way JSON does."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
