"""Our JSON Schemas in the two forms Gemini takes for structured output.

Gemini 2.0 and later read JSON Schema itself (`responseJsonSchema`: $defs, $ref, anyOf, additionalProperties
…), as long as a `$ref` stands alone. Older models take only `responseSchema`, an OpenAPI 3.0 subset
(google-genai `types.Schema`): no `$ref`/`$defs`, no `additionalProperties` on the Gemini API, no `type`
lists, no `const`, string enums only. What either form cannot say (integer enums, exclusive bounds, string
formats) is still checked when the answer is parsed against the full schema (a mismatch is retried as
invalid output).
"""

from __future__ import annotations

from typing import Any

from .structured import Schema, json_schema_of

# Keywords copied as they are. Left out on purpose: title, default, examples (noise to the model), and
# everything the subset lacks (additionalProperties, prefixItems, exclusiveMinimum, $schema, …).
_KEPT = (
    *("description", "minItems", "maxItems", "minLength", "maxLength", "pattern", "minimum", "maximum"),
    *("minProperties", "maxProperties"),
)
# The formats Gemini accepts per type; any other is dropped rather than refused by the API.
_FORMATS = {"STRING": {"date-time"}, "INTEGER": {"int32", "int64"}, "NUMBER": {"float", "double"}}


def gemini_schema(schema: Schema) -> dict[str, Any]:
    """The `responseSchema` for a pydantic model class or a JSON Schema dict."""
    root = json_schema_of(schema)
    defs = {**(root.get("definitions") or {}), **(root.get("$defs") or {})}
    return _convert(root, defs, ())


def gemini_json_schema(schema: Schema) -> dict[str, Any]:
    """The `responseJsonSchema`: the JSON Schema with what Gemini refuses taken out (OpenAI's `strict`, and
    keywords beside a `$ref`, such as the description pydantic puts there)."""
    return _standalone_refs(json_schema_of(schema))


def _standalone_refs(node: Any) -> Any:
    if isinstance(node, list):
        return [_standalone_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return {k: v for k, v in node.items() if k.startswith("$")}
    return {k: _standalone_refs(v) for k, v in node.items() if k != "strict"}


def _resolve(
    node: dict[str, Any], defs: dict[str, Any], seen: tuple[str, ...]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The node with its `$ref` and `allOf` merged in (the node's own keywords win, as a description
    beside a `$ref` describes the field); `seen` holds the definitions entered, to stop at a cycle."""
    while True:
        if "$ref" in node:
            name = str(node["$ref"]).rsplit("/", 1)[-1]
            if name in seen:  # a recursive schema: Gemini cannot say it, so the cycle ends open
                return {k: v for k, v in node.items() if k != "$ref"}, seen
            seen += (name,)
            node = {**(defs.get(name) or {}), **{k: v for k, v in node.items() if k != "$ref"}}
        elif node.get("allOf"):
            merged: dict[str, Any] = {}
            for part in node["allOf"]:
                if isinstance(part, dict):
                    merged.update(part)
            node = {**merged, **{k: v for k, v in node.items() if k != "allOf"}}
        else:
            return node, seen


def _convert(raw: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        return {}
    node, seen = _resolve(raw, defs, seen)
    out: dict[str, Any] = {k: node[k] for k in _KEPT if k in node}
    branches = node.get("anyOf") or node.get("oneOf")
    if isinstance(branches, list):
        kept = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
        if len(kept) < len(branches):
            out["nullable"] = True
        if len(kept) == 1:  # Optional[X]: X, nullable
            rest = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
            return {**out, **_convert({**kept[0], **rest}, defs, seen)}
        out["anyOf"] = [_convert(b, defs, seen) for b in kept]
        return out
    types = node.get("type")
    names = [types] if isinstance(types, str) else list(types or [])
    if "null" in names:
        out["nullable"] = True
        names.remove("null")
    if len(names) > 1:  # ["string", "integer"]: one branch per type
        out["anyOf"] = [_convert({**node, "type": name}, defs, seen) for name in names]
        return out
    kind = names[0].upper() if names else _implied_type(node)
    if kind:
        out["type"] = kind
    _add_values(out, node, kind)
    if kind == "OBJECT" and isinstance(node.get("properties"), dict):
        props = node["properties"]
        out["properties"] = {name: _convert(sub, defs, seen) for name, sub in props.items()}
        # Gemini writes properties in alphabetical order unless told; the schema's order reads better.
        out["propertyOrdering"] = list(props)
        required = [name for name in node.get("required") or () if name in props]
        if required:
            out["required"] = required
    if kind == "ARRAY" and "items" in node:
        out["items"] = _convert(node["items"], defs, seen)
    return out


def _implied_type(node: dict[str, Any]) -> str | None:
    """The type a schema without `type` stands for (an enum of strings, a bag of properties, …)."""
    values = node.get("enum") if "enum" in node else [node["const"]] if "const" in node else None
    if values and all(isinstance(v, str) for v in values):
        return "STRING"
    if "properties" in node:
        return "OBJECT"
    return "ARRAY" if "items" in node else None


def _add_values(out: dict[str, Any], node: dict[str, Any], kind: str | None) -> None:
    """Enum (strings only: Gemini has no other), const as a one-value enum, and the formats Gemini knows."""
    values = node.get("enum") if "enum" in node else [node["const"]] if "const" in node else None
    if values and all(isinstance(v, str) for v in values) and kind == "STRING":
        out["enum"] = list(values)
    fmt = node.get("format")
    if fmt and fmt in _FORMATS.get(kind or "", ()):
        out["format"] = fmt
