"""The build stages called as their one entry point takes them (``run(config) -> result``), with the
settings as keyword arguments: what the stage tests call, so that each reads as one line.

Each helper builds the stage's config from its arguments and returns the report the stage wrote;
nothing of the stage is replaced or skipped.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from hexainst.builders import natural, release, synthetic
from hexainst.builders.natural import NaturalConfig
from hexainst.builders.release import ReleaseConfig
from hexainst.builders.synthetic import SyntheticConfig

PathLike = str | os.PathLike[str]


def natural_pools(out: PathLike, **settings: Any) -> dict[str, Any]:
    """``natural.run``: the natural pools into ``out``; ``settings`` are :class:`NaturalConfig` fields."""
    return natural.run(NaturalConfig(out_dir=Path(out), **settings)).report


def synthetic_pools(out: PathLike, per_category: int | None = None, **settings: Any) -> dict[str, Any]:
    """``synthetic.run``: the synthetic pools into ``out``; ``settings`` are :class:`SyntheticConfig` fields."""
    if per_category is not None:
        settings["per_category"] = per_category
    for name in ("natural_pool_dir", "cache_dir"):
        if settings.get(name) is not None:
            settings[name] = Path(settings[name])
    return synthetic.run(SyntheticConfig(out_dir=Path(out), **settings)).report


def release_from(pools: PathLike | list[PathLike], out: PathLike, validation: PathLike | None = None,
                 config: ReleaseConfig | None = None, **fields: Any) -> dict[str, Any]:
    """``release.run``: the release of ``pools`` (one folder or several) into ``out``; ``config`` gives its
    settings and ``fields`` the rest of :class:`ReleaseConfig` (``topup``, ``previous``, ``reserve_sizes``...)."""
    folders = (pools,) if isinstance(pools, (str, os.PathLike)) else tuple(pools)
    base = config or ReleaseConfig()
    changes = {"pools": tuple(Path(p) for p in folders), "out_dir": Path(out),
               "validation_file": Path(validation) if validation is not None else None, **fields}
    for name in ("previous", "generations", "sources_dir"):
        if changes.get(name) is not None:
            changes[name] = Path(changes[name])
    return release.run(dataclasses.replace(base, **changes)).report
