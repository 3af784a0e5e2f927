"""Judging and measuring conversation datasets: LLM judge, offline metrics, grading, reports.

Nothing here imports an LLM SDK at module import; `--no-judge` never pays for one.
"""

from __future__ import annotations
