"""The config sections that judge rows: evaluation (the judge and its scoring), turn hygiene, the quality
gate and preference pairs."""

from __future__ import annotations

import typing
from typing import Literal

from pydantic import Field, model_validator

from .config_model import ModelConfig, RunMode, _Strict

Criterion = Literal["coherence", "factuality", "grounding", "helpfulness", "relevance", "tool_use"]
GradeName = Literal["perfect", "good", "needs_improvement", "bad", "not_acceptable"]
# Relative weights of the judge's criteria in final_score; renormalised over the applicable ones. tool_use
# (evaluation.grading.TOOL_USE_WEIGHT unless set) is left out so configs without it keep their fingerprint.
DEFAULT_WEIGHTS: dict[Criterion, float] = {
    "coherence": 0.15,
    "factuality": 0.25,
    "grounding": 0.15,
    "helpfulness": 0.25,
    "relevance": 0.20,
}


class GradeThresholds(_Strict):
    """The lowest final_score of each grade; below `bad` is not_acceptable."""

    perfect: float = Field(default=0.9, ge=0, le=1)
    good: float = Field(default=0.75, ge=0, le=1)
    needs_improvement: float = Field(default=0.5, ge=0, le=1)
    bad: float = Field(default=0.25, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> GradeThresholds:
        if not self.perfect >= self.good >= self.needs_improvement >= self.bad:
            raise ValueError("grade thresholds must not increase: perfect >= good >= needs_improvement >= bad")
        return self


class EvaluationConfig(_Strict):
    """The judge of `afterimage evaluate` and of generate's quality gate, and how its verdict is scored."""

    judge: ModelConfig | None = Field(default=None, description="The judge model; defaults to the respondent.")
    weights: dict[Criterion, float] = Field(
        default_factory=lambda: dict[Criterion, float](DEFAULT_WEIGHTS),
        description="Weight of each criterion in final_score; criteria left out keep their default weight.",
    )
    grades: GradeThresholds = Field(default_factory=GradeThresholds)
    context_criteria: list[Criterion] = Field(
        default_factory=lambda: list[Criterion](["grounding"]),
        description="Criteria judged only when the row has a context; otherwise not applicable.",
    )
    concurrency: int = Field(default=8, ge=1, description="Conversations judged at once.")
    mode: RunMode = Field(default="online", description="online, or batch: judge calls through batch APIs (--mode).")
    near_duplicate_threshold: float = Field(default=0.8, gt=0, le=1, description="Estimated Jaccard similarity.")
    dedup_window: int = Field(default=50_000, ge=1, description="Recent rows kept for duplicate detection.")
    max_context_chars: int = Field(default=12_000, ge=0, description="Context shown to the judge, at most.")

    @model_validator(mode="after")
    def _check(self) -> EvaluationConfig:
        self.weights = {**DEFAULT_WEIGHTS, **self.weights}
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must not be negative")
        if not any(w > 0 for w in self.weights.values()):
            raise ValueError("at least one weight must be positive")
        return self


CheckName = Literal["cut", "echo", "copy", "repeat", "leak", "short"]


class HygieneConfig(_Strict):
    """Checks of every turn as it is written; a turn that fails one is generated again (bounded)."""

    enabled: bool = Field(default=True, description="Check turns at all; false turns every check off.")
    checks: dict[CheckName, bool] = Field(
        default_factory=dict, description="Checks turned on or off by name; checks left out stay on."
    )
    max_regenerations: int = Field(
        default=2, ge=0, le=10, description="Fresh samples of a failing turn before the dialog ends there."
    )
    min_chars: int = Field(default=2, ge=0, description="A turn shorter than this (stripped) fails `short`.")
    similarity: float = Field(
        default=0.8, gt=0, le=1, description="Word 3-gram overlap at which echo, copy and repeat fail a turn."
    )
    regeneration_temperature: float = Field(
        default=0.7,
        ge=0,
        le=2,
        description="A regeneration is sampled at least this hot (a model block's lower temperature is raised).",
    )
    leak_phrases: list[str] = Field(
        default_factory=list, description="More phrases that fail `leak` wherever they appear in a turn."
    )

    def enabled_checks(self) -> list[str]:
        """The checks that run, in their fixed order."""
        if not self.enabled:
            return []
        return [name for name in typing.get_args(CheckName) if self.checks.get(name, True)]


class QualityConfig(_Strict):
    """generate's quality gate: judge each conversation, regenerate the ones below the bar (bounded)."""

    auto_improve: bool = False
    min_grade: GradeName = Field(default="good", description="The lowest grade a conversation may keep.")
    max_attempts: int = Field(default=3, ge=1, le=10, description="Generations per item, the first included.")
    keep_pairs: bool = Field(
        default=False,
        description="Keep a discarded attempt as the row's `rejected` answer (the kept one is `chosen`); attempts "
        "then share the item's opening.",
    )

    @model_validator(mode="after")
    def _check(self) -> QualityConfig:
        if self.keep_pairs and not self.auto_improve:
            raise ValueError("keep_pairs needs auto_improve: true (its pairs are the quality gate's attempts)")
        return self


PreferenceStrategy = Literal["models", "samples", "degrade", "on_policy"]
DegradeAxis = Literal["unfaithful", "ignores_persona", "verbose", "wrong"]
DEGRADE_AXES: tuple[DegradeAxis, ...] = ("unfaithful", "ignores_persona", "verbose", "wrong")
# Which strategies write how many candidates, and which model block each needs.
_SAMPLING_STRATEGIES = ("samples", "on_policy")


class PreferenceConfig(_Strict):
    """generation.kind: preference — where each conversation branches into candidate answers, how they are
    made, and when the judge's verdict is trusted enough to keep the pair."""

    strategy: PreferenceStrategy = Field(
        default="samples",
        description="models: respondent vs rejected_model; samples: `candidates` respondent samples; degrade: a "
        "deliberately worse answer along one of `axes`; on_policy: `candidates` samples of `policy`.",
    )
    at_turn: Literal["last", "random", "every"] = Field(
        default="last", description="The user turn where the pair branches: the last, one at random, or every turn."
    )
    candidates: int = Field(
        default=2, ge=2, le=8, description="samples / on_policy: answers per branch; best is chosen, worst rejected."
    )
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="samples / on_policy: the candidates' temperature (default: the model's)."
    )
    rejected_model: ModelConfig | None = Field(default=None, description="models: the model block of the other answer.")
    policy: ModelConfig | None = Field(
        default=None, description="on_policy: the model being trained (usually behind an api_base server)."
    )
    axes: list[DegradeAxis] = Field(
        default_factory=lambda: list[DegradeAxis](DEGRADE_AXES),
        min_length=1,
        description="degrade: how the rejected answer may be worse; each item draws one that applies to it.",
    )
    min_margin: float = Field(
        default=0.1, ge=0, le=1, description="Judge score of chosen minus rejected (0-1, both orders' mean), at least."
    )
    max_dropped_share: float = Field(
        default=0.5,
        gt=0,
        lt=1,  # at 1, a judge that can never decide would take new item numbers forever
        description="Share of finished items whose pair was dropped (tie, disagreement, margin) before the run stops.",
    )

    @model_validator(mode="after")
    def _check(self) -> PreferenceConfig:
        needs = {"models": "rejected_model", "on_policy": "policy"}
        for strategy, field in needs.items():
            if self.strategy == strategy and getattr(self, field) is None:
                raise ValueError(f"strategy {strategy!r} needs preference.{field} (a model block)")
            if self.strategy != strategy and getattr(self, field) is not None:
                raise ValueError(f"preference.{field} is used only by strategy {strategy!r}, not {self.strategy!r}")
        # By value, not by which fields were given: flags re-validate a dumped config, where every field is given.
        if self.strategy not in _SAMPLING_STRATEGIES and (self.candidates != 2 or self.temperature is not None):
            raise ValueError(
                f"preference.candidates and preference.temperature apply to strategies samples and on_policy, not "
                f"{self.strategy!r} (it makes two answers)"
            )
        if self.strategy != "degrade" and list(self.axes) != list(DEGRADE_AXES):
            raise ValueError(f"preference.axes applies to strategy degrade, not {self.strategy!r}")
        return self
