"""The turn hygiene checks one by one: what each catches, and the look-alikes a careful user would not
want caught (a short "Yes.", a quoted phrase, boilerplate greetings, code that mentions role tags)."""

from __future__ import annotations

import pytest

from afterimage_cli.config import HygieneConfig
from afterimage_cli.hygiene import Scaffolding, TurnChecker
from afterimage_cli.hygiene.checks import (
    check_copy,
    check_cut,
    check_echo,
    check_leak,
    check_repeat,
    check_short,
)
from afterimage_cli.hygiene.leaks import scaffolding_templates
from afterimage_cli.hygiene.text import containment, jaccard, shingles

SCAFFOLDING = Scaffolding.of(
    scaffolding_templates("You are a patient, accurate assistant who explains things clearly.")
)
LONG_ANSWER = (
    "Eventual consistency means that replicas may disagree for a while after a write, but if no new writes "
    "arrive they converge to the same value. Systems such as DynamoDB and Cassandra trade immediate agreement "
    "for availability during network partitions, and they repair divergent replicas in the background with "
    "read repair and anti-entropy processes."
)


# --- text similarity -------------------------------------------------------------------------------


def test_similarity_ignores_case_punctuation_and_unicode_forms() -> None:
    assert jaccard("How do B-trees work?", "how do b trees WORK") == 1.0
    assert jaccard("the ﬁle system", "the file system") == 1.0
    assert shingles("Yes.") == shingles("yes") and len(shingles("Yes.")) == 1
    assert jaccard("", "anything") == 0.0 and containment("", "anything") == 0.0
    assert containment("they converge to the same value", LONG_ANSWER) == 1.0
    # One word left out of an eleven-word turn changes three of its nine shingles.
    long, short = (
        "How do I tune the autovacuum settings for a busy table?",
        "How do I tune autovacuum settings for a busy table?",
    )
    assert 0.5 < jaccard(long, short) < 0.8


# --- cut -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["The three steps are: first, open the file and", "Use an index because", "Run:\n```sh\nmake", "It depends on:"],
)
def test_cut_catches_answers_that_stop_mid_sentence(text: str) -> None:
    finding = check_cut(text)
    assert finding is not None and finding.check == "cut" and "mid-sentence" in finding.detail


def test_cut_catches_the_token_limit_whatever_the_text() -> None:
    finding = check_cut("A complete-looking sentence.", "length")
    assert finding is not None and "finish_reason: length" in finding.detail


@pytest.mark.parametrize(
    "text", ["Yes.", "Use a B-tree index.", "What else should I check?", "Done!", "```py\nx=1\n```"]
)
def test_cut_passes_whole_answers(text: str) -> None:
    assert check_cut(text, "stop") is None


# --- short -----------------------------------------------------------------------------------------


def test_short_catches_empty_and_one_character_turns() -> None:
    assert check_short("", 2).detail == "empty"  # type: ignore[union-attr]
    assert check_short("   \n", 0).detail == "empty"  # type: ignore[union-attr]
    finding = check_short(" . ", 2)
    assert finding is not None and "hygiene.min_chars 2" in finding.detail


def test_short_lets_a_legitimately_short_answer_through_when_min_chars_allows() -> None:
    assert check_short("Yes.", 2) is None
    assert check_short("4", 1) is None
    assert check_short("Yes.", 10) is not None  # a stricter min_chars is the user's call


# --- echo ------------------------------------------------------------------------------------------

QUESTION = "Should I use a B-tree index or a hash index for range queries on a timestamp column?"


@pytest.mark.parametrize(
    "answer",
    [
        QUESTION,
        QUESTION.upper().replace("?", "."),
        "should i use a b-tree index or a hash index for range queries on a timestamp column",
    ],
)
def test_echo_catches_an_answer_that_repeats_the_question(answer: str) -> None:
    finding = check_echo(answer, QUESTION, 0.8)
    assert finding is not None and finding.check == "echo"


def test_echo_catches_an_answer_that_is_a_long_stretch_of_the_question() -> None:
    question = "Here is my config. " + LONG_ANSWER + " Why does my read return an old value?"
    assert check_echo(LONG_ANSWER, question, 0.8) is not None


@pytest.mark.parametrize(
    "answer",
    [
        "Use a B-tree index for range queries.",  # reuses the question's words, as short answers do
        "A B-tree index.",
        "Yes.",
        QUESTION + " A B-tree index keeps keys sorted, so a range scan reads consecutive pages; a hash index "
        "scatters neighbouring timestamps across buckets and cannot answer BETWEEN without a full scan.",
    ],
)
def test_echo_passes_answers_that_reuse_the_questions_words(answer: str) -> None:
    assert check_echo(answer, QUESTION, 0.8) is None


# --- copy ------------------------------------------------------------------------------------------


def test_copy_catches_a_user_who_copies_the_last_answer_or_a_stretch_of_it() -> None:
    assert check_copy(LONG_ANSWER, LONG_ANSWER, 0.8) is not None
    stretch = "Systems such as DynamoDB and Cassandra trade immediate agreement for availability during network"
    finding = check_copy(stretch, LONG_ANSWER, 0.8)
    assert finding is not None and finding.check == "copy" and "similarity 1.0" in finding.detail


@pytest.mark.parametrize(
    "question",
    [
        "What do you mean by 'replicas converge to the same value'? How long does that take in practice?",
        "You said DynamoDB trades immediate agreement for availability. Is that configurable per table?",
        "Thanks! And how does read repair decide which replica is right?",
    ],
)
def test_copy_passes_a_user_who_quotes_one_phrase(question: str) -> None:
    assert check_copy(question, LONG_ANSWER, 0.8) is None


# --- repeat ----------------------------------------------------------------------------------------


def test_repeat_catches_a_near_duplicate_of_an_earlier_turn_of_the_same_side() -> None:
    earlier = ["How do I tune the autovacuum settings for a busy table?", "What is a good scale factor?"]
    finding = check_repeat("how do I tune the AUTOVACUUM settings for a busy table? Please.", earlier, 0.8)
    assert finding is not None and finding.check == "repeat" and "turn 1" in finding.detail
    assert check_repeat("How do I tune autovacuum settings for a busy table?", earlier, 0.8) is None
    assert check_repeat("How do I tune autovacuum settings for a busy table?", earlier, 0.5) is not None


def test_repeat_passes_short_repeats_and_shared_boilerplate() -> None:
    assert check_repeat("Yes.", ["Yes.", "No."], 0.8) is None
    assert check_repeat("Thank you!", ["Thank you!"], 0.8) is None
    greeting = "Hello! Great question, happy to help. "
    first = greeting + "An index on the timestamp column lets the planner skip most of the table."
    second = greeting + "Partitioning by month keeps each partition small enough to vacuum quickly."
    assert check_repeat(second, [first], 0.8) is None
    assert check_repeat("Can you give an example?", ["Can you give an example of a B-tree?"], 0.8) is None


# --- leak ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "role", "what"),
    [
        ("<assistant_last_message>\nWhat about hash indexes?", "user", "role tag"),
        ("<|im_start|>user\nTell me more.", "user", "role tag"),
        ("[INST] Explain it again [/INST]", "assistant", "role tag"),
        ("Sure. B-trees keep keys sorted.\nUser: and hash indexes?", "assistant", "speaker label"),
        ("Assistant: B-trees keep keys sorted.", "assistant", "speaker label"),
        ("Good point. [END] Actually, one more thing: what about GiST?", "user", "end token"),
        ("Context:\nB-trees keep keys sorted.", "assistant", "Context:"),
        ("Stay in character and write only your next message to the assistant.", "user", "own words"),
        ("I am a patient, accurate assistant who explains things clearly.", "assistant", "own words"),
        ("As an AI language model, I would like to know about B-trees.", "user", "meta talk"),
        ("Great answer! How can I help you further today?", "user", "meta talk"),
        ("Here is my next question: what about hash indexes?", "user", "meta talk"),
    ],
)
def test_leak_catches_scaffolding(text: str, role: str, what: str) -> None:
    finding = check_leak(text, role, SCAFFOLDING)
    assert finding is not None and finding.check == "leak" and what in finding.detail


@pytest.mark.parametrize(
    ("text", "role"),
    [
        ("In XML you would write `<user><name>Bob</name></user>`.", "assistant"),
        ("ChatML wraps turns like this:\n```\n<|im_start|>user\nhi<|im_end|>\n```", "assistant"),
        ("The server logs requests that a user would send to the server over TLS.", "assistant"),
        ("Context: the index was built last night, so stats are fresh.", "assistant"),
        ("As an AI language model, I cannot browse, but B-trees keep keys sorted.", "assistant"),
        ("How can I help my team adopt this?", "user"),
        ("I'm an engineer on a small team; what should we index first?", "user"),
        ("Which username should the user choose?", "user"),
    ],
)
def test_leak_passes_prose_that_only_looks_like_scaffolding(text: str, role: str) -> None:
    assert check_leak(text, role, SCAFFOLDING) is None


def test_leak_phrases_of_the_users_own_count_wherever_they_appear() -> None:
    scaffolding = Scaffolding.of((), ["ACME internal"])
    assert check_leak("Per the acme   INTERNAL guide, restart it.", "assistant", scaffolding) is not None
    assert check_leak("Per the Acme guide, restart it.", "assistant", scaffolding) is None


# --- the checker -----------------------------------------------------------------------------------


def test_checker_runs_only_the_enabled_checks() -> None:
    checker = TurnChecker.from_config(HygieneConfig(checks={"echo": False, "short": False}))
    assert checker is not None and checker.checks == {"cut", "copy", "repeat", "leak"}
    assert checker.answer(QUESTION, QUESTION, []) == []
    assert TurnChecker.from_config(HygieneConfig(enabled=False)) is None
    all_off = HygieneConfig(checks=dict.fromkeys(["cut", "echo", "copy", "repeat", "leak", "short"], False))
    assert TurnChecker.from_config(all_off) is None


def test_checker_reports_every_failure_of_a_turn_in_a_fixed_order() -> None:
    checker = TurnChecker()
    found = checker.answer("<|im_start|> " + QUESTION + " and", QUESTION, [], "stop")
    assert [f.check for f in found] == ["cut", "leak", "echo"]


def test_checker_over_a_written_row_names_the_failing_turns() -> None:
    opening = "How do I speed up range queries on a timestamp column?"
    turns = [
        {"role": "user", "content": opening},
        {"role": "assistant", "content": "Add a B-tree index on the column; the planner then scans a range."},
        {"role": "user", "content": "Add a B-tree index on the column; the planner then scans a range."},
        {"role": "assistant", "content": "Yes."},
        {"role": "user", "content": opening},
        {"role": "assistant", "content": "It also helps to"},
    ]
    checker = TurnChecker()
    assert checker.conversation(turns) == {"copy": [2], "repeat": [4], "cut": [5]}
    row = {"conversations": turns[:2], "metadata": {"cut_off_turns": [1]}}
    assert checker.row(row) == {"cut": [1]}
    assert checker.row({"conversations": "not a list"}) == {}
