"""Persona files: txt (one per line), JSON (a list, or {"personas": [...]}), JSONL (one per line).

An entry is a string or an object with `description` (also read: `persona`, `name`) and optional
`depth`. `save_personas` writes JSONL with `description`, `depth` and `parent` (the parent's line
number, 0-based, or null for a root), which `load_personas` reads back.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from ..errors import ConfigError
from ..types import Persona

_DESCRIPTION_KEYS = ("description", "persona", "name")


def _persona(entry: Any, where: str) -> Persona:
    """A persona from one file entry."""
    if isinstance(entry, str):
        return Persona(description=entry.strip())
    if isinstance(entry, dict):
        text = next((entry[k] for k in _DESCRIPTION_KEYS if isinstance(entry.get(k), str)), None)
        depth = entry.get("depth", 0)
        if text and isinstance(depth, int) and depth >= 0:
            return Persona(description=text.strip(), depth=depth)
    raise ConfigError(f"{where}: expected a string or an object with 'description' (and an optional 'depth')")


def load_personas(path: str | Path, field: str = "personas_file") -> list[Persona]:
    """Read personas from a txt, JSON or JSONL file; ConfigError naming the field and line otherwise."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{field}: {p} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {p}: {exc.strerror}") from None
    suffix = p.suffix.lower()
    if suffix == ".json":
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{field}: {p}: not JSON: {exc}") from None
        entries = data.get("personas") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise ConfigError(f"{field}: {p}: expected a list of personas or {{'personas': [...]}}")
        personas = [_persona(e, f"{field}: {p}[{i}]") for i, e in enumerate(entries)]
    elif suffix == ".jsonl":
        personas = []
        for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
            if line.strip():
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise ConfigError(f"{field}: {p}:{number}: not JSON: {exc}") from None
                personas.append(_persona(entry, f"{field}: {p}:{number}"))
    else:
        lines = raw.decode("utf-8", errors="replace").splitlines()
        personas = [Persona(description=s.strip()) for s in lines if s.strip() and not s.lstrip().startswith("#")]
    personas = [p for p in personas if p.description]
    if not personas:
        raise ConfigError(f"{field}: {p} holds no personas")
    return personas


def save_personas(path: str | Path, personas: Sequence[Persona], parents: Sequence[int | None] | None = None) -> None:
    """Write personas as JSONL (atomically: a reader never sees half a file)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    parents = list(parents) if parents is not None else [None] * len(personas)
    lines = [
        orjson.dumps({"description": persona.description, "depth": persona.depth, "parent": parent})
        for persona, parent in zip(personas, parents, strict=True)
    ]
    # A temp name of its own: two runs that start at once both write the file, and one's rename must not
    # take the other's half-written temp file (or leave it nothing to rename).
    tmp = p.with_name(f"{p.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    tmp.write_bytes(b"\n".join(lines) + b"\n")
    tmp.replace(p)
