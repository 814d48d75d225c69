"""The synthetic builder: instructions generated through any OpenAI-compatible endpoint.

Public API: :func:`build` (what ``hexainst build synthetic`` and ``make dataset`` call).
Heavy modules are imported inside it, so importing this package is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["build"]


def build(
    out_dir: Path,
    per_category: int,
    base_url: str | None = None,
    model: str | None = None,
    natural_pool_dir: Path | None = None,
    cache_dir: Path | None = None,
    offline: bool = False,
    seed: int = 0,
    concurrency: int = 16,
    progress: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Generate, filter and write ``<category>.synthetic.jsonl`` pools and ``synthetic-report.json``.

    ``options`` go to :func:`hexainst.builders.synthetic.pipeline.build` (``generator``, ``max_attempts``,
    ``timeout``, ``max_retries``, ``max_slots_factor``). Returns the report.
    """
    from hexainst.builders.synthetic.pipeline import build as _build

    return _build(
        out_dir=Path(out_dir),
        per_category=per_category,
        base_url=base_url,
        model=model,
        natural_pool_dir=Path(natural_pool_dir) if natural_pool_dir is not None else None,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        offline=offline,
        seed=seed,
        concurrency=concurrency,
        progress=progress,
        **options,
    )
