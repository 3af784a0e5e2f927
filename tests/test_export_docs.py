"""The export documentation's example rows are what export writes (update DOC if the section moves)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from tests.test_export_support import PAIR_FORMATS, invoke_export, turn, write_jsonl

DOC = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE = re.compile(r"\*\*`([\w-]+)`\*\*.*?```json\n(.*?)\n```", re.DOTALL)


def test_documented_example_rows_match_the_output(tmp_path: Path) -> None:
    rows = [
        {"conversations": [turn("user", "What is 2+2?"), turn("assistant", "4.", "Add them.")], "final_score": 0.9},
        {"conversations": [turn("user", "What is 2+2?"), turn("assistant", "5.")], "final_score": 0.2},
    ]
    source = write_jsonl(tmp_path / "rows.jsonl", rows)
    # The preference formats' example is the same exchange as a pair: "4." chosen over "5.".
    pair = {**rows[0], "chosen": rows[0]["conversations"][1], "rejected": rows[1]["conversations"][1]}
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [pair])
    examples = dict(EXAMPLE.findall(DOC.read_text()))
    assert set(examples) == {"sharegpt", "messages", "alpaca", "llama_factory", "chatml", *PAIR_FORMATS} - {"orpo"}
    for fmt, documented in examples.items():
        given = pairs if fmt in PAIR_FORMATS else source
        result = invoke_export(str(given), "-f", fmt, "--system-prompt", "Be brief.", "-q")
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.stdout.splitlines()[0]) == orjson.loads(documented), fmt
