"""The README.md dataset card of an hf export: the Hub's YAML header and a body that says how the data was made.

Everything in it comes from the exported rows (their metadata, verdicts and usage) and the export's own
flags: no config is read, so no key, URL or absolute path can leak into it — file names only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from .formats import get_format

DATA = "data"
"""The folder of the Parquet shards inside an hf export."""
TAGS = ["synthetic", "afterimage"]
# The Hub's size_categories, by upper bound.
_SIZES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
)


@dataclass(frozen=True)
class CardFacts:
    """What the export knows besides the rows: names, the license, the filters and options it applied."""

    name: str
    source: str
    layout: str
    license: str
    languages: list[str]
    records: dict[str, int]
    """Split name → records written."""
    rows_read: int
    rows_filtered: int
    choices: list[str] = field(default_factory=list)
    """The export flags that shaped the data, said in words."""


def size_category(records: int) -> str:
    for bound, name in _SIZES:
        if records < bound:
            return name
    return "n>100M"


def card_header(facts: CardFacts) -> dict[str, Any]:
    """The YAML front matter the Hub and `datasets` read."""
    data_files = [{"split": split, "path": f"{DATA}/{split}-*"} for split in facts.records]
    return {
        "configs": [{"config_name": "default", "data_files": data_files}],
        "license": facts.license,
        "language": facts.languages,
        "task_categories": ["text-generation"],
        "size_categories": [size_category(sum(facts.records.values()))],
        "tags": TAGS,
        "pretty_name": facts.name,
    }


def _money(value: float) -> str:
    return f"${value:,.4f}"


def _counts(counts: dict[str, int], total: int) -> str:
    return ", ".join(
        f"{name} {n:,} ({100 * n / total:.0f} %)" if total else f"{name} {n:,}" for name, n in counts.items()
    )


def _made_with(profile: dict[str, Any]) -> list[str]:
    lines = []
    roles = {"respondent": "Respondent (answers)", "correspondent": "Simulated user"}
    for role, models in profile["models"].items():
        label = roles.get(role, role)
        lines.append(f"- {label}: " + ", ".join(f"`{m}` ({n:,} rows)" for m, n in models.items()))
    if profile["judges"]:
        lines.append("- Judge: " + ", ".join(f"`{m}` ({n:,} rows)" for m, n in profile["judges"].items()))
    kinds = profile["kinds"]
    lines.append(f"- Rows: {_counts(kinds, profile['rows'])}")
    if profile["chunks"]["distinct"]:
        lines.append(
            f"- Grounding: questions written from {profile['chunks']['distinct']:,} document chunks "
            f"of {profile['documents']:,} documents"
        )
    if profile["personas"]["distinct"]:
        lines.append(f"- Personas: {profile['personas']['distinct']:,} distinct simulated users")
    turns = profile["user_turns"]
    if turns["mean"] is not None:
        spread = ", ".join(f"{label}: {n:,}" for label, n in zip(turns["labels"], turns["counts"], strict=True) if n)
        lines.append(f"- User turns per conversation: mean {turns['mean']} ({spread})")
    if profile["ended_by"]:
        lines.append(f"- Conversations ended by: {_counts(profile['ended_by'], profile['rows'])}")
    if profile["reasoning_rows"]:
        lines.append(f"- Rows with reasoning (`reasoning_content`): {profile['reasoning_rows']:,}")
    calls = profile.get("tool_calls") or {}
    if calls or profile.get("tools_offered"):
        per_tool = ", ".join(f"`{name}` {n:,}" for name, n in calls.items()) or "none"
        lines.append(
            f"- Tool calls: {sum(calls.values()):,} ({per_tool}) to {len(profile['tools_offered']):,} offered tools"
        )
    return lines


def _scores(profile: dict[str, Any]) -> list[str]:
    if not profile["evaluated"]:
        return ["No row was judged (`afterimage evaluate` adds scores)."]
    final = profile["final_score"]
    lines = [
        f"{profile['evaluated']:,} of {profile['rows']:,} rows judged. `final_score`: mean {final['mean']}, "
        f"p10 {final['p10']}, median {final['p50']}, p90 {final['p90']}.",
        "",
        "| grade | rows |",
        "| --- | ---: |",
        *(f"| {grade} | {n:,} |" for grade, n in profile["grades"].items()),
    ]
    criteria = {name: s for name, s in profile["criteria"].items() if s["count"]}
    if criteria:
        lines += ["", "| criterion | mean | p10 | median | p90 |", "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {n} | {s['mean']} | {s['p10']} | {s['p50']} | {s['p90']} |" for n, s in criteria.items()]
    return lines


def _cost(profile: dict[str, Any]) -> str:
    usage = profile["usage"]
    if not usage:
        return "The rows record no usage."
    text = (
        f"{usage.get('calls', 0):,} model calls, {usage.get('prompt_tokens', 0):,} prompt and "
        f"{usage.get('completion_tokens', 0):,} completion tokens, {_money(profile['cost_usd'])}"
    )
    if profile["unpriced_rows"]:
        text += f" (plus {profile['unpriced_rows']:,} rows made with unpriced models)"
    return text + " for the exported rows (generation only; judging and rejected items are not counted)."


def render_card(facts: CardFacts, profile: dict[str, Any]) -> str:
    """The whole README.md."""
    header = yaml.safe_dump(card_header(facts), sort_keys=False, allow_unicode=True)
    layout = get_format(facts.layout)
    splits = "\n".join(f"| {split} | {n:,} | `{DATA}/{split}-*.parquet` |" for split, n in facts.records.items())
    choices = "".join(f"- {choice}\n" for choice in facts.choices) or "- none: every valid row was exported\n"
    return f"""---
{header}---

# {facts.name}

Synthetic multi-turn conversations made with afterimage: a
simulated user (driven by personas and documents) talks to a respondent model, and an LLM judge scores
each conversation. Exported from `{facts.source}` ({facts.rows_read:,} rows read, {facts.rows_filtered:,}
left out by the filters below).

## Layout: `{facts.layout}`

{layout.summary}

| split | records | files |
| --- | ---: | --- |
{splits}

```python
from datasets import load_dataset

dataset = load_dataset("path/or/hub-id/of/this/folder")  # splits: {", ".join(facts.records)}
```

## How it was made

{chr(10).join(_made_with(profile))}

### Judge scores

{chr(10).join(_scores(profile))}

### Cost

{_cost(profile)}

### Export choices

{choices}
This card was written by `afterimage export --format hf` from the rows' own metadata.
"""
