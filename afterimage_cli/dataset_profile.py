"""What a set of rows holds, counted in one pass: the numbers `view`'s overview page and the dataset card
of `export --format hf` both show (kinds, turns, tokens, cost, models, grades and scores, personas and
chunks coverage, near-duplicate clusters), from the rows' own fields and metadata — nothing else is read.

Memory grows with the distinct personas, chunks and duplicated rows, never with the rows themselves.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .evaluation.grading import CRITERIA
from .evaluation.stats import TURN_EDGES, BinnedCounts, ScoreHistogram
from .export.rows import row_grade, row_score
from .rowshape import has_tool_calls, messages_of, preference_of, text_of
from .types import GRADES

TOKEN_EDGES = (0, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000)
SHARE_EDGES = (1, 2, 3, 6, 11, 21, 51)
"""Bins of 'rows per persona / per chunk': how evenly the run covered them."""
TOP = 10
CLUSTERS_SHOWN = 20


def row_kind(row: dict[str, Any], messages: list[dict[str, Any]] | None = None) -> str:
    """`preference` (chosen/rejected), `tool` (tool calls or results) or `conversation`."""
    if preference_of(row) is not None:
        return "preference"
    if has_tool_calls(messages_of(row) if messages is None else messages):
        return "tool"
    return "conversation"


def row_metadata(row: dict[str, Any]) -> dict[str, Any]:
    metadata = row.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def row_context_ids(metadata: dict[str, Any]) -> list[str]:
    """The chunks a row was written from (context_ids, or the single context_id)."""
    ids = metadata.get("context_ids")
    if isinstance(ids, list) and ids:
        return [str(i) for i in ids]
    one = metadata.get("context_id")
    return [] if one is None else [str(one)]


def row_persona(row: dict[str, Any]) -> str | None:
    persona = row.get("persona") or row_metadata(row).get("persona_name")
    return persona if isinstance(persona, str) and persona else None


def row_usage(metadata: dict[str, Any]) -> dict[str, Any]:
    usage = metadata.get("usage")
    return usage if isinstance(usage, dict) else {}


def row_models(metadata: dict[str, Any]) -> dict[str, str]:
    """Role → model name (respondent, correspondent); the `served` details are left out."""
    models = metadata.get("models")
    if not isinstance(models, dict):
        return {}
    return {role: str(name) for role, name in models.items() if isinstance(name, str)}


class _Clusters:
    """Union-find over the rows evaluate flagged as duplicates of an earlier row."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.kinds: dict[str, str] = {}

    def find(self, key: str) -> str:
        parent = self.parent.setdefault(key, key)
        while parent != key:
            grandparent = self.parent.setdefault(parent, parent)
            self.parent[key] = grandparent
            key, parent = parent, grandparent
        return key

    def link(self, row_id: str, of: str, kind: str) -> None:
        self.kinds[row_id] = kind
        a, b = self.find(row_id), self.find(of)
        if a != b:
            self.parent[a] = b

    def summary(self) -> dict[str, Any]:
        members: dict[str, list[str]] = {}
        for key in self.parent:
            members.setdefault(self.find(key), []).append(key)
        clusters = sorted(members.values(), key=lambda m: (-len(m), m[0]))
        return {
            "clusters": len(clusters),
            "rows": sum(map(len, clusters)),
            "exact": sum(1 for kind in self.kinds.values() if kind == "exact"),
            "near": sum(1 for kind in self.kinds.values() if kind == "near"),
            "largest": [sorted(m) for m in clusters[:CLUSTERS_SHOWN]],
        }


class DatasetProfile:
    """Counts rows as they stream by (`add`); `summary` gives the totals as plain JSON-ready data."""

    def __init__(self) -> None:
        self.rows = 0
        self.kinds: Counter[str] = Counter()
        self.user_turns = BinnedCounts(TURN_EDGES)
        self.tokens = BinnedCounts(TOKEN_EDGES)
        self.chars = 0
        self.usage: Counter[str] = Counter()
        self.cost = 0.0
        self.unpriced = 0
        self.models: dict[str, Counter[str]] = {}
        self.judges: Counter[str] = Counter()
        self.grades: Counter[str] = Counter()
        self.final = ScoreHistogram()
        self.criteria = {name: ScoreHistogram() for name in CRITERIA}
        self.personas: Counter[str] = Counter()
        self.chunks: Counter[str] = Counter()
        self.documents: set[str] = set()
        self.ended_by: Counter[str] = Counter()
        self.reasoning_rows = 0
        self.clusters = _Clusters()

    def add(self, row: dict[str, Any]) -> None:
        """Count one row."""
        self.rows += 1
        metadata = row_metadata(row)
        messages = messages_of(row)
        self.kinds[row_kind(row, messages)] += 1
        self.user_turns.add(sum(1 for m in messages if m.get("role") == "user"))
        self.chars += sum(len(text_of(m)) for m in messages)
        if any(m.get("reasoning_content") for m in messages):
            self.reasoning_rows += 1
        self._add_usage(row_usage(metadata))
        for role, model in row_models(metadata).items():
            self.models.setdefault(role, Counter())[model] += 1
        self._add_verdict(row)
        persona = row_persona(row)
        if persona is not None:
            self.personas[persona] += 1
        self.chunks.update(row_context_ids(metadata))
        documents = metadata.get("document_ids")
        if isinstance(documents, list):
            self.documents.update(map(str, documents))
        if metadata.get("ended_by") is not None:
            self.ended_by[str(metadata["ended_by"])] += 1
        metrics = metadata.get("metrics")
        duplicate = metrics.get("duplicate") if isinstance(metrics, dict) else None
        if isinstance(duplicate, dict) and duplicate.get("of") is not None and row.get("id") is not None:
            self.clusters.link(str(row["id"]), str(duplicate["of"]), str(duplicate.get("kind")))

    def _add_usage(self, usage: dict[str, Any]) -> None:
        for key in ("calls", "prompt_tokens", "completion_tokens", "total_tokens"):
            value = usage.get(key)
            if isinstance(value, int):
                self.usage[key] += value
        total = usage.get("total_tokens")
        if isinstance(total, int):
            self.tokens.add(total)
        cost = usage.get("cost_usd")
        if isinstance(cost, int | float):
            self.cost += float(cost)
        elif usage:
            self.unpriced += 1

    def _add_verdict(self, row: dict[str, Any]) -> None:
        self.grades[row_grade(row) or "ungraded"] += 1
        score = row_score(row)
        if score is not None:
            self.final.add(min(1.0, max(0.0, score)))
        evaluation = row.get("evaluation")
        if not isinstance(evaluation, dict):
            return
        if isinstance(evaluation.get("judge_model"), str):
            self.judges[evaluation["judge_model"]] += 1
        for name in CRITERIA:
            verdict = evaluation.get(name)
            value = verdict.get("score") if isinstance(verdict, dict) else None
            if isinstance(value, int | float) and verdict.get("applicable") is not False:  # type: ignore[union-attr]
                self.criteria[name].add(min(1.0, max(0.0, float(value))))

    def summary(self) -> dict[str, Any]:
        """Everything counted, JSON-ready."""
        grades = {grade: self.grades.get(grade, 0) for grade in GRADES}
        if self.grades.get("ungraded"):
            grades["ungraded"] = self.grades["ungraded"]
        return {
            "rows": self.rows,
            "kinds": dict(self.kinds.most_common()),
            "user_turns": self.user_turns.summary(),
            "tokens": self.tokens.summary(),
            "chars": self.chars,
            "reasoning_rows": self.reasoning_rows,
            "usage": dict(self.usage),
            "cost_usd": round(self.cost, 6),
            "unpriced_rows": self.unpriced,
            "models": {role: dict(c.most_common()) for role, c in self.models.items()},
            "judges": dict(self.judges.most_common()),
            "grades": grades,
            "evaluated": self.final.count,
            "final_score": {**self.final.summary(), "histogram": self.final.chart()},
            "criteria": {name: h.summary() for name, h in self.criteria.items()},
            "personas": _coverage(self.personas),
            "chunks": _coverage(self.chunks),
            "documents": len(self.documents),
            "ended_by": dict(self.ended_by.most_common()),
            "duplicates": self.clusters.summary(),
        }


def _coverage(counts: Counter[str]) -> dict[str, Any]:
    """How many distinct values, how many rows each got (binned), and the most used."""
    shares = BinnedCounts(SHARE_EDGES)
    for n in counts.values():
        shares.add(n)
    return {"distinct": len(counts), "rows_each": shares.summary(), "top": counts.most_common(TOP)}
