"""Natural builders: five public sources -> six candidate pools (HexaInst's natural half).

Public API: :func:`build` (what ``hexainst build natural`` and ``make dataset`` call),
:func:`load_registry` (the source registry, kept as data in ``sources.json`` and
``flan_templates.json`` / ``text_patterns.json``).
"""

from __future__ import annotations

from hexainst.builders.natural.pipeline import LOCK_FILE, REPORT_FILE, build, pool_file
from hexainst.builders.natural.registry import load_registry

__all__ = ["build", "load_registry", "pool_file", "REPORT_FILE", "LOCK_FILE"]
