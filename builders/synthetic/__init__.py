"""The synthetic builder: instructions generated through any OpenAI-compatible endpoint.

Public API (what ``hexainst build synthetic``, ``build all`` and ``build topup`` call):

* :func:`run` ``(config) -> SyntheticResult``: the stage's entry point, config in (``config.out_dir``
  the pools folder), result out.
* :class:`SyntheticConfig`: every setting and its default.
* :func:`export_generations` / :func:`import_generations`: the raw generations a build used, as
  one deterministic JSON Lines file, and back into a request cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexainst.builders.synthetic.config import SyntheticConfig
from hexainst.builders.synthetic.generations import export_generations as _export
from hexainst.builders.synthetic.generations import import_generations as _import
from hexainst.builders.synthetic.pipeline import build as _build
from hexainst.kernel.output_lock import writer_lock
from hexainst.kernel.settings import SettingError

__all__ = ["SyntheticConfig", "SyntheticResult", "export_generations", "import_generations", "run"]


@dataclass(frozen=True)
class SyntheticResult:
    """What a synthetic build wrote: the pools folder and its report (``synthetic-report.json``)."""

    out_dir: Path
    report: dict[str, Any]

    @property
    def short(self) -> list[str]:
        """Categories that kept fewer candidates than their target."""
        return [c for c, s in self.report["per_category"].items() if s["kept"] < s["target"]]


def run(config: SyntheticConfig) -> SyntheticResult:
    """Generate, rank, filter and write the synthetic pools into ``config.out_dir``: ``<category>.synthetic.jsonl``,
    ``synthetic-report.json`` and ``synthetic-requests.json``, holding the folder's writer's lock
    (:mod:`hexainst.kernel.output_lock`) while it works.

    >>> run(SyntheticConfig(out_dir=Path("work/synthetic"), per_category=130, extra={"math": 12}))  # doctest: +SKIP
    """
    if config.out_dir is None:
        raise SettingError("out_dir", "must name the pools folder to write")
    out = Path(config.out_dir)
    with writer_lock(out, what="pools folder"):
        return SyntheticResult(out_dir=out, report=_build(out, config))


def export_generations(cache_dir: Path, out_file: Path, used_only_for: Path | None = None) -> int:
    """See :func:`hexainst.builders.synthetic.generations.export_generations`."""
    return _export(cache_dir, out_file, used_only_for)


def import_generations(file: Path, cache_dir: Path) -> int:
    """See :func:`hexainst.builders.synthetic.generations.import_generations`."""
    return _import(file, cache_dir)
