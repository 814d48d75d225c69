"""``make_release``: candidate pools (+ an optional validation file) -> a written release.

Inputs, all in ``pools_dir``: ``<category>.<source>.jsonl`` for the 12 cells (record schema),
and, when the build stages wrote them, ``natural-report.json``, ``synthetic-report.json`` and
``natural.lock.json`` (their numbers go into the card). Output: the release folder (see
:mod:`hexainst.kernel.release`) and the release report (returned; the CLI writes it as ``assembly-report.json``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hexainst.builders.release.config import ReleaseConfig
from hexainst.builders.release.croissant import croissant_metadata
from hexainst.builders.release.reserve import expected_rates, rates_record, reserve_plan
from hexainst.builders.release.select import CellSelection, select_cell, shortfall_error
from hexainst.kernel import atomic
from hexainst.kernel.jsonfiles import resource_json
from hexainst.kernel.outputs import claim_release_dir
from hexainst.kernel.pools import NATURAL_REPORT, SYNTHETIC_REPORT, read_pools, read_report
from hexainst.kernel.release import read_release_rows, read_reserve, write_release
from hexainst.kernel.settings import check_ranges
from hexainst.kernel.validation_file import read as read_validation
from hexainst.kernel.validation_file import rounds_info
from hexainst.kernel.vocab import CATEGORIES, SOURCES


def _filters(natural: Mapping[str, Any] | None, synthetic: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Rows of the card's filter table: (stage, reason, removed), from the stage reports."""
    out: list[dict[str, Any]] = []
    if natural:
        totals: dict[str, int] = {}
        for source in (natural.get("sources") or {}).values():
            for reason, n in (source.get("dropped") or {}).items():
                if reason == "task_not_in_category":  # routing between the two FLAN cells, not a filter
                    continue
                totals[reason] = totals.get(reason, 0) + int(n)
        out += [{"stage": "natural", "reason": r, "removed": n} for r, n in sorted(totals.items())]
    if synthetic:
        rejections = synthetic.get("rejections") or {}
        flat: dict[str, int] = {}
        for key, value in rejections.items():
            if isinstance(value, Mapping):  # per category -> {reason: n}
                for reason, n in value.items():
                    flat[reason] = flat.get(reason, 0) + int(n)
            else:
                flat[key] = flat.get(key, 0) + int(value)
        out += [{"stage": "synthetic", "reason": r, "removed": n} for r, n in sorted(flat.items())]
    return out


def _sources(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One card row per (source, FLAN task): each has its own file, revision and licence."""
    seen: dict[str, dict[str, Any]] = {}
    for r in rows:
        nat = r["provenance"]["natural"]
        if not nat:
            continue
        name = f"{nat['source_name']} ({nat['task_name']})" if nat["task_name"] else nat["source_name"]
        if name not in seen:
            seen[name] = {
                "name": name,
                "dataset_id": nat["dataset_id"],
                "config": nat["config"],
                "split": nat["split"],
                "revision": nat["revision"],
                "license": r["license"],
            }
    return [seen[k] for k in sorted(seen)]


def _build_mode(rows: list[dict[str, Any]]) -> str:
    revisions = {r["provenance"]["natural"]["revision"] for r in rows if r["provenance"]["natural"]}
    if revisions and all(rev.startswith("sha256:") for rev in revisions):
        return "mirror"
    return "hub" if revisions else "test"


def make_release(
    pools_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    validation: str | os.PathLike[str] | None = None,
    config: ReleaseConfig = ReleaseConfig(),
    *,
    sources_dir: str | None = None,
    load_path: str = "hexainst",
    generator_note: str | None = None,
    generations: str | os.PathLike[str] | None = None,
    previous: str | os.PathLike[str] | None = None,
    reserve_sizes: Mapping[str, int] | None = None,
    topup: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Select ``config.rows_per_cell`` natural + synthetic rows per category and write the release.

    The release ships the validation file applied (``validation.json``) and, given ``topup`` (the
    top-up record ``{"extra": {cell: n}}``), ``topup.json``: what a fresh clone needs to rebuild it.

    With ``validation`` (a validation file from the annotation package), rejected rows are
    replaced from their cell's reserve in order and revised rows take the corrected text.
    ``previous`` (an earlier release folder) keeps that release's rows and reserve in place and appends
    new candidates after them (a top-up round; ``reserve_sizes`` then gives each cell's reserve).
    Each cell keeps the next ``config.reserve`` candidates by rank as its reserve (None: all of them);
    candidates beyond that are not part of the release folder. Every check happens before anything is
    written. Returns the release report.
    """
    dirs = [Path(pools_dir)] if isinstance(pools_dir, (str, os.PathLike)) else [Path(d) for d in pools_dir]
    claim_release_dir(out_dir, inputs=[*dirs, validation, config.rejection_rates], option="out_dir")
    check_ranges(config)
    seed, size = config.seed, config.rows_per_cell
    pools = read_pools(dirs)
    cell_of_id = {r["id"]: f"{c}/{s}" for (c, s), rows in pools.items() for r in rows}
    rates = expected_rates(config.rejection_rates, cell_of_id)
    plan = reserve_plan(rates, size, cap=config.max_reserve)
    if config.reserve is not None:
        plan = {cell: {**entry, "reserve": config.reserve, "source": "--reserve"} for cell, entry in plan.items()}
    for cell, n in (reserve_sizes or {}).items():  # a top-up's sizes: the earlier reserve plus the new candidates
        plan[cell] = {**plan[cell], "reserve": int(n), "source": "top-up"}
    outcomes: dict[str, Mapping[str, Any]] = {}
    agreement = None
    round_info = None
    if validation is not None:
        doc = read_validation(validation, set(cell_of_id))
        outcomes = {o["id"]: o for o in doc["outcomes"]}
        round_info = rounds_info(doc)
        # One round: its agreement block is the card's; several: the card lists each round's own.
        agreement = doc["rounds"][0]["agreement"] if len(doc["rounds"]) == 1 else None
    earlier = previous_order(previous) if previous is not None else {}

    selections: dict[tuple[str, str], CellSelection] = {
        (c, s): select_cell(c, s, pools[(c, s)], seed=seed, outcomes=outcomes, size=size,
                            reserve_size=max(plan[f"{c}/{s}"]["reserve"], _kept_reserve(earlier, c, s, size)),
                            previous=earlier.get((c, s), ()))
        for c in CATEGORIES
        for s in SOURCES
    }
    short = shortfall_error(list(selections.values()))
    if short is not None:
        raise short
    release = [row for sel in selections.values() for row in sel.release]
    reserve = [row for sel in selections.values() for row in sel.reserve]

    natural_report = read_report(dirs, NATURAL_REPORT)
    synthetic_report = read_report(dirs, SYNTHETIC_REPORT)
    mode = _build_mode(release)
    build_info = {
        "mode": mode,
        "sources_dir": sources_dir,
        "load_path": load_path,
        "sources": _sources(release),
        "filters": _filters(natural_report, synthetic_report),
        "agreement": agreement,
        "validation": round_info,
        "generator_note": generator_note,
        "quality_review": _quality_review(),
    }
    write_release(
        release,
        out_dir,
        reserve=reserve,
        build_info=build_info,
        croissant=lambda folder: croissant_metadata(folder),
        generations=generations,
        validation=validation,
        topup=topup,
        rates=rates_record(rates),
    )
    report = {
        "seed": seed,
        "validation_file": str(validation) if validation else None,
        "outcomes_applied": len(outcomes),
        "build_mode": mode,
        "cells": {f"{c}/{s}": {**selections[(c, s)].report(), "expected_rejection": plan[f"{c}/{s}"]["rate"],
                               "reserve_planned": plan[f"{c}/{s}"]["reserve"],
                               "reserve_capped": bool(plan[f"{c}/{s}"].get("capped")),
                               "rate_source": plan[f"{c}/{s}"]["source"]}
                  for c in CATEGORIES for s in SOURCES},
        "replacements": {f"{c}/{s}": selections[(c, s)].replacements for c in CATEGORIES for s in SOURCES},
    }
    return report


def _quality_review() -> dict[str, Any] | None:
    """The latest blind read of the embedded generator's rows (``data/quality_review.json``), or ``None``.

    The card quotes it only for a release whose synthetic rows come from the generator it judged.
    """
    doc = resource_json("hexainst.builders.release", "data", "quality_review.json")
    return doc.get("review") if isinstance(doc, dict) else None


def previous_order(folder: str | os.PathLike[str]) -> dict[tuple[str, str], list[str]]:
    """Per cell, the ids of an earlier release in order: its rows (by id) then its reserve (in order)."""
    order: dict[tuple[str, str], list[str]] = {}
    for row in [*read_release_rows(folder), *read_reserve(folder)]:
        order.setdefault((row["category"], row["source"]), []).append(row["id"])
    return order


def _kept_reserve(previous: Mapping[tuple[str, str], list[str]], category: str, source: str, size: int) -> int:
    """A top-up never shrinks a reserve: the earlier release's reserve rows of the cell stay."""
    return max(0, len(previous.get((category, source), ())) - size)


def write_report(report: Mapping[str, Any], file: Path) -> None:
    """Write the release report atomically."""
    atomic.write_text(file, json.dumps(report, indent=2, sort_keys=True) + "\n")
