"""The candidate answers at a branch of a preference run: which model is asked what, per strategy.

    models     the respondent's answer and preference.rejected_model's, to the same request
    samples    the respondent's answer and candidates - 1 more samples (at preference.temperature)
    degrade    the respondent's answer and one written to be worse along an axis (prompts.DEGRADE_AXES)
    on_policy  `candidates` samples of preference.policy, the model being trained

Candidates of one branch are asked at once (in batch mode: in one round). Each is a turn like every answer of
the dialog: it passes the run's hygiene checks or is sampled afresh (a cut answer as `generation.on_truncated`
says), so the two sides of a pair differ in quality, not in defects the checks catch anyway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .. import prompts
from ..config import PreferenceConfig
from ..engine.together import together
from ..providers.base import LLMProvider, LLMResponse, Messages

Ask = Callable[[dict[str, Any]], Awaitable[LLMResponse]]
"""One candidate's call, given the parameters of a regeneration ({} the first time)."""
Produce = Callable[[Ask, LLMProvider, str, int], Awaitable[LLMResponse]]
"""(call, provider, the setting to raise when answers are cut off, the candidate's number) → a clean answer."""


@dataclass
class Candidate:
    """One candidate answer: its text, who wrote it and how (`source`), and the call's answer when made here."""

    text: str
    reasoning: str | None
    model: str
    source: str  # respondent | rejected_model | sample | degraded | policy
    response: LLMResponse | None = None
    axis: str | None = None  # a degraded answer's axis (preference.axes)

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
    """Makes a branch's candidates with the run's providers."""

    def __init__(
        self,
        cfg: PreferenceConfig,
        *,
        respondent: LLMProvider,
        rejected_model: LLMProvider | None = None,
        policy: LLMProvider | None = None,
    ) -> None:
        self.cfg = cfg
        self.respondent = respondent
        self.rejected_model = rejected_model
        self.policy = policy
        self.sampling: dict[str, Any] = {} if cfg.temperature is None else {"temperature": cfg.temperature}

    def _asks(self, request: Messages, made: Candidate | None, axis: str | None) -> list[_Ask]:
        """What to ask of whom for the candidates the branch does not have yet."""
        strategy, respondent = self.cfg.strategy, self.respondent
        asks = [] if strategy == "on_policy" or made is not None else [_Ask(respondent, "respondent", request)]
        if strategy == "models":
            assert self.rejected_model is not None
            asks.append(_Ask(self.rejected_model, "rejected_model", request, setting="preference.rejected_model"))
        elif strategy == "samples":
            asks += [_Ask(respondent, "sample", request, self.sampling) for _ in range(self.cfg.candidates - 1)]
        elif strategy == "degrade":
            assert axis is not None
            asks.append(_Ask(respondent, "degraded", degraded_request(request, axis), axis=axis))
        else:  # on_policy
            assert self.policy is not None
            policy = _Ask(self.policy, "policy", request, self.sampling, setting="preference.policy")
            asks += [policy] * self.cfg.candidates
        return asks

    async def make(
        self, request: Messages, produce: Produce, *, made: Candidate | None = None, axis: str | None = None
    ) -> list[Candidate]:
        """The candidates for `request` (system prompt + history + the user's message), each a clean turn by
        `produce`; `made` is the respondent's answer when the dialog already has it (it is not asked for again,
        except by on_policy, which replaces it)."""
        first = [made] if made is not None and self.cfg.strategy != "on_policy" else []
        asks = self._asks(request, made, axis)
        return first + await together(*(each.candidate(produce, number) for number, each in enumerate(asks)))


@dataclass
class _Ask:
    """One candidate to ask for: of which model, as what, with which request and sampling parameters."""

    provider: LLMProvider
    source: str
    request: Messages
    params: dict[str, Any] = field(default_factory=dict)
    setting: str = "respondent"  # the model block whose max_tokens to raise when answers are cut off
    axis: str | None = None

    async def candidate(self, produce: Produce, number: int) -> Candidate:
        def call(regeneration: dict[str, Any]) -> Awaitable[LLMResponse]:
            return self.provider.acomplete(self.request, **{**self.params, **regeneration})

        response = await produce(call, self.provider, f"{self.setting}.max_tokens", number)
        return Candidate(
            response.text, response.reasoning_content, self.provider.model_name, self.source, response, self.axis
        )
