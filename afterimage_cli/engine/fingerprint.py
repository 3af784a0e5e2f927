"""The run fingerprint: a hash of every setting that decides a row's content, so a re-run resumes only
into rows made the same way (generate stamps it on rows; evaluate keeps one of its own)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel

from ..config import OPERATIONAL_FIELDS, Config
from ..types import Persona

if TYPE_CHECKING:
    from ..resources import Resources


def content_settings(value: Any) -> Any:
    """A config (or part of one) as plain data, without its OPERATIONAL_FIELDS."""
    if isinstance(value, BaseModel):
        skip = OPERATIONAL_FIELDS.get(type(value), frozenset())
        return {name: content_settings(getattr(value, name)) for name in type(value).model_fields if name not in skip}
    if isinstance(value, list | tuple):
        return [content_settings(item) for item in value]
    if isinstance(value, dict):
        return {key: content_settings(item) for key, item in value.items()}
    return value


def run_fingerprint(cfg: Config, content: str = "", served: Mapping[str, str] | None = None) -> str:
    """A hash of everything that decides a row's content (see OPERATIONAL_FIELDS for what is left out).

    `content` is a hash of what the config points at (the documents' chunks), so editing a document
    makes a new run instead of resuming into a mix of old and new rows. `served` is what each role's
    api_base server said it serves (role → id): the URL is operational, the model behind it is not."""
    data = content_settings(cfg)
    if content:
        data["content"] = content
    if served:
        data["served"] = dict(served)
    # Settings added later are left out while unused, so a config that does not use them keeps its fingerprint
    # (and its output resumes after an upgrade).
    data.pop("preference", None)
    if cfg.tools is None:
        data.pop("tools", None)
    if cfg.generation.kind == "preference":  # the settings in force: an explicit block of defaults is no change
        data["preference"] = content_settings(cfg.preference_settings)
    if not cfg.quality.keep_pairs:
        data["quality"].pop("keep_pairs", None)
    # The judge decides row content only through the quality gate, or by choosing the pairs of a preference run.
    if not cfg.quality.auto_improve and cfg.generation.kind != "preference":
        data.pop("quality", None)
        data.pop("evaluation", None)
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def grounded_fingerprint(
    cfg: Config, resources: Resources, personas: Sequence[Persona], served: Mapping[str, str] | None = None
) -> str:
    """The run fingerprint with what the config points at: the documents' chunks and the personas in use
    (a regenerated personas file is a new run, not a resume into a mix), and the served models."""
    drawn = hashlib.sha256(orjson.dumps([[p.description, p.depth] for p in personas])).hexdigest()
    content = resources.content_fingerprint() + (drawn if personas else "") + resources.tools_fingerprint()
    return run_fingerprint(cfg, content, served)
