"""The release stage: candidate pools (+ validation outcomes) -> the balanced release and its reserve.

Public API: :func:`run` (config in, result out): what ``hexainst build release``, the whole build
and a top-up call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexainst.builders.release.config import ReleaseConfig
from hexainst.builders.release.make import make_release, write_report
from hexainst.builders.release.select import ReleaseError, select_cell
from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import read_json
from hexainst.kernel.output_lock import writer_lock
from hexainst.kernel.outputs import claim_output_file
from hexainst.kernel.release import GENERATIONS_FILE
from hexainst.kernel.settings import SettingError

__all__ = ["ReleaseError", "ReleaseConfig", "ReleaseResult", "run", "select_cell"]


@dataclass(frozen=True)
class ReleaseResult:
    """What the release stage wrote: the release folder, its report, and the generations it kept.

    ``kept_generations``: answers in the ``generations/`` an earlier release in the folder shipped,
    kept as they were (a release built from pools alone brings none of its own); ``None`` when
    there were none, or when ``config.generations`` replaced them.
    """

    out_dir: Path
    report: dict[str, Any]
    kept_generations: int | None


def run(config: ReleaseConfig) -> ReleaseResult:
    """Make ``config.pools`` into the release in ``config.out_dir`` (and the report into ``config.report_file``).

    Holds the writer's lock on ``config.out_dir`` (:mod:`hexainst.kernel.output_lock`) while it works.
    """
    if config.out_dir is None:
        raise SettingError("out_dir", "must name the release folder to write")
    out = Path(config.out_dir)
    if not config.pools:
        raise SettingError("pools", "must name at least one pools folder")
    with writer_lock(out, what="release folder"):
        if config.report_file is not None:
            _claim_report_file(Path(config.report_file), [Path(p) for p in config.pools], out)
        shipped = out / GENERATIONS_FILE
        kept = shipped.is_file() and config.generations is None
        report = make_release(list(config.pools), out, validation=config.validation_file, config=config,
                          sources_dir=str(config.sources_dir) if config.sources_dir is not None else None,
                          generations=config.generations, previous=config.previous,
                          reserve_sizes=config.reserve_sizes, topup=config.topup)
        if config.report_file is not None:
            write_report(report, Path(config.report_file))
        return ReleaseResult(out_dir=out, report=report, kept_generations=_count_lines(shipped) if kept else None)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _claim_report_file(report: Path, pools: list[Path], out: Path) -> None:
    """Before any work: the report file must be new or an earlier release report, outside the inputs and the release."""

    def is_release_report(file: Path) -> bool:
        try:
            earlier = read_json(file, what="assembly report")
        except UserError:
            return False
        return isinstance(earlier, dict) and "cells" in earlier and "seed" in earlier

    claim_output_file(report, is_own=is_release_report, own="an earlier assembly report", option="report_file",
                      inputs=[("a --pools folder", p) for p in pools] + [("the --out release", out)])
