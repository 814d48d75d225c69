"""``hexainst baseline PAIR``: record a base/fine-tuned pair from the pairs registry and analyse it.

The registry (``analysis/pairs/pairs.json``, validated by ``pairs.schema.json``) lists the
paper's four pairs (Table 4). Models load from local folders (``--model-root``) or Hub ids.
Stages: rows -> ``OUT/stores/base`` and ``OUT/stores/fine-tuned`` (resumable activation stores)
-> ``OUT/analysis`` (the report folder of :func:`hexainst.analysis.pipeline.analyze`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from hexainst.analysis.config import AnalysisConfig
from hexainst.analysis.pipeline import analyze
from hexainst.analysis.recording import recorder
from hexainst.analysis.recording.config import RecordingConfig
from hexainst.analysis.recording.loading import check_device
from hexainst.kernel.errors import UserError
from hexainst.kernel.outputs import claim_output_dir, write_marker


class PairsError(UserError):
    """The pairs file is malformed or does not list the requested pair."""


@functools.cache
def _schema() -> dict[str, Any]:
    return json.loads(resources.files("hexainst.analysis").joinpath("pairs", "pairs.schema.json").read_text("utf-8"))


def default_pairs_file() -> Path:
    return Path(str(resources.files("hexainst.analysis").joinpath("pairs", "pairs.json")))


def load_pairs(path: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """name -> pair entry, from ``path`` (default: the paper's pairs), validated against the schema."""
    import jsonschema

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
    """``--model-root`` must be a folder (one line naming it otherwise; else every model would go to the Hub)."""
    if model_root is None:
        return
    root = Path(model_root).expanduser()
    if not root.exists():
        raise PairsError(f"--model-root {root}: no such folder")
    if not root.is_dir():
        raise PairsError(f"--model-root {root}: is a file, not a folder holding the models as <hub id> or <name>")


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


def run_baseline(
    pair_name: str,
    rows: Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike[str],
    *,
    pairs_file: str | os.PathLike[str] | None = None,
    model_root: str | os.PathLike[str] | None = None,
    recording: RecordingConfig | None = None,
    progress: bool = True,
    config: AnalysisConfig | None = None,
) -> dict[str, Any]:
    """Record both models of the pair on ``rows`` and analyse them; return the analysis results.

    ``recording``: a :class:`~hexainst.analysis.recording.config.RecordingConfig` (default: its
    defaults); ``config``: an :class:`~hexainst.analysis.config.AnalysisConfig`. ``out_dir`` gets
    ``stores/base``, ``stores/fine-tuned`` (resumed when rerun) and ``analysis/``.
    """
    pairs = load_pairs(pairs_file)
    if pair_name not in pairs:
        raise PairsError(f"unknown pair {pair_name!r}; the pairs file lists: {', '.join(sorted(pairs))}")
    pair = pairs[pair_name]
    rec = recording if recording is not None else RecordingConfig()
    if rec.device_map is None:  # a wrong device is one line before the output folder is made
        check_device(rec.device)
    out = claim_baseline_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, OUTPUT_KIND, {"pair": pair_name}, complete=False)
    stores = {}
    for role, key, rev in (("base", "base", "revision_base"), ("fine-tuned", "fine_tuned", "revision_fine_tuned")):
        model = resolve_model(pair[key], model_root)
        stores[role] = recorder.run(dataclasses.replace(
            rec, model=model, out=out / "stores" / role, revision=pair.get(rev), progress=progress,
            created_by={"command": "hexainst baseline", "pair": pair_name, "role": role},
        ), rows).store
    return analyze(stores["base"], out / "analysis", store_b=stores["fine-tuned"],
                   config=config if config is not None else AnalysisConfig())
