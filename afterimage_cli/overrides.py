"""Command-line flags applied on top of a loaded Config (flags win)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .config import Config
from .errors import UsageError

BUILT_IN_STORAGE = frozenset({"jsonl", "sqlite"})
STORAGE_BY_SUFFIX = {".jsonl": "jsonl", ".sqlite": "sqlite", ".sqlite3": "sqlite", ".db": "sqlite"}


# Which flag sets a field, to name it when the flag makes the config invalid.
FLAG_OF = {
    "respondent.model": "--model",
    "correspondent.model": "--user-model",
    "api_base": "--api-base",
    "api_key_env": "--api-key-env",
    "generation.num_conversations": "-n",
    "generation.max_turns": "--max-turns",
    "generation.min_turns": "--max-turns",
    "generation.concurrency": "--concurrency",
    "generation.seed": "--seed",
    "generation.mode": "--mode",
    "storage.path": "-o",
    "budget.max_cost_usd": "--max-cost",
    "budget.max_total_tokens": "--max-total-tokens",
    "execution.executor": "--executor",
    "execution.workers": "--workers",
}


@dataclass
class Overrides:
    """The `generate` flags that change the config; None means 'keep the config's value'."""

    output: str | None = None
    num: int | None = None
    max_turns: int | None = None
    model: str | None = None
    user_model: str | None = None
    api_base: str | list[str] | None = None  # several: replicas serving the same model
    concurrency: int | None = None
    seed: int | None = None
    no_cache: bool = False
    max_cost: float | None = None
    max_total_tokens: int | None = None
    api_key_env: str | None = None
    mode: str | None = None
    executor: str | None = None
    workers: int | None = None


def apply_overrides(cfg: Config, flags: Overrides) -> Config:
    """A new Config with the flags applied and validated again."""
    data: dict[str, Any] = cfg.model_dump(mode="python", exclude_unset=False)
    gen = data["generation"]
    if flags.output is not None:
        data["storage"]["path"] = flags.output
        suffix = Path(flags.output).suffix.lower()
        if data["storage"]["type"] in BUILT_IN_STORAGE and suffix in STORAGE_BY_SUFFIX:
            # `-o run.sqlite` means SQLite and `-o run.jsonl` JSONL, whatever the config's default said.
            data["storage"]["type"] = STORAGE_BY_SUFFIX[suffix]
        if flags.output == "-" and data["storage"]["type"] != "jsonl":
            raise UsageError(
                "-o - streams JSONL to stdout; it cannot be used with storage.type " + data["storage"]["type"]
            )
    if flags.num is not None:
        gen["num_conversations"] = flags.num
        gen["stop_when"] = None  # -n is exact: it replaces a stopping rule
    if flags.max_turns is not None:
        gen["max_turns"] = flags.max_turns
        gen["min_turns"] = min(gen["min_turns"], flags.max_turns)
    if flags.concurrency is not None:
        gen["concurrency"] = flags.concurrency
    if flags.seed is not None:
        gen["seed"] = flags.seed
    if flags.mode is not None:
        gen["mode"] = flags.mode
    if flags.executor is not None:
        data["execution"]["executor"] = flags.executor
    if flags.workers is not None:
        if data["execution"]["executor"] != "ray":
            raise UsageError("--workers is for Ray workers: add --executor ray (or execution.executor: ray)")
        data["execution"]["workers"] = flags.workers
    if flags.no_cache:
        data["cache"]["enabled"] = False
    if flags.max_cost is not None:
        data["budget"]["max_cost_usd"] = flags.max_cost
    if flags.max_total_tokens is not None:
        data["budget"]["max_total_tokens"] = flags.max_total_tokens

    if flags.model is not None:
        data["respondent"]["model"] = flags.model
    if flags.user_model is not None:
        data["correspondent"] = {**(data.get("correspondent") or data["respondent"]), "model": flags.user_model}
    bases = [flags.api_base] if isinstance(flags.api_base, str) else flags.api_base
    if flags.api_key_env is not None and not bases:
        raise UsageError("--api-key-env names the key variable for the --api-base server: add --api-base URL")
    if bases:
        # The preference run's own models too: with on_policy, the server at --api-base serves the policy.
        pairs = data.get("preference") or {}
        blocks = {role: data.get(role) for role in ("respondent", "correspondent")}
        blocks |= {f"preference.{role}": pairs.get(role) for role in ("policy", "rejected_model")}
        for role, block in blocks.items():
            if block:
                if block["model"].split("/")[0] == "offline":
                    fix = f"set {role}.model" if role.startswith("preference.") else "add --model NAME"
                    raise UsageError(f"--api-base needs the model the server serves: {fix} (the {role} is 'offline')")
                block["api_base"] = bases[0] if len(bases) == 1 else list(bases)
                block["deployments"] = None  # the flag says where the model is: there, and nowhere else
                if flags.api_key_env is not None:
                    block["api_key_env"] = flags.api_key_env
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        flag = FLAG_OF.get(field) or FLAG_OF.get(field.split(".", 1)[-1], "a flag")
        raise UsageError(f"{flag} made the config invalid: {field}: {message}") from None
