"""A release ships its validation file and its top-up record, and the assembly rebuilds it from them.

Fast companion of tests/cli/test_topup.py (which runs the whole 'build all' / 'build topup' on the
mirror): made-up pools, the real assembly, and the two things a fresh clone's rebuild relies on:
the files are shipped byte for byte, and rebuilding a topped-up release with its own order
(``previous=out``) and its validation file gives the same bytes.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "builders" / "release"))

from stage_runs import release_from
from test_release import write_pools
from validation_docs import outcome, validation_doc

from hexainst.builders.release.config import ReleaseConfig
from hexainst.builders.release.reserve import expected_rates, reserve_plan
from hexainst.builders.release.select import rank_key
from hexainst.builders.whole_build import read_topup, reserve_sizes
from hexainst.kernel.outputs import OutputError
from hexainst.kernel.release import RELEASE_ENTRIES
from hexainst.kernel.validation_file import write as write_validation


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_validated_topped_up_release_ships_its_files_and_rebuilds_to_the_same_bytes(tmp_path):
    pools = write_pools(tmp_path / "pools", n=110)
    cell = sorted(pools[("math", "synthetic")], key=lambda r: rank_key(0, r["id"]))
    outcomes = [outcome(r["id"], "rejected") for r in cell[:4]] + [outcome(cell[10]["id"], "revised", "Fixed text.")]
    vfile = write_validation(tmp_path / "validation.json", validation_doc(outcomes))
    out = tmp_path / "release"
    record = {"extra": {"math/synthetic": 4}}
    # The reserve sizes 'build all' gives a release with a top-up record: the planned reserve plus the extra.
    plan = reserve_plan(expected_rates(None), 100, cap=ReleaseConfig().max_reserve)
    sizes = reserve_sizes(plan, record["extra"])
    release_from(tmp_path / "pools", out, validation=vfile, topup=record, reserve_sizes=sizes)
    assert (out / "validation.json").read_bytes() == vfile.read_bytes()
    assert json.loads((out / "topup.json").read_text()) == record and read_topup(out / "topup.json") == {"math/synthetic": 4}
    assert "ships as `validation.json`" in (out / "README.md").read_text()

    # The rebuild of a fresh clone: the release's own files, its shipped validation file (a copy, as
    # 'build all' makes one) and its own order.
    clone = tmp_path / "clone"
    clone.mkdir()
    for entry in RELEASE_ENTRIES:
        if (out / entry).exists():
            (shutil.copytree if (out / entry).is_dir() else shutil.copyfile)(out / entry, clone / entry)
    shipped = tmp_path / "shipped-validation.json"
    shutil.copyfile(clone / "validation.json", shipped)
    release_from(tmp_path / "pools", clone, validation=shipped, topup=record, previous=clone, reserve_sizes=sizes)
    assert _tree(clone) == _tree(out)

    # Without a validation file the release ships none (an earlier one goes with the old entries).
    release_from(tmp_path / "pools", out)
    assert not (out / "validation.json").exists() and not (out / "topup.json").exists()


def test_a_bad_topup_record_is_one_clear_error(tmp_path):
    bad = tmp_path / "topup.json"
    bad.write_text(json.dumps({"extra": {"math/other": 3}}))
    with pytest.raises(OutputError, match=r"topup.json: not a top-up record"):
        read_topup(bad)


def test_a_release_ships_the_rates_its_reserves_were_planned_with_and_a_rebuild_plans_with_them(tmp_path):
    from hexainst.builders.release.reserve import rates_record
    from hexainst.builders.whole_build import shipped_rates
    from hexainst.kernel.release import RATES_FILE

    write_pools(tmp_path / "pools", n=160)
    rates_file = tmp_path / "rates.json"
    rates_file.write_text(json.dumps({"source": "a pilot", "cells": {"math/synthetic": 0.3}}))
    out = tmp_path / "release"
    report = release_from(tmp_path / "pools", out, config=ReleaseConfig(rejection_rates=rates_file))
    shipped = json.loads((out / RATES_FILE).read_text())
    assert shipped["cells"]["math/synthetic"] == 0.3  # the file's rate for its cell, the bundled rate elsewhere
    assert shipped["cells"]["code/natural"] == expected_rates(None)["cells"]["code/natural"]["rate"]
    # read back as a rates file, the shipped record gives every cell the same rate
    again = expected_rates(out / RATES_FILE)["cells"]
    assert {c: e["rate"] for c, e in again.items()} == shipped["cells"]
    assert rates_record(expected_rates(out / RATES_FILE)) == shipped

    # A rebuild with no --rejection-rates plans with the shipped rates (a copy, outside the release folder)...
    config = shipped_rates(out, ReleaseConfig(), tmp_path)
    assert config.rejection_rates == tmp_path / RATES_FILE and config.rejection_rates.read_bytes() == (out / RATES_FILE).read_bytes()
    before = _tree(out)
    rebuilt = release_from(tmp_path / "pools", out, config=config)
    assert _tree(out) == before
    assert rebuilt["cells"]["math/synthetic"]["reserve"] == report["cells"]["math/synthetic"]["reserve"]
    # ... and rates named by the user win over the shipped ones
    assert shipped_rates(out, ReleaseConfig(rejection_rates=rates_file), tmp_path).rejection_rates == rates_file
    assert shipped_rates(tmp_path / "pools", ReleaseConfig(), tmp_path).rejection_rates is None  # nothing shipped there
