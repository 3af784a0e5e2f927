"""Record writers: JSONL (orjson, one line per record) and parquet (pyarrow, imported only for parquet).

A file is written as ``<name>.partial`` and renamed into place on success, so a failed export never
leaves a truncated file that looks finished.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import orjson

from ..errors import InputError, UsageError
from .rows import Record

STDOUT = "-"
OUTPUT_FORMATS = ("jsonl", "parquet")
_WRITE_BUFFER = 1 << 20
_PARQUET_BATCH_ROWS = 4096


class RecordWriter(Protocol):
    """Writes records of one format to one destination."""

    count: int

    def write(self, record: Record) -> None: ...

    def close(self, *, success: bool) -> None: ...


class JsonlWriter:
    """One orjson line per record."""

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self._write = destination.stream.write
        self.count = 0

    def write(self, record: Record) -> None:
        """Append one record as a line."""
        self._write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self.count += 1

    def close(self, *, success: bool) -> None:
        """Finish the file (rename it into place) or, on failure, remove it."""
        self.destination.close(success=success)


class ParquetWriter:
    """Records buffered into row groups of a fixed schema, so constant memory and no schema guessing."""

    def __init__(self, destination: Destination, schema: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.destination = destination
        self._table_from = pa.Table.from_pylist
        self._schema = schema
        self._width = len(schema.names)
        self._writer = pq.ParquetWriter(destination.stream, schema)
        self._batch: list[Record] = []
        self.count = 0

    def write(self, record: Record) -> None:
        """Buffer one record; a full batch becomes a row group."""
        if len(record) > self._width:  # pyarrow would silently drop the columns the schema lacks
            missing = sorted(set(record) - set(self._schema.names))
            raise InputError(
                f"a row has {', '.join(missing)}, which the first row had not, and Parquet's columns are fixed by "
                "the first row: put a row with tools first, export tool and plain rows separately, or use jsonl"
            )
        self._batch.append(record)
        self.count += 1
        if len(self._batch) >= _PARQUET_BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        """Write the buffered records as a row group."""
        if self._batch:
            self._writer.write_table(self._table_from(self._batch, schema=self._schema))
            self._batch = []

    def close(self, *, success: bool) -> None:
        """Write the footer and finish the file, or remove it on failure."""
        if success:
            self._flush()
            self._writer.close()
        else:
            # Closed here all the same: left open, pyarrow writes its footer into the closed file when collected.
            with contextlib.suppress(Exception):
                self._writer.close()
        self.destination.close(success=success)


class Destination:
    """A binary stream to stdout ('-') or to a file written as `<path>.partial` until it succeeds."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._partial: Path | None = None
        if target == STDOUT:
            self.stream: BinaryIO = sys.stdout.buffer
            return
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Devices and pipes (/dev/stdout, a fifo) cannot be renamed over: write to them directly.
        if path.exists() and not path.is_file():
            self.stream = open(path, "wb")
            return
        self._partial = path.with_name(path.name + ".partial")
        self.stream = open(self._partial, "wb", buffering=_WRITE_BUFFER)

    def close(self, *, success: bool) -> None:
        """Flush stdout, or close the file and rename it into place (success) or delete it."""
        if self.target == STDOUT:
            if success:
                self.stream.flush()
            return
        self.stream.close()
        if self._partial is None:
            return
        if success:
            os.replace(self._partial, self.target)
        else:
            self._partial.unlink(missing_ok=True)


def open_writer(target: str, output_format: str, arrow_schema: Callable[[], Any]) -> RecordWriter:
    """A writer of ``output_format`` ('jsonl' or 'parquet') to a path or '-' (stdout).

    ``arrow_schema`` builds the parquet schema; it is called only for parquet (pyarrow loads only then).
    """
    if output_format == "jsonl":
        return JsonlWriter(Destination(target))
    if target == STDOUT and sys.stdout.isatty():
        raise UsageError("parquet is binary: give -o FILE or redirect stdout to a file")
    return ParquetWriter(Destination(target), arrow_schema())
