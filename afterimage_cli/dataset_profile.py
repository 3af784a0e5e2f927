"""What a set of rows holds, counted in one pass: the numbers `view`'s overview page and the dataset card
of `export --format hf` both show (kinds, turns, tokens, cost, models, grades and scores, personas and
chunks coverage, near-duplicate clusters), from the rows' own fields and metadata — nothing else is read.

Memory grows with the distinct personas, chunks and duplicated rows, never with the rows themselves.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from .evaluation.grading import CRITERIA
from .evaluation.stats import TURN_EDGES, BinnedCounts, ScoreHistogram
from .export.rows import row_grade, row_score
from .rowshape import messages_of, preference_of, text_of
from .types import GRADES

TOKEN_EDGES = (0, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000)
SHARE_EDGES = (1, 2, 3, 6, 11, 21, 51)
"""Bins of 'rows per persona / per chunk': how evenly the run covered them."""
TOP = 10
_NUMBER = (int, float)
CLUSTERS_SHOWN = 20


@dataclass(slots=True)  # not frozen: a frozen dataclass sets each field through object.__setattr__ (slow per row)
class RowFacts:
    """What the profile and the viewer read from one row, read once."""

    messages: list[dict[str, Any]]
    """The conversation (a pair's chosen answer after its history)."""
    kind: str
    """`preference` (chosen/rejected), `tool` (tool calls or results) or `conversation`."""
    user_turns: int
    chars: int
    reasoning: bool
    metadata: dict[str, Any]
    usage: dict[str, Any]
    models: dict[str, str]
    """Role → model name (respondent, correspondent); the `served` details are left out."""
    persona: str | None
    chunks: list[str]
    """The chunks the row was written from (context_ids, or the single context_id)."""
    documents: list[str]
    score: float | None
    grade: str | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> RowFacts:
        messages = messages_of(row)
        # Comprehensions and extra calls are avoided below: in Python 3.11 each costs a frame, for every row.
        pair = preference_of(row) if "chosen" in row or "rejected" in row else None
        if pair is not None:
            messages = [*messages, *pair[0]]
        user_turns = chars = 0
        reasoning = tools = False
        for message in messages:  # one pass for every count: this runs for every row
            role = message.get("role")
            if role == "user":
                user_turns += 1
            elif role == "tool" or message.get("tool_calls"):
                tools = True
            content = message.get("content")
            chars += len(content) if type(content) is str else len(text_of(message))
            if not reasoning and message.get("reasoning_content"):
                reasoning = True
        kind = "preference" if pair is not None else "tool" if tools else "conversation"
        metadata = row.get("metadata")
        if type(metadata) is not dict:
            metadata = {}
        usage = metadata.get("usage")
        models = metadata.get("models")
        persona = row.get("persona") or metadata.get("persona_name")
        ids = metadata.get("context_ids")
        if type(ids) is not list or not ids:
            one = metadata.get("context_id")
            ids = [] if one is None else [one]
        documents = metadata.get("document_ids")
        return cls(
            messages=messages,
            kind=kind,
            user_turns=user_turns,
            chars=chars,
            reasoning=reasoning,
            metadata=metadata,
            usage=usage if type(usage) is dict else {},
            models={r: m for r, m in models.items() if type(m) is str} if type(models) is dict else {},
            persona=persona if type(persona) is str and persona else None,
            chunks=list(map(str, ids)),
            documents=list(map(str, documents)) if type(documents) is list else [],
            score=row_score(row),
            grade=row_grade(row),
        )


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
        self._criteria = tuple(self.criteria.items())
        self.personas: Counter[str] = Counter()
        self.chunks: Counter[str] = Counter()
        self.documents: set[str] = set()
        self.ended_by: Counter[str] = Counter()
        self.reasoning_rows = 0
        self.clusters = _Clusters()
        self.tool_calls: Counter[str] = Counter()
        self.tools_offered: set[str] = set()

    def add(self, row: dict[str, Any], facts: RowFacts | None = None) -> None:
        """Count one row (`facts`: its `RowFacts`, when the caller has them already)."""
        facts = facts or RowFacts.of(row)
        metadata = facts.metadata
        self.rows += 1
        self.kinds[facts.kind] += 1
        self.user_turns.add(facts.user_turns)
        self.chars += facts.chars
        self.reasoning_rows += facts.reasoning
        if facts.kind == "tool":
            self._add_tools(row, facts.messages)
        if facts.usage:
            self._add_usage(facts.usage)
        for role, model in facts.models.items():
            counts = self.models.get(role)
            if counts is None:  # not setdefault(role, Counter()): that builds a Counter per row and role
                counts = self.models[role] = Counter()
            counts[model] += 1
        self.grades[facts.grade or "ungraded"] += 1
        score = facts.score
        if score is not None:
            if 0.0 <= score <= 1.0:
                self.final.add_unit(score)
            else:
                self.final.add(score)
        evaluation = row.get("evaluation")
        if type(evaluation) is dict:
            self._add_criteria(evaluation)
        if facts.persona is not None:
            self.personas[facts.persona] += 1
        chunks = self.chunks
        for chunk in facts.chunks:  # Counter.update's checks cost more than the one or two chunks of a row
            chunks[chunk] += 1
        self.documents.update(facts.documents)
        ended_by = metadata.get("ended_by")
        if ended_by is not None:
            self.ended_by[str(ended_by)] += 1
        metrics = metadata.get("metrics")
        duplicate = metrics.get("duplicate") if type(metrics) is dict else None
        if type(duplicate) is dict and duplicate.get("of") is not None and row.get("id") is not None:
            self.clusters.link(str(row["id"]), str(duplicate["of"]), str(duplicate.get("kind")))

    def _add_tools(self, row: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        for message in messages:
            for call in message.get("tool_calls") or ():
                function = call.get("function") if type(call) is dict else None
                if type(function) is dict:
                    self.tool_calls[str(function.get("name"))] += 1
        tools = row.get("tools")
        for tool in tools if type(tools) is list else ():
            function = tool.get("function") if type(tool) is dict else None
            if type(function) is dict and type(function.get("name")) is str:
                self.tools_offered.add(function["name"])

    def _add_usage(self, usage: dict[str, Any]) -> None:
        for key in ("calls", "prompt_tokens", "completion_tokens", "total_tokens"):
            value = usage.get(key)
            if type(value) is int:
                self.usage[key] += value
        total = usage.get("total_tokens")
        if type(total) is int:
            self.tokens.add(total)
        cost = usage.get("cost_usd")
        if isinstance(cost, _NUMBER):
            self.cost += float(cost)
        else:
            self.unpriced += 1

    def _add_criteria(self, evaluation: dict[str, Any]) -> None:
        judge = evaluation.get("judge_model")
        if type(judge) is str:
            self.judges[judge] += 1
        for name, histogram in self._criteria:
            verdict = evaluation.get(name)
            if type(verdict) is dict and verdict.get("applicable") is not False:
                value = verdict.get("score")
                if type(value) is float and 0.0 <= value <= 1.0:
                    histogram.add_unit(value)  # the common case, checked first: this runs per row and criterion
                elif isinstance(value, _NUMBER):
                    histogram.add(float(value))

    def summary(self) -> dict[str, Any]:
        """Everything counted, JSON-ready."""
        grades: dict[str, int] = {grade: self.grades.get(grade, 0) for grade in GRADES}
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
            "tool_calls": dict(self.tool_calls.most_common()),
            "tools_offered": sorted(self.tools_offered),
        }


def _coverage(counts: Counter[str]) -> dict[str, Any]:
    """How many distinct values, how many rows each got (binned), and the most used."""
    shares = BinnedCounts(SHARE_EDGES)
    for n in counts.values():
        shares.add(n)
    return {"distinct": len(counts), "rows_each": shares.summary(), "top": counts.most_common(TOP)}
