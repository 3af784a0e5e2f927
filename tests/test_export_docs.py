"""The export documentation's example rows are what export writes (update DOC if the section moves)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from tests.test_export_support import invoke_export, turn, write_jsonl

DOC = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE = re.compile(r"\*\*`(\w+)`\*\*.*?```json\n(.*?)\n```", re.DOTALL)


def test_documented_example_rows_match_the_output(tmp_path: Path) -> None:
    rows = [
        {"conversations": [turn("user", "What is 2+2?"), turn("assistant", "4.", "Add them.")], "final_score": 0.9},
        {"conversations": [turn("user", "What is 2+2?"), turn("assistant", "5.")], "final_score": 0.2},
    ]
    source = write_jsonl(tmp_path / "rows.jsonl", rows)
    examples = dict(EXAMPLE.findall(DOC.read_text()))
    assert set(examples) == {"sharegpt", "messages", "alpaca", "llama_factory", "chatml", "dpo"}
    for fmt, documented in examples.items():
        result = invoke_export(str(source), "-f", fmt, "--system-prompt", "Be brief.", "-q")
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.stdout.splitlines()[0]) == orjson.loads(documented), fmt
