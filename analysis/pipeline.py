"""``hexainst analyze``: from one or two activation stores to figures, tables, report and JSON.

Stage: activations -> metrics -> figures. Inputs: store folder(s). Output: one folder::

    results.json        every number (and every parameter, both stores' headers)
    report.md           the report, embedding the figures and tables
    figures/*.png|svg   Fig. 3 (Jaccard), Fig. 4 (routing Pearson, MoE), Fig. 5, Fig. 6, ...
    tables/*.csv|md     Table 1, 2, 6, category matrices with CIs, eps sweep, lengths, set sizes
    isn_sets/<label>/   isn_sets.eps<eps>.<tie rule>.npz (unless save_sets is off)
    .hexainst-output.json   marks the folder as an analysis report (see hexainst.kernel.outputs)

The steps, each in its own module: :mod:`~hexainst.analysis.compute` (stores -> results objects),
:mod:`~hexainst.analysis.render` (results -> files), :mod:`~hexainst.analysis.report` (report.md).
This module only orders them: it checks the output folder before any work (only an earlier
analysis report is replaced, never an input or a stranger's folder), builds the new folder beside
the old one and swaps it in when complete, so a failed run leaves the previous report as it was.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hexainst.analysis.compute import CausalSpec, Controls, LexicalSpec, compute
from hexainst.analysis.config import AnalysisConfig, CausalConfig
from hexainst.analysis.data import open_store
from hexainst.analysis.render import write_outputs
from hexainst.kernel.atomic import staged_dir
from hexainst.kernel.disk_space import full_disk_is_one_line
from hexainst.kernel.output_lock import writer_lock
from hexainst.kernel.outputs import MARKER, claim_output_dir, read_marker, write_marker
from hexainst.kernel.settings import SettingError

__all__ = ["OUTPUT_KIND", "AnalysisConfig", "CausalConfig", "CausalSpec", "Controls", "LexicalSpec", "analyze",
           "claim_analysis_dir"]

#: The marker kind of an analysis report folder.
OUTPUT_KIND = "analysis report"

PathLike = str | os.PathLike[str]


def _path_of(store: Any) -> Path | None:
    if isinstance(store, (str, os.PathLike)):
        return Path(store)
    path = getattr(store, "path", None)
    return Path(path) if path is not None else None


def claim_analysis_dir(out_dir: PathLike, *, inputs: Iterable[PathLike | None] = (), option: str = "--out") -> Path:
    """Check, before any work, that ``out_dir`` may receive an analysis report; return it resolved.

    A new or empty folder, or an earlier analysis report, may be (re)placed; a file, a folder that
    is, holds or lies inside an input (a store, the release), or anyone else's folder may not.
    """
    return claim_output_dir(out_dir, OUTPUT_KIND, inputs=inputs, option=option)


def analyze(
    store_a: PathLike | Any,
    out_dir: PathLike,
    *,
    store_b: PathLike | Any | None = None,
    config: AnalysisConfig = AnalysisConfig(),
    causal: CausalSpec | None = None,
    inputs: Iterable[PathLike | None] = (),
    untrained: Iterable[PathLike | Any] = (),
    lexical: LexicalSpec | None = None,
    clusters: dict[str, str] | None = None,
    lexical_skipped: str | None = None,
) -> dict[str, Any]:
    """Analyse store A (and compare it with B, the fine-tuned model) into ``out_dir``; return results.json's content.

    ``store_a``/``store_b``: store folders or opened stores. ``causal``: run the held-out causal check on
    store A's model (see :func:`hexainst.analysis.causal.heldout_causal_check`). ``inputs``: other files the run reads
    (e.g. the release with the instruction texts), which ``out_dir`` must not hold or replace.
    ``untrained``: stores of the same architecture with random weights (``hexainst record
    --random-init SEED``), ``lexical``: tokenizer and texts for the lexical baseline, ``clusters``:
    id -> provenance cluster for the cluster bootstrap (see :class:`~hexainst.analysis.compute.Controls`).
    """
    untrained = list(untrained)
    stores = [_path_of(store_a), _path_of(store_b)] if store_b is not None else [_path_of(store_a)]
    out = claim_analysis_dir(out_dir, inputs=[*stores, *[_path_of(u) for u in untrained], *inputs])
    with writer_lock(out, what="analysis report"), full_disk_is_one_line(
            out, "analysis report", "an earlier report there is as it was: free space, then rerun"):
        _check_unedited(out)
        return _analyze_into(out, store_a, store_b, stores, config, causal, untrained, lexical, clusters,
                             lexical_skipped)


def _analyze_into(out: Path, store_a: Any, store_b: Any, stores: list[Path | None], config: AnalysisConfig,
                  causal: CausalSpec | None, untrained: list[Any], lexical: LexicalSpec | None,
                  clusters: dict[str, str] | None, lexical_skipped: str | None) -> dict[str, Any]:
    a = open_store(store_a) if isinstance(store_a, (str, os.PathLike)) else store_a
    b = open_store(store_b) if isinstance(store_b, (str, os.PathLike)) else store_b
    us = [open_store(u) if isinstance(u, (str, os.PathLike)) else u for u in untrained]
    controls = Controls(untrained=us, lexical=lexical, clusters=clusters, lexical_skipped=lexical_skipped)
    results = compute(a, store_b=b, config=config, causal=causal, controls=controls)
    with staged_dir(out) as folder:
        data = write_outputs(results, folder)
        write_marker(folder, OUTPUT_KIND, {"stores": [str(p) for p in stores if p is not None],
                                           "sha256": _digests(folder)})
    return data


def _digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file the report holds (but its marker), by path relative to ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MARKER}


def _check_unedited(out: Path) -> None:
    """Refuse to replace an earlier report in which a file was edited since it was written (named, one line;
    a :class:`~hexainst.kernel.settings.SettingError` of ``out``, which the command line calls ``--out``).

    Reports written before the marker kept digests cannot be checked, and are replaced as before.
    """
    written = (read_marker(out) or {}).get("sha256") if out.is_dir() else None
    if not isinstance(written, dict):
        return
    edited = [rel for rel, digest in sorted(written.items())
              if (out / rel).is_file() and hashlib.sha256((out / rel).read_bytes()).hexdigest() != digest]
    if edited:
        more = f" and {len(edited) - 1} more" if len(edited) > 1 else ""
        raise SettingError("out", f"{out}: {edited[0]}{more} was edited since hexainst wrote it; a new report there "
                                  "would replace the edit: copy it elsewhere (or undo it), or write the report to another "
                                  "folder")
