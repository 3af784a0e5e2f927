"""Offline metrics of a tool-calling row (metadata.metrics.tool_use); `stats.ToolStats` totals them.

A call is valid when it names a tool the row offers and its arguments parse as a JSON object that
validates against that tool's `parameters` schema. Invalid calls are legitimate data when the model
recovered from them (the row records them in metadata.tool_use.invalid_calls), so they are counted, not
rejected. Rows without tools get no tool metrics at all.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

_VALIDATOR_CACHE = 256


class ToolCallChecker:
    """Validates calls against their tool's schema; compiled validators are kept per distinct schema."""

    def __init__(self) -> None:
        self._validators: dict[bytes, Any] = {}

    def problem(self, name: str, arguments: Any, offered: dict[str, Any]) -> str | None:
        """Why a call is invalid, or None."""
        if name not in offered:
            return f"{name!r} is not one of the offered tools"
        if not isinstance(arguments, str):
            return "arguments are not a JSON string"
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return "arguments are not valid JSON"
        if not isinstance(parsed, dict):
            return "arguments are not a JSON object"
        schema = offered[name]
        if not isinstance(schema, dict) or not schema:
            return None
        error = next(iter(self._validator(schema).iter_errors(parsed)), None)
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path)
        return f"arguments{f' at {where}' if where else ''}: {error.message}"

    def _validator(self, schema: dict[str, Any]) -> Any:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        validator = self._validators.get(key)
        if validator is None:
            import jsonschema  # only rows with tools pay for it

            if len(self._validators) >= _VALIDATOR_CACHE:
                self._validators.clear()
            validator = self._validators[key] = jsonschema.validators.validator_for(schema)(schema)
        return validator


def offered_tools(row: dict[str, Any]) -> dict[str, Any]:
    """Tool name → its parameters schema, for the tools the row offers."""
    offered: dict[str, Any] = {}
    for tool in row.get("tools") or ():
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            offered[function["name"]] = function.get("parameters") or {}
    return offered


def measure_tool_use(row: dict[str, Any], checker: ToolCallChecker) -> dict[str, Any] | None:
    """The row's tool metrics, or None for a row that neither offers nor calls tools."""
    offered = offered_tools(row)
    per_tool: Counter[str] = Counter()
    invalid: list[dict[str, Any]] = []
    calls = 0
    for index, turn in enumerate(row["conversations"]):
        for call in turn.get("tool_calls") or ():
            function = call.get("function") or {}
            name = str(function.get("name"))
            calls += 1
            per_tool[name] += 1
            problem = checker.problem(name, function.get("arguments"), offered)
            if problem is not None:
                invalid.append({"turn": index, "name": name, "problem": problem})
    if not offered and not calls:
        return None
    used = sorted(name for name in per_tool if name in offered)
    return {
        "calls": calls,
        "valid_calls": calls - len(invalid),
        "valid_call_rate": round((calls - len(invalid)) / calls, 4) if calls else None,
        "invalid": invalid,
        "per_tool": dict(sorted(per_tool.items())),
        "tools_offered": sorted(offered),
        "tools_used": used,
        "coverage": round(len(used) / len(offered), 4) if offered else None,
    }
