"""docs/validation/rates.py: per-cell counts and agreement of a validation file, placed by the build's pools."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _rates():
    spec = importlib.util.spec_from_file_location("rates", REPO / "docs" / "validation" / "rates.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _verdict(who: str, decision: str, errors=(), category_correct: bool = True) -> dict:
    return {"annotator": who, "decision": decision, "errors": list(errors), "category_correct": category_correct}


def _outcome(id_: str, status: str, j1: dict, j2: dict, senior: dict | None = None) -> dict:
    return {"id": id_, "status": status, "juniors": [j2, j1], "senior": senior}  # order in the file is not by name


def test_counts_acceptance_senior_and_unsound_per_cell() -> None:
    cell_of = {f"m{i}": "math/synthetic" for i in range(4)} | {"c0": "code/natural", "c1": "code/natural"}
    outcomes = [
        _outcome("m0", "rejected", _verdict("junior1", "reject", ["unsound"]), _verdict("junior2", "reject", ["unsound"])),
        _outcome("m1", "rejected", _verdict("junior1", "reject", ["unsound"]), _verdict("junior2", "reject", ["unclear"])),
        _outcome("m2", "accepted", _verdict("junior1", "accept"), _verdict("junior2", "reject", ["unsound"]),
                 senior=_verdict("senior", "accept")),
        _outcome("m3", "pending", _verdict("junior1", "accept"), _verdict("junior2", "accept")),
        _outcome("c0", "revised", _verdict("junior1", "revise", ["grammar"]), _verdict("junior2", "revise", ["grammar"])),
        _outcome("c1", "accepted", _verdict("junior1", "accept"), _verdict("junior2", "accept")),
    ]
    got = _rates().cell_rates(outcomes, cell_of)
    math = got["math/synthetic"]
    assert (math["judged"], math["accepted"], math["revised"], math["rejected"]) == (3, 1, 0, 2)  # pending m3 left out
    assert math["acceptance"] == pytest.approx(1 / 3, abs=1e-3)
    assert math["senior"] == 1 and math["senior_differs_from_junior1"] == 0 and math["senior_differs_from_junior2"] == 1
    assert math["unsound_both"] == 1
    # junior1 accept/reject/reject vs junior2 reject x3: p_o = 2/3, p_e = 1/3 * 0 + 2/3 * 1 = 2/3 -> kappa 0
    assert math["kappa_decision"] == pytest.approx(0.0)
    assert math["kappa_category_correct"] is None  # every answer "correct": undefined, not 1
    code = got["code/natural"]
    assert (code["judged"], code["acceptance"], code["kappa_decision"]) == (2, 1.0, 1.0)
    assert got["all"]["judged"] == 5


def test_an_outcome_outside_the_pools_is_named() -> None:
    with pytest.raises(SystemExit, match="zz"):
        _rates().cell_rates([_outcome("zz", "accepted", _verdict("junior1", "accept"), _verdict("junior2", "accept"))],
                            {"m0": "math/synthetic"})


def test_out_replaces_only_a_rates_file(tmp_path, monkeypatch) -> None:
    import sys

    precious = tmp_path / "notes.json"
    precious.write_text('{"mine": 1}')
    monkeypatch.setattr(sys, "argv", ["rates.py", "--validation", str(tmp_path / "v.json"), "--out", str(precious)])
    with pytest.raises(SystemExit, match="not a rates file"):
        _rates().main()
    assert precious.read_text() == '{"mine": 1}'
