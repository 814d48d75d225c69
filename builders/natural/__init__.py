"""Natural builders: five public sources -> six candidate pools (HexaInst's natural half).

Public API: :func:`run` (config in, result out: what ``hexainst build natural`` and the whole
build call), :func:`load_registry` (the source registry, kept as data in ``sources.json`` and
``flan_templates.json`` / ``text_patterns.json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexainst.builders.natural.config import NaturalConfig
from hexainst.builders.natural.pipeline import LOCK_FILE, REPORT_FILE, build, pool_file
from hexainst.builders.natural.registry import load_registry
from hexainst.kernel.output_lock import writer_lock
from hexainst.kernel.settings import SettingError

__all__ = ["LOCK_FILE", "REPORT_FILE", "NaturalConfig", "NaturalResult", "load_registry", "pool_file", "run"]


@dataclass(frozen=True)
class NaturalResult:
    """What a natural build wrote: the pools folder and its report (``natural-report.json``)."""

    out_dir: Path
    report: dict[str, Any]

    @property
    def missing_sources(self) -> list[str]:
        """Sources the mirror or the Hub did not have."""
        return sorted(name for name, src in self.report["sources"].items() if src.get("status") == "missing")


def run(config: NaturalConfig) -> NaturalResult:
    """Build the six natural candidate pools into ``config.out_dir``, holding its writer's lock
    (:mod:`hexainst.kernel.output_lock`) while it works."""
    if config.out_dir is None:
        raise SettingError("out_dir", "must name the pools folder to write")
    registry = load_registry(Path(config.registry_file)) if config.registry_file is not None else None
    with writer_lock(config.out_dir, what="pools folder"):
        report = build(Path(config.out_dir), sources_dir=config.sources_dir, lock_file=config.lock_file,
                       seed=config.seed, progress=config.progress, registry=registry)
    return NaturalResult(out_dir=Path(config.out_dir), report=report)
