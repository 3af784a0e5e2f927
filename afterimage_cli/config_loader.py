"""Read a YAML config into `Config`, with errors that name the file, line and field."""

from __future__ import annotations

import os
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .config import Config
from .errors import ConfigError
from .registry import did_you_mean

# ${VAR} and ${VAR:-default}; a doubled dollar ($${VAR}) is the escape that writes a literal ${VAR}.
_VAR = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
Loc = tuple[str | int, ...]


def _node_at(root: yaml.Node | None, loc: Loc) -> yaml.Node | None:
    """Walk a composed YAML node tree along a pydantic error location."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None) or next(
                (k for k, v in node.value if k.value == part), None
            )
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return node
        if node is None:
            return None
    return node


def _key_node(root: yaml.Node | None, loc: Loc) -> yaml.Node | None:
    parent = _node_at(root, loc[:-1])
    if isinstance(parent, yaml.MappingNode):
        return next((k for k, _ in parent.value if k.value == loc[-1]), parent)
    return parent


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model class that owns the mapping at `loc`."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _unwrap(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Reduce `X | None`, `list[X]` to the model X inside, if any."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        for arg in args:
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _interpolate(value: Any, where: str, env: typing.Mapping[str, str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string of the loaded tree; $${VAR} stays ${VAR}."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            escaped, name, default = match.group(1), match.group(2), match.group(3)
            if escaped:
                return match.group(0)[1:]
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{where}: environment variable {name} is not set (used as ${{{name}}})")

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, where, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, where, env) for v in value]
    return value


def format_validation_error(exc: ValidationError, source: str, root: yaml.Node | None) -> str:
    """One line per problem: file:line: field: what is wrong."""
    lines = []
    for err in exc.errors():
        loc: Loc = tuple(err["loc"])
        node = _key_node(root, loc) if err["type"] == "extra_forbidden" else _node_at(root, loc)
        line = f":{node.start_mark.line + 1}" if node is not None and root is not None else ""
        if err["type"] == "extra_forbidden":
            owner = _model_at(Config, loc[:-1])
            known = sorted(owner.model_fields) if owner else []
            hint = did_you_mean(str(loc[-1]), known)
            lines.append(f"{source}{line}: unknown key {_dotted(loc)!r}{hint}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{source}{line}: {_dotted(loc)}: {msg}")
    return "\n".join(lines)


def parse_config(text: str, source: str = "<config>", env: typing.Mapping[str, str] | None = None) -> Config:
    """Parse YAML text into a validated Config; raise ConfigError naming file, line and field."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a mapping of keys, got {type(data).__name__}")
    data = _interpolate(data, source, os.environ if env is None else env)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, root)) from None


def load_config(path: str | Path) -> Config:
    """Read and validate the config file at `path`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc.strerror}") from None
    return parse_config(text, str(p))
