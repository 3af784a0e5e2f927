"""The export formats, one module each, registered by name in `FORMATS`."""

from __future__ import annotations

from ...errors import UsageError
from ...registry import did_you_mean
from . import alpaca, chatml, dpo, kto, llama_factory, llama_factory_ranking, messages, openai_preference, sharegpt
from .base import Converter, ExportFormat, ExportOptions

FORMATS: dict[str, ExportFormat] = {
    "sharegpt": sharegpt.FORMAT,
    "messages": messages.FORMAT,
    "openai": messages.FORMAT,  # OpenAI chat fine-tuning rows are exactly `messages` rows
    "alpaca": alpaca.FORMAT,
    "llama_factory": llama_factory.FORMAT,
    "chatml": chatml.FORMAT,
    "dpo": dpo.FORMAT,
    "orpo": dpo.FORMAT,  # ORPO trainers (TRL's, LLaMA-Factory's) read DPO's preference layout
    "kto": kto.FORMAT,
    "openai-preference": openai_preference.FORMAT,
    "llama_factory_ranking": llama_factory_ranking.FORMAT,
}

__all__ = ["FORMATS", "Converter", "ExportFormat", "ExportOptions", "get_format"]


def get_format(name: str) -> ExportFormat:
    """The format registered as ``name``; an unknown name is a usage error listing the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        known = sorted(FORMATS)
        raise UsageError(f"unknown --format {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}") from None
