"""PreferenceGenerator (`generation.kind: preference`): a conversation made as ConversationGenerator makes it,
branching at `preference.at_turn` into candidate answers for the same history. The judge compares them in both
orders (evaluation/pairwise.py); an agreed pair with enough margin becomes the row's `chosen` and `rejected`,
and the dialog goes on with the chosen answer. A pair the judge cannot settle (a tie, orders that disagree, too
small a margin) rejects the item with that cause, so the engine replaces it and the run still ends with exactly
N rows; at_turn `every` drops only that turn's pair and rejects the item when none of its pairs is kept.

The row is a conversation row whose `conversations` follow the chosen answers, plus:

    chosen, rejected          the assistant answers of the (last) pair, at metadata.preference.turn
    earlier_pairs             at_turn every: the pairs of earlier turns, [{turn, chosen, rejected, preference}]
    metadata.preference       strategy, turn, candidates (source, model, score), chosen, rejected, margin, ...
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..config import PreferenceConfig
from ..engine.ledger import FilterBudget
from ..errors import ItemRejected
from ..evaluation.pair_stats import PairStats
from ..evaluation.pairwise import PairDecision, PairwiseJudge
from ..hygiene import Finding
from ..providers.base import ChatSession, LLMProvider, LLMResponse
from ..storage.base import Row
from ..types import GeneratedInstructions, GeneratedResponsePrompt
from .base import ItemPlan
from .candidates import Ask, Candidate, CandidateMaker, Produce
from .conversation import ConversationGenerator
from .turn_hygiene import DialogHygiene, TurnPlace

# The rejection causes of pairs the judge could not settle: they are expected in a preference run, so they have a
# budget of their own (preference.max_dropped_share) instead of error_budget.max_rejected_share.
PAIR_CAUSES = frozenset({"pair_tie", "pair_disagreement", "pair_margin", "pair_identical", "pair_degraded_won"})
_WHY = {
    "tie": "the judge scored the best (or the worst) candidates alike",
    "disagreement": "the judge's two orders (A/B and B/A) named different winners",
    "margin": "the judge's margin between the best and the worst candidate is below preference.min_margin",
    "degraded_won": "both orders preferred the answer written to be worse",
}


@dataclass
class Pair:
    """A kept pair: the turn it branched at, its two answers and what metadata.preference says of it."""

    turn: int
    chosen: Candidate
    rejected: Candidate
    info: dict[str, Any]


@dataclass
class BranchPlan(ItemPlan):
    """A preference item: where its dialog branches and, while it runs, its dialog and pairs."""

    branch_turns: frozenset[int] = frozenset()
    branch_rng: random.Random = field(default_factory=random.Random)  # degrade axes: apart from the dialog's draws
    chat: BranchingChat | None = None
    pairs: list[Pair] = field(default_factory=list)
    dropped: list[tuple[int, str]] = field(default_factory=list)  # (turn, cause) of pairs not kept


class BranchingChat(ChatSession):
    """The respondent's side of a preference dialog: at a branch turn the answer is the judged pair's chosen one."""

    def __init__(self, generator: PreferenceGenerator, plan: BranchPlan, system_prompt: str, context: Row) -> None:
        super().__init__(generator.respondent, system_prompt)
        self.generator = generator
        self.plan = plan
        self.context = context  # instruction_context and response_context, as the judge reads them

    async def asend_message(self, message: str, **kwargs: Any) -> LLMResponse:
        if len(self.history) // 2 + 1 not in self.plan.branch_turns:
            return await super().asend_message(message, **kwargs)
        winner = await self.branch(message)
        assert winner.response is not None  # made here, not given
        return winner.response

    async def branch(self, message: str, made: Candidate | None = None) -> Candidate:
        """Candidates for `message`, judged; the history goes on with the chosen one (or, when an `every` pair
        is dropped, the first candidate). `made` is the respondent's answer when the dialog already has it."""
        turn = len(self.history) // 2 + 1
        user = {"role": "user", "content": message}
        request = self.messages() + [user]
        candidates = await self.generator.candidates_for(self.plan, request, made)
        pair = await self.generator.judge_pair(
            self.plan, turn, {**self.context, "conversations": self.history + [user]}, candidates
        )
        winner = pair.chosen if pair is not None else candidates[0]
        self.history += [user, {"role": "assistant", "content": winner.text}]
        return winner


class PreferenceGenerator(ConversationGenerator):
    """Multi-turn dialogs with chosen/rejected answer pairs (see the module docstring)."""

    def __init__(
        self,
        *,
        preference: PreferenceConfig,
        judge: PairwiseJudge,
        stats: PairStats,
        rejected_model: LLMProvider | None = None,
        policy: LLMProvider | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.preference = preference
        self.judge = judge
        self.stats = stats
        self.candidates = CandidateMaker(
            preference, respondent=self.respondent, rejected_model=rejected_model, policy=policy
        )
        self.filter_budget = FilterBudget(PAIR_CAUSES, preference.max_dropped_share, "preference.max_dropped_share")

    def plan(self, index: int) -> BranchPlan:
        """The conversation's plan, cut at the branch turn (last, random) or branching at every turn."""
        base = super().plan(index)
        rng = random.Random(f"{self.seed}:{index}:branch")  # a string seed hashes the same in every process
        turns = base.num_turns
        if self.preference.at_turn == "random":
            turns = rng.randint(1, base.num_turns)
        branches = range(1, turns + 1) if self.preference.at_turn == "every" else (turns,)
        return BranchPlan(
            index=base.index,
            rng=base.rng,
            persona=base.persona,
            num_turns=turns,
            branch_turns=frozenset(branches),
            branch_rng=rng,
        )

    async def open_chat(
        self, plan: ItemPlan, generated: GeneratedInstructions, response_prompt: GeneratedResponsePrompt
    ) -> ChatSession:
        assert isinstance(plan, BranchPlan)
        context = {"instruction_context": generated.context, "response_context": response_prompt.context}
        plan.chat = BranchingChat(self, plan, response_prompt.prompt, context)
        return plan.chat

    async def generate_item(self, plan: ItemPlan) -> Row:
        assert isinstance(plan, BranchPlan)
        row = await super().generate_item(plan)
        turns = row["conversations"]
        if not plan.pairs and not plan.dropped:
            # The simulated user ended (or the context filled) before the branch turn: branch at the last turn,
            # whose answer the dialog already has.
            assert plan.chat is not None
            plan.chat.history = plan.chat.history[:-2]
            answer = turns[-1]
            made = Candidate(
                answer["content"], answer.get("reasoning_content"), self.respondent.model_name, "respondent"
            )
            chosen = await plan.chat.branch(turns[-2]["content"], made)
            turns[-1] = chosen.message()
        if not plan.pairs:
            causes = Counter(cause for _, cause in plan.dropped)
            listed = ", ".join(f"turn {turn}: {cause}" for turn, cause in plan.dropped)
            raise ItemRejected(
                f"no pair of the item's {len(plan.dropped)} turn(s) was kept ({listed})",
                cause=causes.most_common(1)[0][0],
            )
        return self._with_pairs(row, plan)

    def _with_pairs(self, row: Row, plan: BranchPlan) -> Row:
        last = plan.pairs[-1]
        row["chosen"] = last.chosen.message()
        row["rejected"] = last.rejected.message()
        info = dict(last.info)
        if self.preference.at_turn == "every":
            row["earlier_pairs"] = [
                {"turn": p.turn, "chosen": p.chosen.message(), "rejected": p.rejected.message(), "preference": p.info}
                for p in plan.pairs[:-1]
            ]
            info["dropped"] = [{"turn": turn, "cause": cause} for turn, cause in plan.dropped]
        row["metadata"]["preference"] = info
        return row

    # --- one branch ---------------------------------------------------------------------------------------

    async def candidates_for(
        self, plan: BranchPlan, request: list[dict[str, Any]], made: Candidate | None
    ) -> list[Candidate]:
        """The branch's candidates, each checked like any answer of the dialog (regenerated when it fails)."""
        axis = self._axis(plan) if self.preference.strategy == "degrade" else None
        return await self.candidates.make(request, self._producer(plan, request), made=made, axis=axis)

    def _producer(self, plan: BranchPlan, request: list[dict[str, Any]]) -> Produce:
        """How a candidate becomes a clean turn: the run's hygiene, at the answer's place in the dialog."""
        dialog = [m for m in request if m["role"] != "system"]
        message, answered = dialog[-1]["content"], [m["content"] for m in dialog if m["role"] == "assistant"]
        checker = self.hygiene.checker

        def inspect(response: LLMResponse) -> list[Finding]:
            return [] if checker is None else checker.answer(response.text, message, answered, response.finish_reason)

        async def produce(call: Ask, provider: LLMProvider, setting: str, number: int) -> LLMResponse:
            place = TurnPlace("assistant", len(dialog), plan.index, provider.model_name, setting, variant=number)
            # A candidate's regenerations are counted by the monitor; its row records the turns it keeps.
            return await self.hygiene.produce(call, inspect, lambda: None, place, DialogHygiene())

        return produce

    def _axis(self, plan: BranchPlan) -> str:
        """One of preference.axes that applies to the item (unfaithful needs a context, ignores_persona a persona)."""
        chat = plan.chat
        has_context = chat is not None and any(chat.context.values())
        usable = [
            axis
            for axis in self.preference.axes
            if (axis != "unfaithful" or has_context) and (axis != "ignores_persona" or plan.persona is not None)
        ]
        if not usable:
            raise ItemRejected(
                f"none of preference.axes ({', '.join(self.preference.axes)}) applies to item {plan.index}: "
                "'unfaithful' needs a context (documents), 'ignores_persona' a persona; add 'verbose' or 'wrong'",
                cause="no_degrade_axis",
            )
        return plan.branch_rng.choice(usable)

    async def judge_pair(self, plan: BranchPlan, turn: int, history: Row, candidates: list[Candidate]) -> Pair | None:
        """Compare the candidates in both orders; the kept pair (also recorded on the plan), or None when an
        `every` pair is dropped. A dropped pair of last/random rejects the item."""
        unique: dict[str, Candidate] = {}
        for candidate in candidates:
            unique.setdefault(candidate.text.strip(), candidate)
        shown = list(unique.values())
        if len(shown) < 2:
            self.stats.skip("identical")
            self._drop(plan, turn, "pair_identical", "the candidates are identical, so there is nothing to prefer")
            return None
        comparison = await self.judge.compare(history, [c.text for c in shown])
        decision = comparison.decide(self.preference.min_margin)
        if decision.outcome == "kept" and shown[decision.best or 0].source == "degraded":
            decision = PairDecision("degraded_won", decision.best, decision.worst, decision.margin)
        self.stats.record(decision)
        if decision.outcome != "kept":
            why = _WHY[decision.outcome]
            if decision.position_bias:
                why += " (position bias: each order preferred the answer shown in the same place)"
            if decision.margin is not None:
                why += f" (margin {decision.margin})"
            self._drop(plan, turn, f"pair_{decision.outcome}", why)
            return None
        assert decision.best is not None and decision.worst is not None
        scores = comparison.scores
        info: dict[str, Any] = {
            "strategy": self.preference.strategy,
            "turn": turn,
            "candidates": [
                {"source": c.source, "model": c.model, "score": score} for c, score in zip(shown, scores, strict=True)
            ],
            "chosen": decision.best,
            "rejected": decision.worst,
            "chosen_model": shown[decision.best].model,
            "rejected_model": shown[decision.worst].model,
            "margin": decision.margin,
            "judge_model": comparison.judge_model,
            "rationale": list(comparison.rationales),
        }
        axis = next((c.axis for c in shown if c.axis), None)
        if axis is not None:
            info["axis"] = axis
        pair = Pair(turn, shown[decision.best], shown[decision.worst], info)
        plan.pairs.append(pair)
        return pair

    def _drop(self, plan: BranchPlan, turn: int, cause: str, why: str) -> None:
        if self.preference.at_turn != "every":
            raise ItemRejected(f"turn {turn}: {why}; the pair is dropped and another item takes its place", cause=cause)
        plan.dropped.append((turn, cause))
