"""Persona files: txt (one per line), JSON (a list, or {"personas": [...]}), JSONL (one per line).

An entry is a string or an object with `description` (also read: `persona`, `name`) and optional
`depth`. `save_personas` writes the format the file's suffix names: JSONL and JSON objects with
`description`, `depth` and `parent` (the parent's 0-based position, or null for a root), txt one
description per line (depth and parents are not kept). `load_personas` reads each back.
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


# The suffixes a generated persona file may have, and the format each names.
WRITABLE_FORMATS = {".jsonl": "jsonl", ".json": "json", ".txt": "txt"}


def writable_format(path: str | Path, field: str = "personas_file") -> str:
    """The format `save_personas` writes to `path`; ConfigError for a suffix it cannot write (checked
    before any persona is generated, so a typo never costs a generation run)."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITABLE_FORMATS:
        raise ConfigError(
            f"{field}: {path}: cannot save generated personas as {suffix or 'a file without a suffix'!r}; "
            "name a .jsonl (keeps the tree), .json or .txt file"
        )
    return WRITABLE_FORMATS[suffix]


def save_personas(path: str | Path, personas: Sequence[Persona], parents: Sequence[int | None] | None = None) -> None:
    """Write personas in the format the suffix names (atomically: a reader never sees half a file)."""
    p = Path(path)
    kind = writable_format(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    parents = list(parents) if parents is not None else [None] * len(personas)
    entries = [
        {"description": persona.description, "depth": persona.depth, "parent": parent}
        for persona, parent in zip(personas, parents, strict=True)
    ]
    if kind == "jsonl":
        data = b"".join(orjson.dumps(entry) + b"\n" for entry in entries)
    elif kind == "json":
        data = orjson.dumps({"personas": entries}, option=orjson.OPT_INDENT_2) + b"\n"
    else:
        # One line each: a description's line breaks become spaces, as a txt file cannot hold them.
        lines = ["# personas, one per line (a .txt file keeps no depth or parents; use .jsonl for the tree)"]
        lines += [" ".join(persona.description.split()) for persona in personas]
        data = ("\n".join(lines) + "\n").encode()
    # A temp name of its own: two runs that start at once both write the file, and one's rename must not
    # take the other's half-written temp file (or leave it nothing to rename).
    tmp = p.with_name(f"{p.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(p)
