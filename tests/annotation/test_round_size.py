"""A round's size (``--sample N``, ``--sample-per-cell N``) and the drafts warning, without a server."""

from __future__ import annotations

import json
from collections import Counter

from annotation_helpers import ACCOUNTS, nat, syn

from hexainst.annotation.drafts import warning, with_drafts
from hexainst.annotation.sampling import by_cell, sample
from hexainst.annotation.session import Session
from hexainst.annotation.sync import origin_of
from hexainst.cli import main

CATEGORIES = ("classification", "code", "generalqa", "generation", "math", "summarization")


def _rows(per_cell: int = 5):
    return [make(c, i) for c in CATEGORIES for make in (nat, syn) for i in range(per_cell)]


def _cells(rows):
    return Counter((r["category"], origin_of(r["id"])) for r in rows)


def test_sample_is_seeded_spread_over_cells_and_independent_of_order():
    rows = _rows()
    picked = sample(rows, n=30, seed=3)
    assert len(picked) == 30 and len({r["id"] for r in picked}) == 30
    assert sorted(_cells(picked).values()) == [2] * 6 + [3] * 6  # 30 over 12 cells: as even as it gets
    assert [r["id"] for r in picked] == sorted(r["id"] for r in picked)
    assert [r["id"] for r in sample(list(reversed(rows)), n=30, seed=3)] == [r["id"] for r in picked]
    assert [r["id"] for r in sample(rows, n=30, seed=4)] != [r["id"] for r in picked]
    # More rows (a top-up) never reorder the rows already there: a row's rank is its seed and id only.
    old = {r["id"] for r in rows}
    small, large = by_cell(rows, 3), by_cell(_rows(8), 3)
    for cell, group in small.items():
        assert [r["id"] for r in large[cell] if r["id"] in old] == [r["id"] for r in group]


def test_sample_per_cell_takes_all_of_a_small_cell():
    rows = _rows(5) + [nat("math", 100 + i) for i in range(5)]
    picked = sample(rows, per_cell=7, seed=0)
    counts = _cells(picked)
    assert counts[("math", "natural")] == 7 and counts[("code", "natural")] == 5


def test_sample_larger_than_the_candidates_is_one_line_and_nothing_changes(tmp_path, capsys):
    session = Session.create(tmp_path / "round", ACCOUNTS)
    session.save()
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(nat("math", i)) + "\n" for i in range(3)))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main(["annotate", "sync", "--data-dir", str(tmp_path / "round"), "--rows", str(rows), "--sample", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--sample 4: only 3 candidates were given" in err and "\n" not in err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_drafts_are_named_per_annotator():
    export = [
        {"id": 1, "data": {"hexainst_id": "math-nat-000000000002"}, "drafts": [7], "annotations": []},
        {"id": 2, "data": {"hexainst_id": "math-nat-000000000001"}, "drafts": [], "annotations": [{}]},
        {"id": 3, "data": {"hexainst_id": "math-nat-000000000000"}, "drafts": [9, 10], "annotations": [{}]},
    ]
    assert with_drafts(export) == ["math-nat-000000000000", "math-nat-000000000002"]
    (line,) = warning({"junior1": with_drafts(export), "junior2": []})
    assert line.startswith("warning: junior1 has 2 task(s) with changes not submitted")
    assert "math-nat-000000000000, math-nat-000000000002" in line
    assert "more" in warning({"junior2": [f"id{i}" for i in range(25)]})[0]
