"""Our JSON Schemas in Gemini's two forms: the OpenAPI subset of `responseSchema` and `responseJsonSchema`."""

from __future__ import annotations

import enum
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from afterimage_cli.providers.gemini_schema import gemini_json_schema, gemini_schema

from .fake_gemini import json_schema
from .fakeserver import sample


class Mood(enum.StrEnum):
    calm = "calm"
    tense = "tense"


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")  # additionalProperties: false, which Gemini's subset lacks

    street: str
    city: str = Field(description="The city's name.")


class Pet(BaseModel):
    name: str
    kind: Literal["cat", "dog"]


class Person(BaseModel):
    """Nested models, enums, optionals, a list of models and a map."""

    name: str = Field(min_length=1)
    age: int = Field(ge=0, le=150)
    mood: Mood
    home: Address
    work: Address | None = None
    pets: list[Pet] = []
    tags: dict[str, int] = {}
    score: float | None = None


ADDRESS = {
    "type": "OBJECT",
    "properties": {"street": {"type": "STRING"}, "city": {"description": "The city's name.", "type": "STRING"}},
    "propertyOrdering": ["street", "city"],
    "required": ["street", "city"],
}


def keys_anywhere(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*(keys_anywhere(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    return set(node).union(*(keys_anywhere(v) for v in node.values()))


def test_a_pydantic_model_with_nested_models_and_enums_becomes_gemini_s_openapi_subset() -> None:
    converted = gemini_schema(Person)
    assert converted == {
        "description": "Nested models, enums, optionals, a list of models and a map.",
        "type": "OBJECT",
        "properties": {
            "name": {"minLength": 1, "type": "STRING"},
            "age": {"minimum": 0, "maximum": 150, "type": "INTEGER"},
            "mood": {"type": "STRING", "enum": ["calm", "tense"]},
            "home": ADDRESS,
            "work": {**ADDRESS, "nullable": True},
            "pets": {
                "type": "ARRAY",
                "items": {
                    "type": "OBJECT",
                    "properties": {"name": {"type": "STRING"}, "kind": {"type": "STRING", "enum": ["cat", "dog"]}},
                    "propertyOrdering": ["name", "kind"],
                    "required": ["name", "kind"],
                },
            },
            "tags": {"type": "OBJECT"},
            "score": {"nullable": True, "type": "NUMBER"},
        },
        "propertyOrdering": ["name", "age", "mood", "home", "work", "pets", "tags", "score"],
        "required": ["name", "age", "mood", "home"],
    }
    unsupported = {"$ref", "$defs", "additionalProperties", "title", "default", "anyOf", "const"}
    assert not keys_anywhere(converted) & unsupported


def test_an_answer_to_the_converted_schema_validates_against_the_model() -> None:
    # What a model answering the converted schema writes is what the pydantic model accepts.
    answer = sample(json_schema(gemini_schema(Person)))
    person = Person.model_validate(answer)
    assert person.home.city and person.mood in Mood


def test_type_lists_const_unions_formats_and_recursion() -> None:
    schema = {
        "type": "object",
        "$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}, "v": {"const": "x"}}}},
        "properties": {
            "either": {"type": ["string", "integer", "null"]},
            "union": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "when": {"type": "string", "format": "date-time"},
            "site": {"type": "string", "format": "uri"},
            "level": {"enum": [1, 2, 3], "type": "integer"},
            "tree": {"$ref": "#/$defs/Node"},
            "merged": {"allOf": [{"$ref": "#/$defs/Node"}], "description": "A node."},
        },
    }
    converted = gemini_schema(schema)["properties"]
    assert converted["either"] == {"nullable": True, "anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}
    assert converted["union"] == {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}
    assert converted["when"] == {"type": "STRING", "format": "date-time"}
    assert converted["site"] == {"type": "STRING"}  # a format Gemini does not take is left to our own check
    assert converted["level"] == {"type": "INTEGER"}  # Gemini's enums are strings only
    tree = converted["tree"]
    assert tree["properties"]["v"] == {"type": "STRING", "enum": ["x"]}
    assert tree["properties"]["child"] == {}  # the cycle ends open instead of recursing forever
    assert converted["merged"]["description"] == "A node." and converted["merged"]["type"] == "OBJECT"


def test_the_json_schema_form_keeps_json_schema_but_lets_refs_stand_alone() -> None:
    schema = gemini_json_schema(Person)
    assert "$defs" in schema and schema["properties"]["home"] == {"$ref": "#/$defs/Address"}
    text = orjson.dumps(schema).decode()
    assert '"additionalProperties":false' in text  # JSON Schema itself keeps what the subset cannot say
    strict = gemini_json_schema({"type": "object", "strict": True, "properties": {"a": {"type": "string"}}})
    assert strict == {"type": "object", "properties": {"a": {"type": "string"}}}
