"""The README documents every config field and CLI flag, and its command lines parse."""

from __future__ import annotations

import re
import shlex
import types
import typing
from pathlib import Path

import click
import pytest
import typer.main
from pydantic import BaseModel

from afterimage_cli.cli import app
from afterimage_cli.config import Config, ModelConfig

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _model_in(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, dict):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found:
                return found
    return None


def _fields(model: type[BaseModel], prefix: str = "", shown: str = "") -> list[tuple[str, str]]:
    """(dotted path, how the README may name it): model-block fields are documented once, by leaf name (and
    theirs by their path in the block: `api_base[].url`)."""
    out = []
    for name, field in model.model_fields.items():
        sub = _model_in(field.annotation)
        here = name if model is ModelConfig else shown + name
        out.append((prefix + name, here))
        if sub is not None:
            sep = "[]." if typing.get_origin(field.annotation) is list or "list[" in str(field.annotation) else "."
            out.extend(_fields(sub, f"{prefix}{name}{sep}", f"{here}{sep}"))
    return out


@pytest.mark.parametrize("dotted,name", _fields(Config))
def test_every_config_field_is_documented(dotted: str, name: str) -> None:
    assert f"`{name}`" in README, f"README does not document {dotted} (as `{name}`)"


def _commands() -> dict[str, click.Command]:
    group = typer.main.get_group(app)
    return dict(group.commands)


def _flag_cases() -> list[tuple[str, str]]:
    cases = []
    for name, command in _commands().items():
        for param in command.params:
            if getattr(param, "param_type_name", "") == "option":
                cases.extend((name, opt) for opt in param.opts if opt.startswith("--"))
    return cases


@pytest.mark.parametrize("command,flag", _flag_cases())
def test_every_flag_is_documented(command: str, flag: str) -> None:
    assert re.search(rf"`[^`]*{re.escape(flag)}\b", README), f"README does not document {command} {flag}"


def _readme_command_lines() -> list[str]:
    lines, pending = [], ""
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", README, re.S):
        for raw in block.splitlines():
            line = raw.split(" #", 1)[0].strip() if not raw.strip().startswith("#") else ""
            if pending:
                line, pending = pending + " " + line, ""
            if line.endswith("\\"):
                pending = line[:-1]
                continue
            for part in line.split("|"):
                part = part.strip()
                if part.startswith("afterimage "):
                    lines.append(part.split(">")[0].strip())
    return lines


@pytest.mark.parametrize("line", _readme_command_lines())
def test_readme_command_lines_parse(line: str) -> None:
    args = shlex.split(line)[1:]
    commands = _commands()
    assert args[0] in commands, f"unknown command in README: {line}"
    command = commands[args[0]]
    with command.make_context(args[0], args[1:], resilient_parsing=False) as ctx:
        assert ctx.params is not None
