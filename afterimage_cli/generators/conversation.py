"""ConversationGenerator: instruction → respondent prompt modifiers → a multi-turn dialog."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import prompts
from ..engine.served import models_metadata
from ..errors import RunAborted
from ..instructions.base import BaseInstructionGeneratorCallback
from ..modifiers.base import BaseRespondentPromptModifierCallback
from ..providers.base import LLMProvider, Messages
from ..storage.base import Row
from ..types import GeneratedInstructions, GeneratedResponsePrompt
from .base import BaseGenerator, ItemPlan, merge_metadata


def _is_end(text: str) -> bool:
    """The simulated user ends the dialog with the end token (alone, or closing its message) or silence."""
    stripped = text.strip()
    return not stripped or stripped == prompts.END_TOKEN or stripped.endswith(prompts.END_TOKEN)


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
        **engine: Any,
    ) -> None:
        super().__init__(**engine)
        self.respondent = respondent
        self.correspondent = correspondent
        self.instruction_generator = instruction_generator
        self.modifiers = list(modifiers)
        self.system_prompt = system_prompt

    async def prepare(self, plan: ItemPlan) -> tuple[GeneratedInstructions, str, GeneratedResponsePrompt]:
        """The opening instruction and the respondent's system prompt for one item."""
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
        return generated, generated.instructions[pick], response_prompt

    async def _simulate_user(self, plan: ItemPlan, turns: list[dict[str, Any]]) -> str:
        """The simulated user's next message; roles are flipped so the simulator speaks as 'assistant'."""
        persona = plan.persona.description if plan.persona else None
        system = prompts.USER_SIMULATOR_SYSTEM.format(persona=prompts.persona_clause(persona))
        flipped: Messages = [{"role": "system", "content": system}]
        flipped += [{"role": "assistant" if t["role"] == "user" else "user", "content": t["content"]} for t in turns]
        response = await self.correspondent.acomplete(flipped)
        return response.text

    async def generate_item(self, plan: ItemPlan) -> Row:
        generated, instruction, response_prompt = await self.prepare(plan)
        chat = await self.respondent.astart_chat(system_prompt=response_prompt.prompt)
        turns: list[dict[str, Any]] = []
        user_message = instruction
        for turn in range(plan.num_turns):
            answer = await chat.asend_message(user_message)
            turns.append({"role": "user", "content": user_message, "reasoning_content": None})
            turns.append({"role": "assistant", "content": answer.text, "reasoning_content": answer.reasoning_content})
            if turn == plan.num_turns - 1:
                break
            user_message = (await self._simulate_user(plan, turns)).strip()
            if _is_end(user_message):
                break
        return self.build_row(
            plan,
            generated,
            response_prompt,
            turns,
            {
                "num_turns": len(turns) // 2,
                "planned_turns": plan.num_turns,
                "models": models_metadata(self.respondent, self.correspondent),
            },
        )

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
