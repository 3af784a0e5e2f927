"""Resources: what components of one run share — the corpus, the retriever, the personas and the seed.

The pipeline passes one `Resources` to every instruction generator, modifier and retriever factory
that declares a `resources` parameter. Everything is built on first use, so `validate` and
`--dry-run` read the documents but never build an index or call a model.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config, RetrieverConfig
from .documents import Corpus, load_corpus
from .errors import ConfigError
from .personas import PersonaTree, PersonaTreeBuilder, load_personas, save_personas
from .personas.store import writable_format
from .providers.base import LLMProvider
from .registry import is_builtin, retrievers
from .types import Persona

if TYPE_CHECKING:
    from .engine.retry import ErrorBudget
    from .tools.definitions import ToolSet
    from .tools.mcp import McpTools


class Resources:
    """Lazily built shared state of a run."""

    def __init__(self, cfg: Config, persona_llm: LLMProvider | None = None, corpus: Corpus | None = None) -> None:
        """`corpus`: chunks already loaded elsewhere (a Ray worker gets the driver's, not the files)."""
        self.cfg = cfg
        self.seed = cfg.generation.seed
        self.persona_llm = persona_llm
        self.persona_tree: PersonaTree | None = None
        self.owned_providers: list[LLMProvider] = []  # made for this run only (a persona_generation.model)
        self.budget: ErrorBudget | None = None  # the run's, for calls made outside the providers (embeddings)
        self._corpus = corpus
        self._retriever: Any = None
        self._retriever_needed_by: str | None = None
        self._tool_set: ToolSet | None = None
        self.mcp: McpTools | None = None  # tools.from_mcp: the server, started by `aprepare`

    # --- documents and retrieval -------------------------------------------------------------

    def corpus(self, needed_by: str = "this config") -> Corpus:
        """The documents and their chunks; ConfigError when the config has no `documents:` section."""
        if self._corpus is None:
            if self.cfg.documents is None:
                raise ConfigError(f"{needed_by} needs documents: add a `documents:` section with `sources:`")
            self._corpus = load_corpus(self.cfg.documents)
        return self._corpus

    def require_retriever(self, needed_by: str = "the retriever") -> None:
        """Note that the run needs the retriever. The built-in one is built now (checking its settings and
        keys; the index is built in `aprepare`); a plugin's factory is checked, and called only by the run."""
        cfg = self.cfg.retriever or RetrieverConfig()
        self._retriever_needed_by = needed_by
        if is_builtin(retrievers.resolve(cfg.type, "retriever.type")):
            self.retriever(needed_by)
        else:
            self.corpus(needed_by)

    def retriever(self, needed_by: str = "the retriever") -> Any:
        """The configured retriever (Qdrant in local mode when `retriever:` is absent); not yet indexed."""
        if self._retriever is None:
            cfg = self.cfg.retriever or RetrieverConfig()
            factory = retrievers.resolve(cfg.type, "retriever.type")
            try:
                self._retriever = factory(cfg, self.corpus(needed_by).chunks, **with_resources(factory, self, {}))
            except TypeError as exc:
                raise ConfigError(f"retriever.type {cfg.type!r}: {exc}") from None
            if not any(hasattr(self._retriever, m) for m in ("get_context", "aget_context_with_metadata")):
                raise ConfigError(f"retriever.type {cfg.type!r} did not build a retriever (no get_context method)")
        return self._retriever

    def content_fingerprint(self) -> str:
        """A hash of the chunks rows are grounded in ('' without documents), for the run fingerprint."""
        return self.corpus().fingerprint if self.cfg.documents is not None else ""

    # --- tools -------------------------------------------------------------------------------

    def tool_set(self, needed_by: str = "this config") -> ToolSet:
        """The run's tools (inline, or read from tools.file); an MCP server's once `aprepare` started it."""
        from .tools.definitions import configured_tools

        if self._tool_set is None:
            if self.cfg.tools is None:
                raise ConfigError(f"{needed_by} needs tools: add a `tools:` section")
            self._tool_set = configured_tools(self.cfg.tools)
            if self._tool_set is None:
                raise ConfigError(f"{needed_by}: the MCP server's tools are listed only when the run starts")
        return self._tool_set

    def tools_fingerprint(self) -> str:
        """A hash of the tool definitions ('' without tools, or while an MCP server's are not listed yet)."""
        tools = self.cfg.tools
        if tools is None or (tools.from_mcp is not None and self._tool_set is None):
            return ""
        return self.tool_set().fingerprint()

    async def astart_tools(self) -> None:
        """Start the tools.from_mcp server and take its tools (once, before the first item)."""
        tools = self.cfg.tools
        if tools is None or tools.from_mcp is None or self.mcp is not None:
            return
        from .tools.definitions import checked_tools
        from .tools.mcp import McpTools

        self.mcp = McpTools(tools.from_mcp)
        self._tool_set = checked_tools(tools, await self.mcp.astart(), "tools.from_mcp")

    # --- personas ----------------------------------------------------------------------------

    @property
    def personas_to_generate(self) -> bool:
        """Whether the run must ask a model for personas (no saved file to reuse)."""
        saved = self.cfg.personas_file
        return self.cfg.persona_generation is not None and not (saved and Path(saved).exists())

    def known_personas(self) -> list[Persona]:
        """The personas available without a model: inline ones, then the personas file (if it exists yet)."""
        personas = [Persona(description=p) for p in self.cfg.personas]
        saved = self.cfg.personas_file
        if saved and (self.cfg.persona_generation is None or Path(saved).exists()):
            personas += load_personas(saved)
        return personas

    async def agenerate_persona_tree(self) -> PersonaTree:
        """Ask the model for a persona tree from the documents (or the system prompt without documents)."""
        pg = self.cfg.persona_generation
        if pg is None:
            raise ConfigError("persona generation needs a `persona_generation:` section")
        if self.persona_llm is None:
            raise ConfigError("persona generation needs a model")
        chunks = self.corpus("persona_generation").chunks if self.cfg.documents else []
        builder = PersonaTreeBuilder(
            self.persona_llm, pg, chunks, seed=self.seed, domain=self.cfg.generation.system_prompt
        )
        self.persona_tree = await builder.abuild()
        return self.persona_tree

    async def apersonas(self) -> list[Persona]:
        """Every persona of the run; a generated tree is saved to `personas_file` (when set) for reuse."""
        if not self.personas_to_generate:
            return self.known_personas()
        saved = self.cfg.personas_file
        if saved:
            writable_format(saved)
        tree = await self.agenerate_persona_tree()
        if not saved:
            return [Persona(description=p) for p in self.cfg.personas] + tree.personas
        save_personas(saved, tree.personas, tree.parents)
        # This run uses the personas exactly as the file holds them (a .txt keeps no depth), so the next
        # run, which reads the file, has the same run fingerprint and resumes.
        return self.known_personas()

    # --- lifecycle ---------------------------------------------------------------------------

    async def aprepare(self, say: Callable[[str], object] | None = None) -> list[Persona] | None:
        """Before the first item: generate the personas if needed (returned; None when nothing changed)
        and build the retrieval index, so neither stalls the first conversations or skews the ETA."""
        personas = None
        await self.astart_tools()
        if self.personas_to_generate:
            pg = self.cfg.persona_generation
            if say is not None and pg is not None:
                say(f"generating {pg.tree_size} personas (depth {pg.depth}) …")
            personas = await self.apersonas()
        if self._retriever_needed_by is not None:
            self.retriever(self._retriever_needed_by)  # a plugin's is built only now, by the run
        ensure = getattr(self._retriever, "aensure_index", None)
        if ensure is not None:
            await ensure()
            built, chunks = getattr(self._retriever, "build_seconds", None), len(self.corpus().chunks)
            loaded = getattr(self._retriever, "load_seconds", None)
            if say is not None and built is not None:
                say(f"indexed {chunks} chunks in {built:.1f}s")
            elif say is not None:
                say(f"reusing the index of {chunks} chunks" + (f" (loaded in {loaded:.1f}s)" if loaded else ""))
        return personas

    async def aclose(self) -> None:
        """Close the retriever's clients (if one was built) and the providers made for this run."""
        closer = getattr(self._retriever, "aclose", None)
        if closer is not None:
            await closer()
        elif hasattr(self._retriever, "close"):
            self._retriever.close()
        for provider in self.owned_providers:
            await provider.aclose()
        if self.mcp is not None:
            await self.mcp.aclose()


def with_resources(factory: Any, resources: Resources | None, options: dict[str, Any]) -> dict[str, Any]:
    """The options, plus `resources` when the factory declares that parameter (built-ins that need documents)."""
    try:
        parameter = inspect.signature(factory).parameters.get("resources")
    except (TypeError, ValueError):
        return dict(options)
    if resources is None or parameter is None or parameter.kind is inspect.Parameter.VAR_KEYWORD:
        return dict(options)
    return {**options, "resources": resources}
