"""The annotation stage's entry points (``hexainst.annotation.round``) called as a library, without a server:
config in, result out, and every check before the round is touched."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
from annotation_helpers import ACCOUNTS, nat, syn

from hexainst.annotation.config import AnnotationConfig, Candidates
from hexainst.annotation.round import ExportResult, export, keep_serving, read_candidates, stop, up
from hexainst.annotation.session import Session
from hexainst.kernel.errors import UserError
from hexainst.kernel.settings import SettingError


def _rows_file(folder: Path, rows) -> Path:
    path = folder / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_read_candidates_needs_a_source():
    assert not Candidates().given
    with pytest.raises(UserError, match=r"^name the candidates: .* \(Candidates: release, pools or rows\)$"):
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


def _setting_error(call, setting: str, problem: str) -> None:
    """``call()`` raises a :class:`SettingError` that names ``setting`` (as a Python caller knows it, never a flag)."""
    with pytest.raises(SettingError) as info:
        call()
    assert info.value.setting == setting and str(info.value) == f"{setting} {info.value.problem}"
    assert problem in info.value.problem and "--" not in str(info.value), str(info.value)


def test_export_checks_its_files_before_it_reads_the_round(tmp_path):
    """No round in the folder: a bad out, previous or save_exports is what the error names (nothing was asked),
    by the setting's name: the command line prints its flag instead (tests/annotation/test_cli_offline.py)."""
    config = AnnotationConfig(data_dir=tmp_path / "no-round", out=tmp_path / "v.json")
    (tmp_path / "folder").mkdir()
    _setting_error(lambda: export(AnnotationConfig(data_dir=config.data_dir)), "out", "must name the validation file")
    _setting_error(lambda: export(replace(config, out=tmp_path / "folder")), "out",
                   f"{tmp_path / 'folder'}: is a folder; name the validation file")
    _setting_error(lambda: export(replace(config, out=tmp_path / "no" / "v.json")), "out", "does not exist")
    _setting_error(lambda: export(replace(config, previous=tmp_path / "folder")), "previous",
                   f"{tmp_path / 'folder'}: is a folder")
    (tmp_path / "file").write_text("x")
    _setting_error(lambda: export(replace(config, save_exports=tmp_path / "file")), "save_exports",
                   f"{tmp_path / 'file'}: is a file")
    _setting_error(lambda: export(replace(config, out=tmp_path / "file")), "out", "exists and is not a validation file")
    with pytest.raises(UserError, match="no annotation round here"):
        export(config)
    assert not (tmp_path / "v.json").exists() and not config.data_dir.exists()


def test_read_candidates_names_the_release_setting(tmp_path):
    _setting_error(lambda: read_candidates(Candidates(release=tmp_path / "none")), "release",
                   f"{tmp_path / 'none'}: no such release folder")
    # up(config): the candidates are part of the config, checked before any server or folder is made
    config = AnnotationConfig(data_dir=tmp_path / "round", candidates=Candidates(release=tmp_path / "none"))
    _setting_error(lambda: up(config), "release", "no such release folder")
    assert not config.data_dir.exists()


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
