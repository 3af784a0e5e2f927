"""Turn hygiene: cheap checks of every turn (cut, echo, copy, repeat, leak, short) that generate runs as
it writes, evaluate reports on any file, and export --drop-unclean filters by."""

from __future__ import annotations

from .checks import CHECKS, Finding, TurnChecker
from .leaks import Scaffolding

__all__ = ["CHECKS", "Finding", "Scaffolding", "TurnChecker"]
