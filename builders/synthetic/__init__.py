"""The synthetic builder: instructions generated through any OpenAI-compatible endpoint.

Public API (what ``hexainst build synthetic`` and ``make dataset`` call):

* :func:`run` ``(config) -> SyntheticResult``: the stage's entry point, config in (``config.out_dir``
  the pools folder), result out.
* :func:`build` ``(out_dir, per_category=None, *, config=None, **settings)``: generate, rank,
  filter and write the pools; ``settings`` are :class:`SyntheticConfig` fields and override
  ``config`` (``SyntheticConfig()`` when omitted).
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
from hexainst.kernel.settings import SettingError

__all__ = ["SyntheticConfig", "SyntheticResult", "build", "export_generations", "import_generations", "run"]


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
    """Generate, rank, filter and write the synthetic pools into ``config.out_dir``."""
    if config.out_dir is None:
        raise SettingError("out_dir", "must name the pools folder to write")
    return SyntheticResult(out_dir=Path(config.out_dir), report=build(config.out_dir, config=config))


def build(out_dir: Path, per_category: int | None = None, *, config: SyntheticConfig | None = None,
          **settings: Any) -> dict[str, Any]:
    """Generate, rank, filter and write ``<category>.synthetic.jsonl`` and ``synthetic-report.json``; return the report.

    >>> build("work/synthetic", 130, natural_pool_dir="work/natural", cache_dir="work/cache/synthetic")  # doctest: +SKIP
    >>> build("work/synthetic", config=SyntheticConfig(per_category=130), extra={"math": 12})  # doctest: +SKIP
    """
    config = config or SyntheticConfig()
    if per_category is not None:
        settings["per_category"] = per_category
    for name in ("natural_pool_dir", "cache_dir"):
        if settings.get(name) is not None:
            settings[name] = Path(settings[name])
    unknown = sorted(set(settings) - set(SyntheticConfig.__dataclass_fields__))
    if unknown:
        raise TypeError(f"build() got unknown settings {', '.join(unknown)}; see SyntheticConfig")
    return _build(Path(out_dir), config.replace(**settings))


def export_generations(cache_dir: Path, out_file: Path, used_only_for: Path | None = None) -> int:
    """See :func:`hexainst.builders.synthetic.generations.export_generations`."""
    return _export(cache_dir, out_file, used_only_for)


def import_generations(file: Path, cache_dir: Path) -> int:
    """See :func:`hexainst.builders.synthetic.generations.import_generations`."""
    return _import(file, cache_dir)
