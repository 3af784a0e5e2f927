"""`persona`: persona × context — the item's persona asks about coverage-sampled document chunks."""

from __future__ import annotations

from .. import prompts
from .contextual import ContextualInstructionGenerator

PERSONA_PROMPT = (
    prompts.INSTRUCTION_MARKER + " that the person described below would send to an AI assistant about the "
    "material below.{persona}\nWrite in their voice, at their level of expertise, and ask one specific question "
    "that the material answers, without mentioning 'the text' or 'the passage'. Reply with the message only."
)


class PersonaInstructionGenerator(ContextualInstructionGenerator):
    """Like `contextual` (same options and coverage), but the question is written as the item's persona."""

    name = "persona"
    default_prompt = PERSONA_PROMPT
    default_use_persona = True
