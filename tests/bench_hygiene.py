"""CPU per turn of the turn hygiene checks (`make bench`; the issue asks that they stay cheap).

Run it alone with `python -m tests.bench_hygiene [DIALOGS]`; `bench_hygiene(dialogs)` is what `make bench`
calls. Each dialog has three turns a side, checked as generate checks them: every turn against the
dialog so far, with all checks on.
"""

from __future__ import annotations

import random
import sys
import time

from afterimage_cli.hygiene import TurnChecker

VOCABULARY = (
    "index table query planner vacuum page tuple cache latency replica write read lock commit scan range "
    "partition column row bloat statistics memory disk buffer checkpoint wal segment throughput timeout"
).split()


def _text(rng: random.Random, words: int) -> str:
    """A sentence-shaped text of random vocabulary, ending with a full stop."""
    body = " ".join(rng.choice(VOCABULARY) for _ in range(words))
    return body[0].upper() + body[1:] + "."


def dialogs(count: int, seed: int = 0) -> list[list[str]]:
    """`count` dialogs of six turns: questions of ~15 words, answers of ~120."""
    rng = random.Random(seed)
    return [[_text(rng, 15 if i % 2 == 0 else 120) for i in range(6)] for _ in range(count)]


def bench_hygiene(count: int = 2_000) -> float:
    """Microseconds of CPU per checked turn (best of 3 passes over fresh dialogs)."""
    checker = TurnChecker()
    best = float("inf")
    for attempt in range(3):
        batch = dialogs(count, seed=attempt)
        started = time.process_time()
        for turns in batch:
            for i, text in enumerate(turns):
                if i % 2:
                    checker.answer(text, turns[i - 1], turns[1:i:2], "stop")
                elif i:
                    checker.question(text, turns[i - 1], turns[0:i:2], "stop")
        spent = time.process_time() - started
        best = min(best, spent / (count * 5) * 1e6)  # five checked turns a dialog (the opening is not)
    return best


if __name__ == "__main__":
    print(f"{bench_hygiene(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000):.1f} µs CPU per turn")
