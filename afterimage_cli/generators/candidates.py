"""The candidate answers at a branch of a preference run: which model is asked what, per strategy.

    models     the respondent's answer and preference.rejected_model's, to the same request
    samples    the respondent's answer and candidates - 1 more samples (at preference.temperature)
    degrade    the respondent's answer and one written to be worse along an axis (prompts.DEGRADE_AXES)
    on_policy  `candidates` samples of preference.policy, the model being trained

Candidates of one branch are asked at once (in batch mode: in one round). Each must come back whole: an answer
the token limit cut is handled as `generation.on_truncated` says, like every answer of the dialog.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .. import prompts
from ..config import PreferenceConfig
from ..engine.together import together
from ..providers.base import LLMProvider, LLMResponse, Messages

# ConversationGenerator._complete_whole: (call, provider, the setting to raise when answers are cut off).
CompleteWhole = Callable[[Callable[[], Awaitable[LLMResponse]], LLMProvider, str], Awaitable[LLMResponse]]


@dataclass
class Candidate:
    """One candidate answer: its text, who wrote it and how (`source`), and the call's answer when made here."""

    text: str
    reasoning: str | None
    model: str
    source: str  # respondent | rejected_model | sample | degraded | policy
    response: LLMResponse | None = None
    axis: str | None = None  # a degraded answer's axis (preference.axes)

    @classmethod
    def of(cls, response: LLMResponse, model: str, source: str) -> Candidate:
        return cls(response.text, response.reasoning_content, model, source, response)

    def message(self) -> dict[str, Any]:
        """The answer as a turn of the row schema."""
        return {"role": "assistant", "content": self.text, "reasoning_content": self.reasoning}


def degraded_request(request: Messages, axis: str) -> Messages:
    """The request with the respondent's system prompt told to make this one answer worse along `axis`."""
    instruction = prompts.DEGRADE_INSTRUCTION.format(how=prompts.DEGRADE_AXES[axis])
    if request and request[0].get("role") == "system":
        return [{**request[0], "content": f"{request[0]['content']}\n\n{instruction}"}, *request[1:]]
    return [{"role": "system", "content": instruction}, *request]


class CandidateMaker:
    """Makes a branch's candidates with the run's providers, each answer whole."""

    def __init__(
        self,
        cfg: PreferenceConfig,
        *,
        respondent: LLMProvider,
        complete_whole: CompleteWhole,
        rejected_model: LLMProvider | None = None,
        policy: LLMProvider | None = None,
    ) -> None:
        self.cfg = cfg
        self.respondent = respondent
        self.complete_whole = complete_whole
        self.rejected_model = rejected_model
        self.policy = policy
        self.sampling: dict[str, Any] = {} if cfg.temperature is None else {"temperature": cfg.temperature}

    def _ask(
        self, provider: LLMProvider, setting: str, request: Messages, source: str, **params: Any
    ) -> Awaitable[Candidate]:
        async def call() -> Candidate:
            response = await self.complete_whole(lambda: provider.acomplete(request, **params), provider, setting)
            return Candidate.of(response, provider.model_name, source)

        return call()

    async def make(
        self, request: Messages, *, made: Candidate | None = None, axis: str | None = None
    ) -> list[Candidate]:
        """The candidates for `request` (system prompt + history + the user's message); `made` is the respondent's
        answer when the dialog already has it (it is not asked for again, except by on_policy, which replaces it)."""
        strategy = self.cfg.strategy
        calls: list[Awaitable[Candidate]] = []
        first = [made] if made is not None and strategy != "on_policy" else []
        if strategy != "on_policy" and made is None:
            calls.append(self._ask(self.respondent, "respondent.max_tokens", request, "respondent"))
        if strategy == "models":
            assert self.rejected_model is not None
            calls.append(
                self._ask(self.rejected_model, "preference.rejected_model.max_tokens", request, "rejected_model")
            )
        elif strategy == "samples":
            calls += [
                self._ask(self.respondent, "respondent.max_tokens", request, "sample", **self.sampling)
                for _ in range(self.cfg.candidates - 1)
            ]
        elif strategy == "degrade":
            assert axis is not None
            degraded = degraded_request(request, axis)
            calls.append(self._ask(self.respondent, "respondent.max_tokens", degraded, "degraded"))
        else:  # on_policy
            assert self.policy is not None
            calls += [
                self._ask(self.policy, "preference.policy.max_tokens", request, "policy", **self.sampling)
                for _ in range(self.cfg.candidates)
            ]
        made_here = await together(*calls)
        for candidate in made_here:
            if candidate.source == "degraded":
                candidate.axis = axis
        return first + made_here
