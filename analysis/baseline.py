"""``hexainst baseline PAIR``: record a base/fine-tuned pair from the pairs registry and analyse it.

The registry (``analysis/pairs/pairs.json``, validated by ``pairs.schema.json``) lists the
paper's four pairs (Table 4). Models load from local folders (``model_root``) or Hub ids.
Stages: rows -> ``OUT/stores/base`` and ``OUT/stores/fine-tuned`` (resumable activation stores)
-> ``OUT/analysis`` (the report folder of :func:`hexainst.analysis.pipeline.analyze`).
The entry point is :func:`run` (a :class:`~hexainst.analysis.config.BaselineConfig` in, a
:class:`BaselineResult` out).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from hexainst.analysis.config import BaselineConfig
from hexainst.analysis.data import read_rows
from hexainst.analysis.pipeline import analyze
from hexainst.analysis.recording import recorder
from hexainst.analysis.recording.loading import check_device
from hexainst.analysis.recording.store import ActivationStore
from hexainst.kernel.errors import UserError
from hexainst.kernel.outputs import claim_output_dir, write_marker
from hexainst.kernel.settings import SettingError


class PairsError(UserError):
    """The pairs file is malformed or does not list the requested pair."""


@functools.cache
def _schema() -> dict[str, Any]:
    return json.loads(resources.files("hexainst.analysis").joinpath("pairs", "pairs.schema.json").read_text("utf-8"))


def default_pairs_file() -> Path:
    return Path(str(resources.files("hexainst.analysis").joinpath("pairs", "pairs.json")))


def load_pairs(path: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """name -> pair entry, from ``path`` (default: the paper's pairs), validated against the schema."""
    path = Path(path) if path is not None else default_pairs_file()
    if not path.is_file():
        raise PairsError(f"pairs file not found: {path}")
    try:
        data = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise PairsError(f"{path}: invalid JSON ({exc.msg}, line {exc.lineno})") from exc
    errors = sorted(jsonschema.Draft202012Validator(_schema()).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.path) or "(top level)"
        raise PairsError(f"{path}: {where}: {err.message}")
    names = [p["name"] for p in data["pairs"]]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise PairsError(f"{path}: pair names listed twice: {', '.join(sorted(dup))}")
    return {p["name"]: p for p in data["pairs"]}


def check_model_root(model_root: str | os.PathLike[str] | None) -> None:
    """``model_root`` must be a folder (one line naming it otherwise; else every model would go to the Hub)."""
    if model_root is None:
        return
    root = Path(model_root).expanduser()
    if not root.exists():
        raise SettingError("model_root", f"{root}: no such folder")
    if not root.is_dir():
        raise SettingError("model_root", f"{root}: is a file, not a folder holding the models as <hub id> or <name>")


def resolve_model(hub_id: str, model_root: str | os.PathLike[str] | None) -> str:
    """A local folder for ``hub_id`` under ``model_root`` when one exists, else the Hub id itself."""
    check_model_root(model_root)
    if model_root is not None:
        root = Path(model_root)
        for candidate in (root / hub_id, root / hub_id.split("/")[-1]):
            if candidate.exists():
                return str(candidate)
    return hub_id


#: The marker kind of a baseline run folder (stores/ and analysis/).
OUTPUT_KIND = "baseline run"


def claim_baseline_dir(out_dir: str | os.PathLike[str], *, inputs: Sequence[Any] = (), option: str = "--out") -> Path:
    """Check, before any work, that ``out_dir`` may hold a baseline run; return it resolved.

    A new or empty folder, or an earlier baseline run (whose stores then resume), may be used;
    anything else stops with one line (see :func:`hexainst.kernel.outputs.claim_output_dir`).
    """
    return claim_output_dir(out_dir, OUTPUT_KIND, inputs=inputs, option=option)


@dataclass(frozen=True)
class BaselineResult:
    """What a baseline run left: its folder, the two stores (opened) and the analysis (results.json's content)."""

    out: Path
    stores: dict[str, ActivationStore]
    results: dict[str, Any]


def run(config: BaselineConfig) -> BaselineResult:
    """Record both models of ``config.pair`` on the rows and analyse them together into ``config.out``.

    Every input is checked before any work: the pair, the model folder, the output folder (a new or
    empty folder, or an earlier baseline run, whose stores then resume), the rows and the device.
    """
    pairs = load_pairs(config.pairs_file)
    if config.pair not in pairs:
        raise PairsError(f"unknown pair {config.pair!r}; the pairs file lists: {', '.join(sorted(pairs))}")
    check_model_root(config.model_root)
    claim_baseline_dir(config.out, inputs=[config.rows, config.release, config.pairs_file, config.model_root])
    rows = baseline_rows(config)
    rec = config.recording
    if rec.device_map is None:  # a wrong device is one line before the output folder is made
        check_device(rec.device)
    out = claim_baseline_dir(config.out)
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, OUTPUT_KIND, {"pair": config.pair}, complete=False)
    pair = pairs[config.pair]
    stores = {}
    for role, key, rev in (("base", "base", "revision_base"), ("fine-tuned", "fine_tuned", "revision_fine_tuned")):
        model = resolve_model(pair[key], config.model_root)
        stores[role] = recorder.run(dataclasses.replace(
            rec, model=model, out=out / "stores" / role, revision=pair.get(rev), progress=config.analysis.progress,
            created_by={"command": "hexainst baseline", "pair": config.pair, "role": role},
        ), rows).store
    results = analyze(stores["base"], out / "analysis", store_b=stores["fine-tuned"], config=config.analysis)
    return BaselineResult(out=out, stores=stores, results=results)


def baseline_rows(config: BaselineConfig) -> list[dict[str, Any]]:
    """The rows to record: from ``config.rows`` or ``config.release``, the first ``per_category`` of each category."""
    rows = read_rows(config.rows, config.release, what="rows to record")
    if config.per_category is not None:
        kept: dict[str, int] = {}
        out = []
        for row in rows:
            c = str(row["category"])
            if kept.get(c, 0) < config.per_category:
                kept[c] = kept.get(c, 0) + 1
                out.append(row)
        rows = out
    if not rows:
        raise UserError("no rows to record")
    return rows
