"""Turning a model's text into a validated structured value, for every provider alike."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from ..errors import OutputValidationError, ProviderError

Schema = type[BaseModel] | dict[str, Any]


def json_schema_of(schema: Schema) -> dict[str, Any]:
    """The JSON Schema of a pydantic model class or a schema dict."""
    if isinstance(schema, dict):
        return schema
    return schema.model_json_schema()


def schema_name(schema: Schema) -> str:
    """A name for the response_format payload."""
    if isinstance(schema, dict):
        return str(schema.get("title") or "output").replace(" ", "_")
    return schema.__name__


def _strip_fences(text: str) -> str:
    """Models often wrap JSON in ``` fences; take what is inside."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped.strip()


def parse_complete(
    text: str, finish_reason: str | None, schema: Schema, model: str, max_tokens: Any, setting: str = "max_tokens"
) -> Any:
    """Parse a structured answer that the token limit did not cut off. A cut one is not retried: the same
    limit cuts it again (a small model looping inside a JSON string), so it fails naming the limit."""
    if finish_reason == "length":
        limit = f"max_tokens={max_tokens}" if max_tokens else "the server's default token limit"
        raise ProviderError(
            f"{model}: the structured answer was cut off at {limit} (finish_reason: length): raise {setting}",
            retryable=False,
            kind="truncated",
        )
    return parse_structured(text, schema)


def parse_structured(text: str, schema: Schema) -> Any:
    """Parse and validate `text`; raise OutputValidationError (retryable) when it does not fit."""
    try:
        data = orjson.loads(_strip_fences(text))
    except orjson.JSONDecodeError as exc:
        raise OutputValidationError(f"structured output is not JSON: {exc}") from None
    if isinstance(schema, dict):
        import jsonschema  # litellm's own dependency; only needed for dict schemas

        try:
            jsonschema.validate(data, schema)
        except jsonschema.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path) or "(root)"
            raise OutputValidationError(f"structured output fails the schema at {path}: {exc.message}") from None
        except jsonschema.SchemaError as exc:
            raise OutputValidationError(f"the output schema itself is invalid: {exc.message}") from None
        return data
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise OutputValidationError(f"structured output fails the schema at {loc}: {first['msg']}") from None


def response_format(schema: Schema) -> dict[str, Any]:
    """The OpenAI `response_format` asking for JSON that fits `schema`."""
    return {"type": "json_schema", "json_schema": {"name": schema_name(schema), "schema": json_schema_of(schema)}}
