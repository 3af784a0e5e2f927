"""One registry per kind of component named by string in the config.

Built-ins are registered as "module:attr" strings, exactly like third-party plugins declared in the
entry-point group ``afterimage.<kind>``, so nothing is imported until it is used. A ``module:Class``
path loads a user's class directly.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from .errors import UnknownComponentError


def load_dotted(path: str) -> Any:
    """Import ``package.module:attr`` (or ``package.module.attr``) and return the attribute."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise UnknownComponentError(f"{path!r} is not a 'module:attr' path")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownComponentError(f"cannot import module {module_name!r} for {path!r}: {exc}") from exc
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError as exc:
        raise UnknownComponentError(f"module {module_name!r} has no attribute {attr!r}") from exc
    return obj


def did_you_mean(name: str, known: list[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest known name, or ''."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry:
    """Maps names of one kind to lazily imported factories."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._targets: dict[str, str | Callable[..., Any]] = {}
        self._entry_points_loaded = False

    def register(self, name: str, target: str | Callable[..., Any]) -> None:
        """Register ``name`` as a "module:attr" string or a callable."""
        self._targets[name] = target

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=f"afterimage.{self.kind}"):
            self._targets.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        """Every known name, built-in and plugin."""
        self._load_entry_points()
        return sorted(self._targets)

    def get(self, name: str) -> Any:
        """Return the factory for ``name``; a ``module:attr`` name is imported directly."""
        self._load_entry_points()
        target = self._targets.get(name)
        if target is None:
            if ":" in name:
                return load_dotted(name)
            known = self.names()
            raise UnknownComponentError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}"
            )
        if isinstance(target, str):
            target = load_dotted(target)
            self._targets[name] = target
        return target

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Build the component named ``name``."""
        return self.get(name)(*args, **kwargs)


providers = Registry("providers")
instruction_generators = Registry("instruction_generators")
prompt_modifiers = Registry("prompt_modifiers")
retrievers = Registry("retrievers")
storage = Registry("storage")

REGISTRIES: dict[str, Registry] = {
    r.kind: r for r in (providers, instruction_generators, prompt_modifiers, retrievers, storage)
}

providers.register("litellm", "afterimage_cli.providers.litellm_provider:LiteLLMProvider")
providers.register("offline", "afterimage_cli.providers.offline:OfflineProvider")
providers.register("openai_compat", "afterimage_cli.providers.openai_compat:OpenAICompatProvider")

instruction_generators.register("simple", "afterimage_cli.instructions.simple:SimpleInstructionGenerator")
instruction_generators.register("contextual", "afterimage_cli.instructions.contextual:ContextualInstructionGenerator")
instruction_generators.register("persona", "afterimage_cli.instructions.persona:PersonaInstructionGenerator")
prompt_modifiers.register("persona", "afterimage_cli.modifiers.persona:PersonaPromptModifier")
prompt_modifiers.register("context", "afterimage_cli.modifiers.context:ContextPromptModifier")
prompt_modifiers.register("rag", "afterimage_cli.modifiers.rag:WithRAGRespondentPromptModifier")
retrievers.register("qdrant", "afterimage_cli.retrieval.qdrant:build_qdrant_retriever")
storage.register("jsonl", "afterimage_cli.storage.jsonl:JSONLStorage")
storage.register("sqlite", "afterimage_cli.storage.sqlite:SQLiteStorage")
