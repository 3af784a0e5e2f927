"""A deterministic stand-in for a model: no network, no key. It powers the demo and pipeline tests.

It is not a language model. It writes questions and extractive answers from the prompt and any
context it is given, and fills structured-output schemas with values taken from the prompt. Offered tools,
it calls the one whose name and description best match the user's last message, with arguments that fit
its parameters schema, and answers a turn of tool results by reporting them.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

import orjson

from .. import prompts
from .base import TOOL_CALLS, BaseProvider, LLMResponse, Messages, StructuredLLMResponse, ToolCall
from .structured import Schema, json_schema_of, parse_structured
from .tool_calls import forced_name, function_of, synthetic_id, tool_options

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'-]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_PARAGRAPH = re.compile(r"\n\s*\n")
_TERM = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_CLAUSE = re.compile(r"[,;:!?()]|\.(?:\s|$)|\n")
_STOP = frozenset(
    "about above after again against also among because been before being below between both could "
    "does doing during each every from further have having here into itself just more most other "
    "over same should some such than that their them then there these they this those through under "
    "until very what when where which while whom with would your yours you the and for are but not "
    "can will how why who its our out use used using many much make made like tell know ask "
    "whose only must later longer often rarely almost already without".split()
)
_QUESTION_FORMS = (
    "What is {x}?",
    "How does {x} work?",
    "Can you explain {x} in simple terms?",
    "Why does {x} matter?",
    "What should I know about {x}?",
)
_FOLLOW_UPS = (
    "Could you give an example of {x}?",
    "How does {x} compare with the alternatives?",
    "What are common mistakes with {x}?",
    "Can you go deeper into {x}?",
)


_PERSONA_ROLES = (
    "student",
    "backend developer",
    "data engineer",
    "site reliability engineer",
    "security analyst",
    "engineering manager",
    "technical writer",
    "startup founder",
    "QA engineer",
    "researcher",
)
_PERSONA_LEVELS = ("junior", "senior", "self-taught", "curious", "busy", "detail-oriented")
_PERSONA_GOALS = (
    "wants to understand",
    "is debugging a problem with",
    "is evaluating",
    "has to teach colleagues about",
    "needs a quick refresher on",
)


def _persona_lines(source: str, rng: random.Random, count: int = 40) -> list[str]:
    """Persona descriptions (role, level, goal) about the keywords of the prompt's context."""
    text = (_split_context(source)[1] or source).lower()
    # Words the material repeats are its topics; one-off words are too often adjectives or verbs.
    words = [w for w in _keywords(text) if len(w) > 5 and text.count(w) > 1] or ["this topic"]
    lines = []
    for _ in range(count):
        level, role = rng.choice(_PERSONA_LEVELS), rng.choice(_PERSONA_ROLES)
        lines.append(f"A {level} {role} who {rng.choice(_PERSONA_GOALS)} {rng.choice(words)}.")
    return lines


def _tokens(text: str) -> int:
    return len(text) // 4 + 1


def _keywords(text: str) -> list[str]:
    """Content words in order of first appearance."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text):
        low = word.lower()
        if len(low) > 3 and low not in _STOP:
            seen.setdefault(low, None)
    return list(seen)


def _sentences(text: str) -> list[str]:
    """Sentences of four words or more; paragraphs are split first, so a heading never joins a sentence."""
    paragraphs = (" ".join(p.split()) for p in _PARAGRAPH.split(text))
    return [s.strip() for p in paragraphs for s in _SENTENCE.split(p) if len(s.split()) >= 4]


def _is_term(word: str) -> bool:
    """Technical identifiers: inner capitals (ETag), digits (X25519), or joiners (max-age, __slots__)."""
    if len(word) < 2 or not any(c.isalpha() for c in word) or not _TERM.fullmatch(word):
        return False
    return any(c.isdigit() or c in "-_" for c in word) or any(c.isupper() for c in word[1:])


def _phrases(text: str) -> list[str]:
    """Candidate subjects in order of first appearance: the start (up to two words) of each run of adjacent
    content words, where noun phrases usually sit, and every technical term on its own."""
    found: dict[str, None] = {}
    for clause in _CLAUSE.split(text):
        run: list[str] = []
        for token in clause.split() + [""]:
            word = token.strip("\"'`*()[]")
            if word and (_is_term(word) or (len(word) > 3 and word.lower() not in _STOP and word.isalpha())):
                run.append(word)
                if _is_term(word):
                    found.setdefault(word, None)
                continue
            if len(run) > 1 and run[0].endswith("s") and not run[0].endswith("ss"):
                run = run[1:]  # "saves bandwidth": a leading verb, most likely
            if len(run) > 1 or (run and _is_term(run[0])):
                found.setdefault(" ".join(run[:2]), None)
            run = []
    # Single ordinary words are too often verbs or adjectives: used only when nothing better exists.
    return list(found) or [w for w in _keywords(text) if w.isalpha()]


def _split_context(text: str) -> tuple[str, str]:
    """(instructions, context) of a prompt that may carry a 'Context:' block."""
    head, sep, context = text.partition(prompts.CONTEXT_HEADER)
    return head, context.strip() if sep else ""


class OfflineProvider(BaseProvider):
    """Deterministic questions and extractive answers; honours structured-output schemas."""

    def __init__(self, model: str = "offline", **_: Any) -> None:
        self.model_name = model

    def _rng(self, messages: Messages, seed: Any = None) -> random.Random:
        """Seeded by the request: the same messages get the same answer, unless a `seed` asks for another."""
        digest = hashlib.sha256(orjson.dumps(messages if seed is None else [messages, seed])).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def _question(self, source: str, rng: random.Random, forms: tuple[str, ...] = _QUESTION_FORMS) -> str:
        phrases = _phrases(source)
        if not phrases:
            return "Can you help me understand this topic?"
        phrase = rng.choice(phrases)
        # Lower-case ordinary words ("Sparse vectors" → "sparse vectors"), keep terms as written (ETag, TLS).
        phrase = " ".join(w if _is_term(w) else w.lower() for w in phrase.split())
        return rng.choice(forms).format(x=phrase)

    def _answer(self, question: str, context: str, rng: random.Random, said: str = "", fresh: bool = False) -> str:
        """The two context sentences that best match the question, leaving out those the dialog's earlier
        answers (`said`) already gave (with none left, an overview of the question); a `fresh` sample (a
        request with a seed) takes two of the best four."""
        wanted = set(_keywords(question))
        candidates = [s for s in _sentences(context) if s not in said]
        if candidates:
            ranked = sorted(candidates, key=lambda s: -len(wanted & set(_keywords(s))))
            return " ".join(rng.sample(ranked[:4], min(2, len(ranked))) if fresh else ranked[:2])
        topic = ", ".join(list(wanted)[:3]) or "your question"
        return (
            f"Here is a short overview of {topic}. The key idea is to start from the basics, "
            f"check each assumption, and build up step by step. {question.rstrip('?')} depends on the "
            "situation, so consider your goals and constraints first."
        )

    def _text_for(self, messages: Messages, seed: Any = None) -> str:
        if messages and messages[-1].get("role") == "tool":
            return _report(messages)
        rng = self._rng(messages, seed)
        system = next((m["content"] for m in messages if m["role"] == "system"), "") or ""
        last = str(messages[-1]["content"]) if messages else ""
        _, system_context = _split_context(system)
        if prompts.SIMULATOR_MARKER in system.lower():
            answers = [str(m["content"]) for m in messages if m["role"] == "user"]
            if len(answers) >= 2 and answers[-1] == answers[-2]:
                return prompts.END_TOKEN
            return self._question(answers[-1] if answers else system, rng, _FOLLOW_UPS)
        if prompts.INSTRUCTION_MARKER in last and prompts.TOOLS_REQUEST_MARKER in last:
            request = _tool_request(last)
            if request:
                return request
        if prompts.INSTRUCTION_MARKER in last:
            instructions, context = _split_context(last)
            topic = instructions.split(":", 1)[-1].split("\n", 1)[0]
            return self._question(context or topic, rng)
        said = " ".join(str(m["content"]) for m in messages if m["role"] == "assistant")
        return self._answer(last, system_context or _split_context(last)[1], rng, said, fresh=seed is not None)

    def _respond(self, messages: Messages, text: str) -> LLMResponse:
        prompt_tokens = sum(_tokens(str(m.get("content") or "")) for m in messages)
        completion_tokens = _tokens(text)
        return LLMResponse(
            text=text,
            prompt_token_count=prompt_tokens,
            completion_token_count=completion_tokens,
            total_token_count=prompt_tokens + completion_tokens,
            finish_reason="stop",
            model_name=self.model_name,
            raw_response=None,
            cost=0.0,
        )

    async def acomplete(self, messages: Messages, **kwargs: Any) -> LLMResponse:
        tools, tool_choice, rest = tool_options(kwargs)
        calls = self._tool_calls(messages, tools, tool_choice) if tools else None
        if calls:
            response = self._respond(messages, "".join(call.arguments for call in calls))
            return response.model_copy(update={"text": "", "tool_calls": calls, "finish_reason": TOOL_CALLS})
        return self._respond(messages, self._text_for(messages, rest.get("seed")))

    def _tool_calls(self, messages: Messages, tools: list[dict[str, Any]], tool_choice: Any) -> list[ToolCall] | None:
        """One call when the user spoke last (or the choice requires one): the tool the choice names, else the
        best match for the user's words, its arguments filled from its schema with phrases of that message."""
        last = messages[-1] if messages else {}
        wanted = last.get("role") == "user" or tool_choice == "required" or forced_name(tool_choice) is not None
        if tool_choice == "none" or not wanted:
            return None
        functions = [function_of(tool) for tool in tools]
        user = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
        rng = self._rng(messages)
        named = forced_name(tool_choice)
        function = next((f for f in functions if f["name"] == named), None) or _best_tool(functions, user, rng)
        schema = function["parameters"]
        phrases = _phrases(user) or [user.strip() or function["name"]]
        arguments = orjson.dumps(_Filler(schema, phrases, rng).fill(schema)).decode()
        call_id = synthetic_id(messages, function["name"], arguments)
        return [ToolCall(id=call_id, name=function["name"], arguments=arguments)]

    async def acomplete_structured(self, messages: Messages, schema: Schema, **kwargs: Any) -> StructuredLLMResponse:
        source = " ".join(str(m.get("content") or "") for m in messages)
        schema_dict = json_schema_of(schema)
        rng = self._rng(messages)
        if prompts.PERSONA_MARKER in source:
            sentences = _persona_lines(source, rng)
        elif prompts.TOOL_SIMULATOR_MARKER in source:
            sentences = _tool_result_lines(str(messages[-1].get("content") or ""))
        else:
            sentences = _sentences(source) or [source]
        value = _Filler(schema_dict, sentences, rng).fill(schema_dict)
        text = orjson.dumps(value).decode()
        plain = self._respond(messages, text)
        return StructuredLLMResponse(**plain.model_dump(), parsed=parse_structured(text, schema))


def _tool_request(prompt: str) -> str:
    """A user's request for the tools the `tools` generator's prompt targets, from their descriptions ("about:
    book_hotel (Book a room…), then get_weather (The weather…)" → "Please book a room…, and then I need the
    weather…"); empty when the prompt is not shaped so (a user's own prompt)."""
    line = prompt.split("about:", 1)[-1].split("\n", 1)[0] if "about:" in prompt else ""
    wants = []
    for description in _TARGET.findall(line):
        description = description.strip().rstrip(".")
        if not description or description == "no description":
            continue
        lowered = description[0].lower() + description[1:]
        first = description.split()[0]
        noun = first in ("The", "A", "An") or (first.endswith("s") and not first.endswith("ss"))  # "Flights from…"
        wants.append(f"I need {lowered}" if noun else f"please {lowered}")
    if not wants:
        return ""
    text = ", and then ".join(wants)
    return text[0].upper() + text[1:] + "."


def _example(node: dict[str, Any]) -> str | None:
    """The value a string's schema suggests: its first `examples` entry, an "e.g. X" in its description, or a
    date for a date."""
    examples = node.get("examples")
    if isinstance(examples, list) and examples and isinstance(examples[0], str):
        return examples[0]
    found = _EXAMPLE.search(str(node.get("description") or ""))
    if found:
        return found.group(1).strip().rstrip(".")
    if node.get("format") == "date" or "YYYY-MM-DD" in str(node.get("description") or ""):
        return "2026-06-01"
    return None


def _tool_result_lines(request: str) -> list[str]:
    """What a simulated tool's result says, from the call the simulator is shown (`Tool: …`, `Arguments: {…}`),
    never from its instructions: "book_hotel done: city Paris, nights 3"."""
    name = re.search(r"^Tool: (.+)$", request, re.M)
    found = re.search(r"^Arguments: (.+)$", request, re.M)
    try:
        arguments = orjson.loads(found.group(1)) if found else {}
    except orjson.JSONDecodeError:
        arguments = {}
    pairs = [f"{key} {value}" for key, value in arguments.items()] if isinstance(arguments, dict) else []
    tool = name.group(1).strip() if name else "the tool"
    return [f"{tool} done: {', '.join(pairs)}" if pairs else f"{tool} done", *pairs]


def _best_tool(functions: list[dict[str, Any]], text: str, rng: random.Random) -> dict[str, Any]:
    """The function whose name (counted twice) and description share the most words with `text`; ties (no
    overlap at all included) are drawn by `rng`, so different requests spread over the tools."""
    words = set(_keywords(text)) | {w.lower() for w in _WORD.findall(text)}

    def score(function: dict[str, Any]) -> int:
        name_words = {w.lower() for w in re.split(r"[_\-\s]+|(?<=[a-z])(?=[A-Z])", function["name"])}
        return 2 * len(words & name_words) + len(words & set(_keywords(function["description"])))

    best = max(score(f) for f in functions)
    return rng.choice([f for f in functions if score(f) == best])


def _report(messages: Messages) -> str:
    """An answer reporting the tool results that end the dialog."""
    results = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.append(f"{message.get('name') or 'the tool'} returned {str(message.get('content') or '').strip()}")
    return "Here is what I found: " + "; ".join(reversed(results)) + "."


_TARGET = re.compile(r"[\w.-]+ \(([^()]*)\)")
_EXAMPLE = re.compile(r"\be\.g\.,? *([^,;()]+)")


class _Filler:
    """Builds a value that satisfies a JSON Schema, with strings drawn from the prompt's sentences."""

    def __init__(self, root: dict[str, Any], sentences: list[str], rng: random.Random) -> None:
        self.root = root
        self.sentences = sentences
        self.rng = rng

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target[part]
            return self._resolve(target)
        return node

    def fill(self, node: dict[str, Any], name: str = "") -> Any:
        node = self._resolve(node)
        if "const" in node:
            return node["const"]
        if node.get("enum"):
            return self.rng.choice(node["enum"])
        for key in ("anyOf", "oneOf", "allOf"):
            if node.get(key):
                options = [o for o in node[key] if self._resolve(o).get("type") != "null"] or node[key]
                return self.fill(options[0], name)
        kind = node.get("type", "object" if "properties" in node else "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object":
            props = node.get("properties", {})
            return {key: self.fill(sub, key) for key, sub in props.items()}
        if kind == "array":
            low = max(1, int(node.get("minItems", 1)))
            high = max(low, min(int(node.get("maxItems", 3)), low + 2))
            return [self.fill(node.get("items", {}), name) for _ in range(self.rng.randint(low, high))]
        if kind == "integer":
            return max(int(node.get("minimum", 0)), min(int(node.get("maximum", 10)), self.rng.randint(1, 10)))
        if kind == "number":
            lowest, highest = float(node.get("minimum", 0.0)), float(node.get("maximum", 1.0))
            return round(self.rng.uniform(lowest, highest), 3)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        text = _example(node) or self.rng.choice(self.sentences).strip()
        limit = node.get("maxLength")
        text = text[: int(limit)] if limit else text
        return text if len(text) >= int(node.get("minLength", 0)) else text.ljust(int(node["minLength"]), ".")
