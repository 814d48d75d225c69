"""The annotation stage's entry points (``hexainst.annotation.round``) called as a library, without a server:
config in, result out, and every check before the round is touched."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from annotation_helpers import ACCOUNTS, nat, syn

from hexainst.annotation.config import AnnotationConfig, Candidates
from hexainst.annotation.round import ExportResult, export, keep_serving, read_candidates, stop
from hexainst.annotation.session import Session
from hexainst.kernel.errors import UserError


def _rows_file(folder: Path, rows) -> Path:
    path = folder / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_read_candidates_needs_a_source():
    assert not Candidates().given
    with pytest.raises(UserError, match="^name the candidates: --release DIR"):
        read_candidates(Candidates())


def test_read_candidates_reads_every_file_and_samples_as_the_config_says(tmp_path, caplog):
    rows = [make("math", i) for make in (nat, syn) for i in range(4)]
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    candidates = Candidates(rows=(_rows_file(first, rows[:5]), _rows_file(second, rows[5:])))
    assert [r["id"] for r in read_candidates(candidates)] == [r["id"] for r in rows]
    with caplog.at_level(logging.INFO, logger="hexainst"):
        picked = read_candidates(candidates, AnnotationConfig(sample=2, seed=1))
    assert len(picked) == 2 and {r["id"].split("-")[1] for r in picked} == {"nat", "syn"}  # one of each cell
    assert "round size: 2 candidates (seed 1)" in caplog.text


def test_read_candidates_refuses_an_id_given_twice(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    twice = Candidates(rows=(_rows_file(first, [nat("math", 0)]), _rows_file(second, [nat("math", 0)])))
    with pytest.raises(UserError, match="the candidates given"):
        read_candidates(twice)


def test_export_checks_its_files_before_it_reads_the_round(tmp_path):
    """No round in the folder: a bad --out or --previous is what the error names (nothing was asked)."""
    config = AnnotationConfig(data_dir=tmp_path / "no-round")
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match="is a folder; name the validation file"):
        export(config, tmp_path / "folder")
    with pytest.raises(UserError, match="--previous .*: is a folder"):
        export(config, tmp_path / "v.json", previous=tmp_path / "folder")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="--save-exports .*: is a file"):
        export(config, tmp_path / "v.json", save_exports=tmp_path / "file")
    with pytest.raises(UserError, match="no annotation round here"):
        export(config, tmp_path / "v.json")
    assert not (tmp_path / "v.json").exists() and not config.data_dir.exists()


def test_export_result_counts_this_round_only():
    outcomes = [{"status": s} for s in ("accepted", "accepted", "revised", "rejected")]
    document = {"rounds": [{"round": 1}, {"round": 2}], "outcomes": [{"status": "rejected"}] + outcomes}
    result = ExportResult(out=Path("v.json"), document=document, outcomes=outcomes, adjudication=None,
                          previous={"rounds": [{"round": 1}], "outcomes": [{"status": "rejected"}]})
    assert result.round == 2
    assert result.counts() == {"accepted": 2, "revised": 1, "rejected": 1}


def test_stop_and_keep_serving_with_nothing_running(tmp_path):
    Session.create(tmp_path / "round", ACCOUNTS).save()
    assert stop(AnnotationConfig(data_dir=tmp_path / "round")) == []
    assert keep_serving([], detach=False) is None  # nothing started: nothing to serve, returns at once
