"""ConversationGenerator: instruction → respondent prompt modifiers → a multi-turn dialog."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import prompts
from ..engine.served import models_metadata
from ..errors import ItemRejected, ProviderError, RunAborted
from ..hygiene import Finding, TurnChecker
from ..instructions.base import BaseInstructionGeneratorCallback
from ..modifiers.base import BaseRespondentPromptModifierCallback
from ..providers.base import ChatSession, LLMProvider, LLMResponse, Messages
from ..storage.base import Row
from ..types import GeneratedInstructions, GeneratedResponsePrompt
from .base import BaseGenerator, ItemPlan, merge_metadata
from .turn_hygiene import DialogHygiene, TurnFailed, TurnHygiene, TurnPlace


def _is_end(text: str) -> bool:
    """The simulated user ends the dialog with the end token (alone, or closing its message) or silence."""
    stripped = text.strip()
    return not stripped or stripped == prompts.END_TOKEN or stripped.endswith(prompts.END_TOKEN)


def _dialog(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The user messages and the answers that end each turn, without a tool run's calls and results."""
    return [t for t in turns if t["role"] == "user" or (t["role"] == "assistant" and not t.get("tool_calls"))]


def _complete_turns(turns: list[dict[str, Any]]) -> int:
    """User turns answered: a turn joins `turns` only once its answer is made."""
    return sum(1 for t in turns if t["role"] == "user")


class ConversationGenerator(BaseGenerator):
    """Multi-turn dialogs between a simulated user (correspondent) and the respondent."""

    def __init__(
        self,
        *,
        respondent: LLMProvider,
        correspondent: LLMProvider,
        instruction_generator: BaseInstructionGeneratorCallback,
        modifiers: Sequence[BaseRespondentPromptModifierCallback] = (),
        system_prompt: str = "You are a helpful assistant.",
        on_truncated: str = "retry",
        hygiene: TurnHygiene | None = None,
        **engine: Any,
    ) -> None:
        super().__init__(**engine)
        # Without a policy of the run's own (a script building the generator), every check is on.
        self.hygiene = hygiene or TurnHygiene(TurnChecker(), on_truncated=on_truncated, seed=self.seed)
        self.respondent = respondent
        self.correspondent = correspondent
        self.instruction_generator = instruction_generator
        self.modifiers = list(modifiers)
        self.system_prompt = system_prompt

    async def prepare(self, plan: ItemPlan) -> tuple[GeneratedInstructions, str, GeneratedResponsePrompt]:
        """The opening instruction and the respondent's system prompt for one item (with quality.keep_pairs, the
        first attempt's, reused by the later ones)."""
        if plan.opening:
            opening: tuple[GeneratedInstructions, str, GeneratedResponsePrompt] = plan.opening[0]
            return opening
        generated = await self.instruction_generator.agenerate(
            self.system_prompt, rng=plan.rng, persona=plan.persona, item_index=plan.index
        )
        if not generated.instructions:
            name = type(self.instruction_generator).__name__
            raise RunAborted(f"instruction generator {name} returned no instruction for item {plan.index}")
        pick = plan.rng.randrange(len(generated.instructions))
        generated.metadata.setdefault("instruction_index", pick)
        # The modifiers see the opening that will be used (RAG retrieves for it), not every candidate.
        chosen = generated.model_copy(update={"instructions": [generated.instructions[pick]]})
        response_prompt = GeneratedResponsePrompt(prompt=self.system_prompt)
        for modifier in self.modifiers:
            response_prompt = await modifier.amodify(response_prompt, instructions=chosen, persona=plan.persona)
        if plan.opening is not None:
            plan.opening.append((generated, generated.instructions[pick], response_prompt))
        return generated, generated.instructions[pick], response_prompt

    async def _simulate_user(self, plan: ItemPlan, turns: list[dict[str, Any]], record: DialogHygiene) -> LLMResponse:
        """The simulated user's next message; roles are flipped so the simulator speaks as 'assistant'."""
        persona = plan.persona.description if plan.persona else None
        system = prompts.USER_SIMULATOR_SYSTEM.format(persona=prompts.persona_clause(persona))
        flipped: Messages = [{"role": "system", "content": system}]
        # The simulated user sees the dialog as a user does: the messages and answers, not the tool steps.
        flipped += [
            {"role": "assistant" if t["role"] == "user" else "user", "content": t["content"]} for t in _dialog(turns)
        ]
        own = self.correspondent is not self.respondent
        setting = "correspondent.max_tokens" if own else "respondent.max_tokens"
        place = TurnPlace("user", len(turns), plan.index, self.correspondent.model_name, setting)
        asked = [t["content"] for t in turns if t["role"] == "user"]
        checker = self.hygiene.checker

        def inspect(response: LLMResponse) -> list[Finding]:
            text = response.text.strip()
            if checker is None or _is_end(text):  # the end of the dialog is not a turn
                return []
            return checker.question(text, turns[-1]["content"], asked, response.finish_reason)

        return await self.hygiene.produce(
            lambda params: self.correspondent.acomplete(flipped, **params), inspect, lambda: None, place, record
        )

    async def _answer(
        self, chat: ChatSession, message: str, plan: ItemPlan, turns: list[dict[str, Any]], record: DialogHygiene
    ) -> LLMResponse:
        """The respondent's answer to `message`, added to the chat's history."""
        place = TurnPlace("assistant", len(turns) + 1, plan.index, self.respondent.model_name, "respondent.max_tokens")
        answered = [t["content"] for t in _dialog(turns) if t["role"] == "assistant"]
        checker = self.hygiene.checker
        mark = len(chat.history)

        def inspect(response: LLMResponse) -> list[Finding]:
            return [] if checker is None else checker.answer(response.text, message, answered, response.finish_reason)

        def discard() -> None:
            del chat.history[mark:]  # a failed answer asked for again must not stay in the dialog

        return await self.hygiene.produce(
            lambda params: chat.asend_message(message, **params), inspect, discard, place, record
        )

    async def open_chat(
        self, plan: ItemPlan, generated: GeneratedInstructions, response_prompt: GeneratedResponsePrompt
    ) -> ChatSession:
        """The respondent's side of one item's dialog (a preference run's branches its answers)."""
        return await self.respondent.astart_chat(system_prompt=response_prompt.prompt)

    def answer_messages(self, chat: ChatSession, answer: LLMResponse) -> list[dict[str, Any]]:
        """The row messages of the respondent's turn (a tool run's also has its tool calls and results)."""
        return [{"role": "assistant", "content": answer.text, "reasoning_content": answer.reasoning_content}]

    def finish_dialog(self, row: Row, chat: ChatSession) -> Row:
        """The row of a finished dialog, for a subclass to add what its chat recorded (a tool run's tools)."""
        return row

    async def generate_item(self, plan: ItemPlan) -> Row:
        generated, instruction, response_prompt = await self.prepare(plan)
        chat = await self.open_chat(plan, generated, response_prompt)
        turns: list[dict[str, Any]] = []
        record = DialogHygiene()
        user_message = instruction
        ended_by = "max_turns"
        try:
            for turn in range(plan.num_turns):
                answer = await self._answer(chat, user_message, plan, turns, record)
                turns.append({"role": "user", "content": user_message, "reasoning_content": None})
                answered_at = len(turns)
                turns += self.answer_messages(chat, answer)
                if answered_at != len(turns) - 1 and answered_at in record.cut_off:  # the final answer was cut
                    record.cut_off[record.cut_off.index(answered_at)] = len(turns) - 1
                if turn == plan.num_turns - 1:
                    break
                question = await self._simulate_user(plan, turns, record)
                user_message = question.text.strip()
                if _is_end(user_message):
                    ended_by = "end_token"
                    break
        except ProviderError as error:
            # A dialog that outgrew the context window ends at its last complete turn, if it has enough.
            if error.kind != "context_limit":
                raise
            self._end_early(turns, str(error), "context_limit", error)
            ended_by = "context_limit"
        except TurnFailed as failed:
            # A turn no regeneration made clean: the dialog ends at its last good turn, if it has enough.
            self._end_early(turns, str(failed), failed.check, failed)
            ended_by, record.ended_by_check = "hygiene", failed.check
            self.monitor.record_ended_early(failed.check)
        extra: dict[str, Any] = {
            "num_turns": _complete_turns(turns),
            "planned_turns": plan.num_turns,
            "ended_by": ended_by,
            "models": models_metadata(self.respondent, self.correspondent),
        }
        if self.hygiene.checker is not None:
            extra["hygiene"] = record.metadata()
        cut_off = [i for i in record.cut_off if i < len(turns)]
        if cut_off:
            extra["cut_off_turns"] = cut_off
        return self.finish_dialog(self.build_row(plan, generated, response_prompt, turns, extra), chat)

    def _end_early(self, turns: list[dict[str, Any]], why: str, cause: str, error: Exception) -> None:
        """Reject the item when the dialog would end with fewer than min_turns complete turns."""
        complete = _complete_turns(turns)
        if complete < self.min_turns:
            raise ItemRejected(
                f"{why} (after {complete} complete turn(s); generation.min_turns is {self.min_turns})",
                cause=cause,
            ) from error

    @staticmethod
    def build_row(
        plan: ItemPlan,
        generated: GeneratedInstructions,
        response_prompt: GeneratedResponsePrompt,
        turns: list[dict[str, Any]],
        extra_metadata: dict[str, Any],
    ) -> Row:
        """A row in the seed schema from what one item produced."""
        persona = plan.persona
        metadata = merge_metadata(
            {
                "context_id": generated.context_id,
                "context_ids": generated.context_ids,
                "persona_name": persona.description if persona else None,
                "persona_generation_depth": persona.depth if persona else None,
            },
            generated.metadata,
            response_prompt.metadata,
            extra_metadata,
        )
        return {
            "conversations": turns,
            "metadata": metadata,
            "instruction_context": generated.context,
            "response_context": response_prompt.context,
            "persona": persona.description if persona else None,
            "evaluation": None,
            "final_score": None,
        }


AsyncConversationGenerator = ConversationGenerator
