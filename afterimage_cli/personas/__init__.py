"""Personas: generated from the documents as a tree (`tree`), or read from and saved to files (`store`)."""

from __future__ import annotations

from .store import load_personas, save_personas
from .tree import PersonaTree, PersonaTreeBuilder

__all__ = ["PersonaTree", "PersonaTreeBuilder", "load_personas", "save_personas"]
