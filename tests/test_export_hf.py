"""`export --format hf -o DIR`: Parquet shards that `datasets.load_dataset(DIR)` loads, and a README.md card
whose YAML front matter the Hub reads and whose body says how the data was made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest
import yaml
from huggingface_hub import DatasetCard, DatasetCardData

from tests.test_export_support import invoke_export  # also makes `datasets` stay offline
from tests.view_helpers import evaluated_row, sample_rows, write_jsonl

HUB_SIZE_CATEGORIES = {"n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "n>100M"}


def export_hf(tmp_path: Path, *extra: str, rows: list[dict[str, Any]] | None = None) -> Path:
    source = write_jsonl(tmp_path / "run.jsonl", rows if rows is not None else sample_rows(30))
    out = tmp_path / "my-dataset"
    result = invoke_export(str(source), "--format", "hf", "-o", str(out), *extra)
    assert result.exit_code == 0, result.output
    return out


def load(folder: Path, tmp_path: Path) -> datasets.DatasetDict:
    return datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf-cache"))


def front_matter(folder: Path) -> tuple[dict[str, Any], str]:
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


def test_the_folder_loads_with_datasets_in_train_and_test_shards(tmp_path: Path) -> None:
    rows = sample_rows(30)
    folder = export_hf(tmp_path, "--split", "0.7", "--shard-rows", "7", rows=rows)
    shards = sorted(p.name for p in (folder / "data").iterdir())
    train = [name for name in shards if name.startswith("train-")]
    assert train == [f"train-{i:05d}-of-{len(train):05d}.parquet" for i in range(len(train))]
    assert len(train) >= 2 and all(pq.read_metadata(folder / "data" / name).num_rows <= 7 for name in train)
    loaded = load(folder, tmp_path)
    assert sorted(loaded) == ["test", "train"]
    assert loaded["train"].column_names == ["messages"]
    assert loaded["train"].num_rows + loaded["test"].num_rows == 30
    by_first = {r["conversations"][0]["content"]: r for r in rows}
    for record in [*loaded["train"], *loaded["test"]]:
        source = by_first[record["messages"][0]["content"]]
        assert record["messages"] == [{"role": t["role"], "content": t["content"]} for t in source["conversations"]]


def test_the_card_has_the_hubs_front_matter_and_says_how_the_data_was_made(tmp_path: Path) -> None:
    folder = export_hf(tmp_path, "--split", "0.8", "--license", "apache-2.0", "--language", "en", "--language", "de")
    header, body = front_matter(folder)
    assert list(header) == [
        "configs",
        "license",
        "language",
        "task_categories",
        "size_categories",
        "tags",
        "pretty_name",
    ]
    assert header["configs"] == [
        {
            "config_name": "default",
            "data_files": [{"split": "train", "path": "data/train-*"}, {"split": "test", "path": "data/test-*"}],
        }
    ]
    assert header["license"] == "apache-2.0" and header["language"] == ["en", "de"]
    assert header["task_categories"] == ["text-generation"]
    assert header["size_categories"] == ["n<1K"] and set(header["size_categories"]) <= HUB_SIZE_CATEGORIES
    assert header["tags"] == ["synthetic", "afterimage"]
    # huggingface_hub's own card parser reads the same fields back
    card = DatasetCard.load(folder / "README.md")
    assert isinstance(card.data, DatasetCardData)
    assert card.data.license == "apache-2.0" and card.data.tags == ["synthetic", "afterimage"]
    assert card.data.configs == header["configs"]
    for fact in (
        "Respondent (answers): `openai/gpt-4o-mini` (30 rows)",
        "Judge: `openai/gpt-4o` (30 rows)",
        "Grounding: questions written from 12 document chunks of 4 documents",
        "Personas: 3 distinct simulated users",
        "User turns per conversation: mean 2.0",
        "30 of 30 rows judged",
        "| perfect | 6 |",
        "| helpfulness |",
        "$0.0465",  # the rows' cost: 0.0001 × (1 + … + 30)
        "split 80% train / 20% test",
    ):
        assert fact in body, fact
    assert str(tmp_path) not in (folder / "README.md").read_text()  # no absolute path
    assert "Exported from `run.jsonl`" in body


def test_a_preference_layout_and_the_filters_are_said_in_the_card(tmp_path: Path) -> None:
    rows = [evaluated_row(i) for i in range(10)]
    for index, row in enumerate(rows):  # preference rows: the last answer chosen over a vague one
        row["chosen"] = row["conversations"][-1]
        row["rejected"] = {"role": "assistant", "content": f"A vague answer {index}.", "reasoning_content": None}
    folder = export_hf(tmp_path, "--layout", "dpo", "--min-grade", "bad", rows=rows)
    loaded = load(folder, tmp_path)
    assert list(loaded) == ["train"]
    assert loaded["train"].column_names == ["prompt", "chosen", "rejected"]
    assert loaded["train"].num_rows == 8  # rows 4 and 9 are graded not_acceptable: filtered out
    _, body = front_matter(folder)
    assert "## Layout: `dpo`" in body and "kept rows graded `bad` or better" in body


def test_exporting_again_replaces_the_shards_and_a_failed_export_keeps_them(tmp_path: Path) -> None:
    folder = export_hf(tmp_path, "--shard-rows", "5")
    assert len(list((folder / "data").glob("train-*.parquet"))) == 6
    export_hf(tmp_path, "--shard-rows", "100")
    assert sorted(p.name for p in (folder / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes((tmp_path / "run.jsonl").read_bytes() + b'{"conversations": 3}\n')
    result = invoke_export(str(bad), "--format", "hf", "-o", str(folder), "--shard-rows", "4")
    assert result.exit_code == 1 and "bad.jsonl:31: conversations" in result.output
    assert sorted(p.name for p in (folder / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    assert load(folder, tmp_path)["train"].num_rows == 30


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "hf"], "--format hf writes a dataset folder: give -o DIR"),
        (["-f", "hf", "-f", "sharegpt", "-o", "OUT"], "give it alone"),
        (["-f", "hf", "-o", "OUT", "--output-format", "jsonl"], "give it alone"),
        (["-f", "sharegpt", "-o", "OUT", "--layout", "dpo"], "--layout chooses the rows of a --format hf folder"),
        (["-f", "hf", "-o", "OUT", "--layout", "parquet"], "unknown --format 'parquet'"),
        (["-f", "hf", "-o", "FILE"], "is a file; --format hf writes a folder"),
    ],
)
def test_hf_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    source = write_jsonl(tmp_path / "run.jsonl", sample_rows(3))
    (tmp_path / "file").write_text("x")
    args = [{"OUT": str(tmp_path / "out"), "FILE": str(tmp_path / "file")}.get(a, a) for a in args]
    result = invoke_export(str(source), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_failed_parquet_file_closes_pyarrows_writer_and_leaves_nothing(tmp_path: Path) -> None:
    # Left open, pyarrow's writer wrote its footer into the closed file when collected ("write to closed file").
    import pyarrow as pa

    from afterimage_cli.export.writer import Destination, ParquetWriter

    writer = ParquetWriter(Destination(str(tmp_path / "part.parquet")), pa.schema([pa.field("text", pa.string())]))
    writer.write({"text": "a row"})
    writer.close(success=False)
    assert not writer._writer.is_open
    assert list(tmp_path.iterdir()) == []
