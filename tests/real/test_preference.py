"""A preference run on the real small model: candidates written by it, compared by it in both orders through
the server's grammar, exactly N rows of pairs. SmolLM2-135M is a weak judge, so many pairs are dropped (its
two orders often disagree: position bias); the test prints what it measured and checks only what must hold
whatever the judge says: the row count, the pairs' shape, and that every drop is counted."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

from tests.real.support import LlamaServer, afterimage, describe, read_jsonl, rejections, write_yaml

OPENINGS = [
    "What does an index do in SQL?",
    "Why should I cache HTTP responses?",
    "How do I reverse a list in Python?",
    "What is a closure in JavaScript?",
    "Why use a virtual environment in Python?",
    "What is the difference between TCP and UDP?",
]


def test_preference_pairs_from_the_real_model(tmp_path: Path, llama: LlamaServer) -> None:
    config = write_yaml(
        tmp_path / "prefs.yaml",
        {
            "respondent": llama.model_block(max_tokens=160),
            "evaluation": {"judge": llama.model_block(max_tokens=400, temperature=0)},
            "generation": {
                "kind": "preference",
                "num_conversations": 4,
                "min_turns": 1,
                "max_turns": 1,
                "concurrency": 2,
                "seed": 3,
                "on_truncated": "keep",
            },
            "instructions": {"generator": "simple", "options": {"instructions": OPENINGS}},
            "preference": {"strategy": "degrade", "axes": ["verbose", "wrong"], "max_dropped_share": 0.95},
            "storage": {"type": "jsonl", "path": "rows.jsonl"},
            # The 135M judge's structured answers are sometimes cut off by max_tokens (an item rejected as
            # truncated): more often than the default 5 % allows.
            "error_budget": {"max_rejected_share": 0.5},
        },
    )

    run = afterimage("generate", config, "--json", cwd=tmp_path)

    assert run.returncode == 0, describe(run)
    rows = read_jsonl(tmp_path / "rows.jsonl")
    assert len(rows) == 4 and len({r["id"] for r in rows}) == 4
    for row in rows:
        assert row["conversations"][-2]["role"] == "user"
        assert row["chosen"]["content"] != row["rejected"]["content"]
        assert row["conversations"][-1]["content"] == row["chosen"]["content"]
        assert row["metadata"]["preference"]["axis"] in ("verbose", "wrong")
    summary = orjson.loads(run.stdout)
    pairs = summary["preference"]
    dropped = Counter(r["cause"] for r in rejections(tmp_path))
    assert pairs["kept"] == 4 and pairs["judged"] == 4 + sum(
        n for c, n in dropped.items() if c.startswith("pair_") and c != "pair_identical"
    )
    print(
        f"\nreal model: {pairs['judged']} pairs judged, {pairs['kept']} kept, agreement rate "
        f"{pairs['agreement_rate']}, position bias rate {pairs['position_bias_rate']}, ties {pairs['ties']}, "
        f"below min_margin {pairs['below_min_margin']}, dropped by cause {dict(dropped)}, {summary['calls']} calls"
    )
