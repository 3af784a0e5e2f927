"""One registry per kind of component named by string in the config.

Built-ins are registered as "module:attr" strings, exactly like third-party plugins declared in the
entry-point group ``afterimage.<kind>``, so nothing is imported until it is used. A ``module:Class``
path loads a user's class directly: importing it runs that module's code, so what it names is checked
before anything calls it — it must be a class implementing the kind's interface (or, for a kind whose
README documents a factory, a Python function outside the standard library). Nothing a config names is
called by a lookup; `validate` and `--dry-run` never call plugins at all (see `is_builtin`).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from .errors import ConfigError, UnknownComponentError


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


def is_builtin(component: Any) -> bool:
    """Whether a component is afterimage's own (safe to construct while only checking a config)."""
    return str(getattr(component, "__module__", "")).split(".")[0] == __name__.split(".")[0]


def implements(cls: type, interface: type) -> bool:
    """A subclass of `interface`, or for a Protocol, a class with every method it declares."""
    if not getattr(interface, "_is_protocol", False):
        return issubclass(cls, interface)
    methods = [name for name, value in vars(interface).items() if inspect.isfunction(value) and name[0] != "_"]
    return all(callable(getattr(cls, name, None)) for name in methods)


def _describe(obj: Any) -> str:
    kind = "a built-in function" if inspect.isbuiltin(obj) else f"a {type(obj).__name__}"
    return f"{kind} ({getattr(obj, '__module__', None) or '?'}.{getattr(obj, '__qualname__', repr(obj))})"


def did_you_mean(name: str, known: list[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest known name, or ''."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry:
    """Maps names of one kind to lazily imported factories."""

    def __init__(self, kind: str, interface: str | None = None, *, factories: bool = False) -> None:
        """`interface`: the "module:Class" every component of this kind must implement (None: anything);
        `factories`: a plain function that builds one is accepted too."""
        self.kind = kind
        self.interface = interface
        self.factories = factories
        self._targets: dict[str, str | Callable[..., Any]] = {}
        self._checked: set[str] = set()
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
        """Return the factory for ``name``, checked against the kind's interface (never called);
        a ``module:attr`` name is imported directly."""
        self._load_entry_points()
        target = self._targets.get(name)
        if target is None:
            if ":" in name:
                return self.check(name, load_dotted(name))
            known = self.names()
            raise UnknownComponentError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}"
            )
        if isinstance(target, str):
            target = load_dotted(target)
            self._targets[name] = target
        if name not in self._checked:
            self.check(name, target)
            self._checked.add(name)
        return target

    def resolve(self, name: str, field: str) -> Any:
        """`get` for the name a config field gives; errors start with the field to fix."""
        try:
            return self.get(name)
        except ConfigError as exc:
            raise type(exc)(f"{field}: {exc}") from None

    def check(self, name: str, target: Any) -> Any:
        """`target` if it may stand for a component of this kind; ConfigError saying what it is otherwise."""
        if self.interface is None:
            return target
        interface = load_dotted(self.interface)
        expected = f"{interface.__module__}.{interface.__qualname__}"
        if isinstance(target, type):
            if implements(target, interface):
                return target
            raise ConfigError(
                f"{name!r} is the class {target.__module__}.{target.__qualname__}, which does not implement {expected}"
            )
        if self.factories and inspect.isfunction(target):
            if str(target.__module__).split(".")[0] not in sys.stdlib_module_names:
                return target
        wanted = f"a class implementing {expected}" + (" or a factory function of your own" if self.factories else "")
        raise ConfigError(f"{name!r} is {_describe(target)}, not {wanted}")

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Build the component named ``name``."""
        return self.get(name)(*args, **kwargs)


providers = Registry("providers", "afterimage_cli.providers.base:LLMProvider")
instruction_generators = Registry(
    "instruction_generators", "afterimage_cli.instructions.base:BaseInstructionGeneratorCallback"
)
prompt_modifiers = Registry("prompt_modifiers", "afterimage_cli.modifiers.base:BaseRespondentPromptModifierCallback")
# The README documents `retriever.type: module:factory`, a function called as factory(config, chunks).
retrievers = Registry("retrievers", "afterimage_cli.retrieval.base:Retriever", factories=True)
storage = Registry("storage", "afterimage_cli.storage.base:BaseStorage")

REGISTRIES: dict[str, Registry] = {
    r.kind: r for r in (providers, instruction_generators, prompt_modifiers, retrievers, storage)
}

providers.register("litellm", "afterimage_cli.providers.litellm_provider:LiteLLMProvider")
providers.register("gemini", "afterimage_cli.providers.gemini_direct:GeminiProvider")
providers.register("offline", "afterimage_cli.providers.offline:OfflineProvider")
providers.register("openai_compat", "afterimage_cli.providers.openai_compat:OpenAICompatProvider")
providers.register("anthropic", "afterimage_cli.providers.anthropic_direct:AnthropicProvider")

instruction_generators.register("simple", "afterimage_cli.instructions.simple:SimpleInstructionGenerator")
instruction_generators.register("contextual", "afterimage_cli.instructions.contextual:ContextualInstructionGenerator")
instruction_generators.register("persona", "afterimage_cli.instructions.persona:PersonaInstructionGenerator")
instruction_generators.register("tools", "afterimage_cli.instructions.tools:ToolsInstructionGenerator")
prompt_modifiers.register("persona", "afterimage_cli.modifiers.persona:PersonaPromptModifier")
prompt_modifiers.register("context", "afterimage_cli.modifiers.context:ContextPromptModifier")
prompt_modifiers.register("rag", "afterimage_cli.modifiers.rag:WithRAGRespondentPromptModifier")
retrievers.register("qdrant", "afterimage_cli.retrieval.qdrant:build_qdrant_retriever")
storage.register("jsonl", "afterimage_cli.storage.jsonl:JSONLStorage")
storage.register("sqlite", "afterimage_cli.storage.sqlite:SQLiteStorage")
