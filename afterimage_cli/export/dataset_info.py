"""LLaMA-Factory's dataset_info.json, written beside the files it describes when export writes a directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from ..errors import InputError
from .formats import ExportOptions, get_format
from .outputs import OutputPlan

DATASET_INFO = "dataset_info.json"


def dataset_info_entries(plan: OutputPlan, options: ExportOptions) -> dict[str, dict[str, Any]]:
    """One entry per written file whose format LLaMA-Factory reads, named by the file's stem."""
    entries: dict[str, dict[str, Any]] = {}
    for target in plan.targets:
        describe = get_format(target.format_name).dataset_info
        if describe is None:
            continue
        for path in target.paths.values():
            name = Path(path).name
            entry = describe(name, options)
            if entry is not None:
                entries[name.rsplit(".", 1)[0]] = entry
    return entries


def write_dataset_info(directory: Path, entries: dict[str, dict[str, Any]]) -> Path:
    """Merge ``entries`` into DIRECTORY/dataset_info.json, keeping entries of other datasets already there."""
    path = directory / DATASET_INFO
    merged: dict[str, Any] = {}
    if path.exists():
        try:
            merged = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise InputError(f"{path}: not JSON ({exc}); fix or remove it to let export update it") from None
        if not isinstance(merged, dict):
            raise InputError(f"{path}: expected a JSON object of datasets; fix or remove it")
    merged.update(entries)
    path.write_bytes(orjson.dumps(merged, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    return path
