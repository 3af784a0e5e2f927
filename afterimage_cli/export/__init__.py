"""Export rows to the formats trainers read: a reader, a filter, a split, one module per format, writers.

Rows stream through in constant memory (the preference formats write each row's pairs as it comes); nothing
here imports an LLM SDK, and pyarrow is imported only for parquet.
"""

from __future__ import annotations

from .filters import make_row_filter
from .formats import FORMATS, ExportFormat, ExportOptions, get_format
from .outputs import OutputPlan, plan_outputs
from .pipeline import ExportStats, run_export
from .reader import RowReader, open_rows
from .split import Splitter

__all__ = [
    "FORMATS",
    "ExportFormat",
    "ExportOptions",
    "ExportStats",
    "OutputPlan",
    "RowReader",
    "Splitter",
    "get_format",
    "make_row_filter",
    "open_rows",
    "plan_outputs",
    "run_export",
]
