"""Checking a tool call as the model wrote it: a known tool, arguments that parse as a JSON object and fit the
tool's `parameters`. A call that does not pass gets an error result worded for the model to recover from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .definitions import ToolSet


@dataclass(frozen=True)
class CheckedCall:
    """A call's verdict: the parsed arguments when it may run, else why not (for the model to read)."""

    name: str
    arguments: dict[str, Any] | None
    problem: str | None = None

    @property
    def valid(self) -> bool:
        return self.problem is None


def canonical(name: str, arguments: dict[str, Any]) -> str:
    """The call as a key: the same tool with the same arguments (in any key order) is the same call."""
    return name + ":" + orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS).decode()


def check_call(tools: ToolSet, name: str, raw_arguments: str) -> CheckedCall:
    """Whether the model's call can run: the tool exists and its arguments fit the tool's schema."""
    import jsonschema  # a core dependency; a run without tools never imports it here

    tool = tools.by_name.get(name)
    if tool is None:
        return CheckedCall(name, None, f"there is no tool named {name!r}; the tools are {', '.join(tools.names)}")
    try:
        arguments = orjson.loads(raw_arguments or "{}")
    except orjson.JSONDecodeError as exc:
        return CheckedCall(name, None, f"the arguments are not valid JSON ({exc})")
    if not isinstance(arguments, dict):
        return CheckedCall(name, None, f"the arguments must be a JSON object, not {type(arguments).__name__}")
    validator = jsonschema.validators.validator_for(tool.parameters)(tool.parameters)
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(the arguments)"
        return CheckedCall(name, None, f"{where}: {error.message}")
    return CheckedCall(name, arguments)


def error_result(call: CheckedCall) -> str:
    """The tool message that answers a call that did not run: what was wrong, and what to do."""
    message = f"{call.name} was not called: {call.problem}. Call it again with arguments that fit its parameters."
    return orjson.dumps({"error": message}).decode()


def result_text(value: Any) -> str:
    """A tool result as the `content` of its tool message: a string as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
