"""afterimage: synthetic multi-turn conversation datasets for fine-tuning LLMs."""

from __future__ import annotations

__version__ = "0.1.0"
