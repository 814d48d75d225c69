"""Candidates -> release -> Label Studio -> validation.json -> re-assembled release."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from annotation_helpers import nat, syn, v1_verdict, verdict
from annotation_live import Annotators
from stage_runs import release_from

import hexainst
from hexainst.annotation.sync import index_project, rows_from_release
from hexainst.kernel import validation_file
from hexainst.kernel.validation_file import ValidationFileError
from hexainst.kernel.vocab import CATEGORIES

EXTRA = 3  # reserve rows per cell


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pools")
    for category in CATEGORIES:
        for source, make in (("natural", nat), ("synthetic", syn)):
            offset = CATEGORIES.index(category) * 1000
            rows = [make(category, offset + i) for i in range(100 + EXTRA)]
            (folder / f"{category}.{source}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.mark.slow
@pytest.mark.labelstudio
def test_validation_round_trip_through_reassembly(ls_session, pools, tmp_path):
    first = tmp_path / "release-1"
    release_from(pools, first)
    candidates = rows_from_release(str(first))
    assert len(candidates) == 12 * (100 + EXTRA)  # the release and its reserve
    reports = ls_session.sync_candidates(candidates, batch_size=500, progress=False)
    assert {n: r.n_imported for n, r in reports.items()} == {"junior1": len(candidates), "junior2": len(candidates)}
    for inst in ls_session.juniors:
        assert len(index_project(ls_session.client(inst), ls_session.project(inst)).tasks) == len(candidates)

    release = {r["id"]: r for r in candidates[: 12 * 100]}
    math_nat = sorted(i for i, r in release.items() if (r["category"], r["source"]) == ("math", "natural"))
    code_syn = sorted(i for i, r in release.items() if (r["category"], r["source"]) == ("code", "synthetic"))
    rejected_agreed, revised, rejected_by_senior = math_nat[0], math_nat[1], code_syn[0]
    juniors = Annotators(ls_session)
    juniors.annotate("junior1", rejected_agreed, verdict("junior1", "reject", False, ["wrong_category"]))
    juniors.annotate("junior2", rejected_agreed, verdict("junior2", "reject", False, ["wrong_category"]))
    juniors.annotate("junior1", revised, verdict("junior1", "revise", True, ["grammar"], "Solve for x: 2x + 3 = 7."))
    juniors.annotate("junior2", revised, verdict("junior2", "revise", True, ["grammar"], "Solve for x: 2x + 3 = 7."))
    juniors.annotate("junior1", rejected_by_senior, verdict("junior1", "accept"))
    juniors.annotate("junior2", rejected_by_senior, verdict("junior2", "reject", True, ["unclear"]))
    ls_session.sync_senior(progress=False)
    juniors.annotate("senior", rejected_by_senior, verdict("senior", "reject", True, ["unclear"]))
    doc, _ = ls_session.adjudicate()
    validation = validation_file.write(tmp_path / "validation.json", doc)

    second = tmp_path / "release-2"
    release_from(pools, second, validation=validation)
    ds = hexainst.load(second)
    names = ds.features["category"].int2str, ds.features["source"].int2str
    cells = Counter((names[0](c), names[1](s)) for c, s in zip(ds["category"], ds["source"]))
    assert cells == {(c, s): 100 for c in CATEGORIES for s in ("natural", "synthetic")}
    rows = {r["id"]: r for r in ds}
    assert rejected_agreed not in rows and rejected_by_senior not in rows
    # Each rejected row was replaced by the first row of its cell's reserve.
    reserve_1 = hexainst.load_reserve(first)
    first_reserve = {}
    for r in reserve_1:
        first_reserve.setdefault((r["category"], r["source"]), r["id"])
    assert first_reserve[("math", "natural")] in rows and first_reserve[("code", "synthetic")] in rows
    # The revised row carries the corrected text and keeps its original text.
    row = rows[revised]
    assert row["instruction"] == "Solve for x: 2x + 3 = 7."
    assert row["validation"]["status"] == "revised"
    assert row["validation"]["original_instruction"] == release[revised]["instruction"]
    assert [v["annotator"] for v in row["validation"]["juniors"]] == ["junior1", "junior2"]
    assert {r["id"] for r in hexainst.load_reserve(second)}.isdisjoint({rejected_agreed, rejected_by_senior})


def test_unknown_instruction_id_applies_nothing(pools, tmp_path):
    doc = {
        "format": "hexainst-validation", "format_version": 1,
        "created_from": {"label_studio_version": "1.23.2", "junior_project": "J", "senior_project": "S"},
        "agreement": {
            "n_tasks": 1, "n_double_annotated": 1, "kappa_decision": None, "kappa_category_correct": None,
            "error_type_agreement": {e: {"kappa": None, "percent": 100.0}
                                     for e in ("grammar", "redundancy", "wrong_category", "unclear")},
            "n_disagreements": 0, "n_senior_decided": 0, "extra_annotations_ignored": 0,
        },
        "outcomes": [{"id": "math-nat-ffffffffffff", "status": "rejected", "corrected_instruction": None,
                      "juniors": [v1_verdict("junior1", "reject"), v1_verdict("junior2", "reject")], "senior": None}],
    }  # fmt: skip
    file = tmp_path / "validation.json"  # a file of format version 1 (still read): its unknown id is refused too
    file.write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "release"
    with pytest.raises(ValidationFileError, match=r"outcomes\[0\] \(id='math-nat-ffffffffffff'\): unknown instruction id"):
        release_from(pools, out, validation=file)
    assert not out.exists()
