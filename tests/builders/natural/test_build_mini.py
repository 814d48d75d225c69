"""The natural build on a made-up mini mirror: outputs, report, lock, errors, missing sources."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from stage_runs import natural_pools

from hexainst.builders.natural import LOCK_FILE, REPORT_FILE, pool_file
from hexainst.builders.natural.registry import load_registry
from hexainst.kernel.errors import UserError
from hexainst.kernel.records import validate_rows
from hexainst.kernel.vocab import CATEGORIES


def read_pool(out: Path, category: str) -> list[dict]:
    return [json.loads(line) for line in (out / pool_file(category)).read_text("utf-8").splitlines()]


def test_pools_report_and_lock(mini_mirror: Path, tmp_path: Path, mini_expected: dict[str, int]):
    MINI_EXPECTED = mini_expected
    out = tmp_path / "out"
    report = natural_pools(out, sources_dir=mini_mirror, seed=0, progress=False)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([pool_file(c) for c in CATEGORIES] + [REPORT_FILE, LOCK_FILE, ".hexainst-output.json"])
    for category in CATEGORIES:
        rows = read_pool(out, category)
        validate_rows(rows, where=category)
        assert len(rows) == MINI_EXPECTED[category], category
        assert all(r["category"] == category and r["validation"]["status"] == "pending" for r in rows)
        cell = report["cells"][category]
        assert cell["candidates"] == MINI_EXPECTED[category]
        assert cell["shortfall"] == 130 - MINI_EXPECTED[category]
        assert str(130 - MINI_EXPECTED[category]) in cell["note"] and str(MINI_EXPECTED[category]) in cell["note"]
    assert report["short_cells"] == {c: 130 - n for c, n in MINI_EXPECTED.items()}
    assert json.loads((out / REPORT_FILE).read_text()) == report

    flan = report["sources"]["flan_classification"]
    assert flan["rows_read"] == 7
    assert flan["dropped"] == {"reversed_template": 1, "task_not_in_category": 3}
    assert report["sources"]["triviaqa"]["dropped"] == {"answer_in_question": 1}
    assert report["sources"]["alpaca"]["dropped"] == {"has_input": 1, "question": 1}
    for entry in report["sources"].values():
        assert entry["rows_read"] == entry["kept"] + sum(entry["dropped"].values())

    lock = json.loads((out / LOCK_FILE).read_text())
    assert set(lock["sources"]) == {s.name for s in load_registry().sources}
    import hashlib

    digest = "sha256:" + hashlib.sha256((mini_mirror / "math500" / "test.jsonl").read_bytes()).hexdigest()
    assert lock["sources"]["math500"]["files"] == {"math500/test.jsonl": digest}
    math_rows = read_pool(out, "math")
    assert {r["provenance"]["natural"]["revision"] for r in math_rows} == {digest}
    assert {r["provenance"]["natural"]["row_id"] for r in math_rows} == {"test/made/0.json", "test/made/1.json"}
    cls = read_pool(out, "classification")
    assert {r["provenance"]["natural"]["task_name"] for r in cls} == {"ag_news_subset:1.0.0"}
    assert all(r["provenance"]["natural"]["pattern_id"] == "flan.ag_news_subset.t0" for r in cls)
    assert all(r["instruction"].endswith("Options:\n- World\n- Sports\n- Business\n- Science/Tech") for r in cls)


def test_same_seed_same_bytes_other_seed_same_rows(mini_mirror: Path, tmp_path: Path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    natural_pools(a, sources_dir=mini_mirror, seed=0, progress=False)
    natural_pools(b, sources_dir=mini_mirror, seed=0, progress=False)
    natural_pools(c, sources_dir=mini_mirror, seed=7, progress=False)
    orders_differ = False
    for name in [pool_file(cat) for cat in CATEGORIES] + [LOCK_FILE, REPORT_FILE]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for cat in CATEGORIES:
        ids_a = [r["id"] for r in read_pool(a, cat)]
        ids_c = [r["id"] for r in read_pool(c, cat)]
        assert sorted(ids_a) == sorted(ids_c)
        orders_differ |= ids_a != ids_c
    assert orders_differ


def test_env_variable_points_at_the_mirror(mini_mirror: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HEXAINST_SOURCES", str(mini_mirror))
    report = natural_pools(tmp_path / "out", progress=False)
    assert report["mode"] == "mirror"
    assert report["cells"]["math"]["candidates"] == 2


def test_missing_source_does_not_stop_the_others(mini_mirror: Path, tmp_path: Path):
    shutil.rmtree(mini_mirror / "triviaqa")
    out = tmp_path / "out"
    report = natural_pools(out, sources_dir=mini_mirror, progress=False)
    assert report["sources"]["triviaqa"]["status"] == "missing"
    assert "triviaqa/*.jsonl" in report["sources"]["triviaqa"]["reason"]
    assert report["cells"]["generalqa"]["candidates"] == 0
    assert report["cells"]["generalqa"]["shortfall"] == 130
    assert "triviaqa missing" in report["cells"]["generalqa"]["note"]
    assert (out / pool_file("generalqa")).read_text() == ""
    assert len(read_pool(out, "math")) == 2
    assert "triviaqa" not in json.loads((out / LOCK_FILE).read_text())["sources"]


def test_a_source_gone_from_the_mirror_never_replaces_pools_built_with_it(mini_mirror: Path, tmp_path: Path):
    out = tmp_path / "out"
    natural_pools(out, sources_dir=mini_mirror, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert read_pool(out, "generalqa")
    shutil.rmtree(mini_mirror / "triviaqa")
    with pytest.raises(UserError, match=r"source\(s\) triviaqa could not be read .* earlier pools .* are kept"):
        natural_pools(out, sources_dir=mini_mirror, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists() or list(out.iterdir()) == []


def _rewrite(path: Path, transform) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in transform(rows)))


def test_missing_column_names_source_split_file_and_row(mini_mirror: Path, tmp_path: Path):
    def drop_task_name(rows):
        return [{k: v for k, v in r.items() if k != "task_name"} for r in rows]

    _rewrite(mini_mirror / "flan" / "made.jsonl", drop_task_name)
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        natural_pools(out, sources_dir=mini_mirror, progress=False)
    msg = str(err.value)
    assert "source 'flan_classification'" in msg and "split 'train'" in msg and "flan/made.jsonl" in msg
    assert "row 0" in msg and "missing column 'task_name'" in msg
    _assert_nothing_written(out)


def test_null_in_one_row_names_that_row(mini_mirror: Path, tmp_path: Path):
    def null_second(rows):
        rows[1]["problem"] = None
        return rows

    _rewrite(mini_mirror / "math500" / "test.jsonl", null_second)
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"source 'math500', split 'test', file math500/test.jsonl, row 1: column 'problem' is null"):
        natural_pools(out, sources_dir=mini_mirror, progress=False)
    _assert_nothing_written(out)


def test_empty_split_is_an_error(mini_mirror: Path, tmp_path: Path):
    (mini_mirror / "math500" / "test.jsonl").write_text("")
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"source 'math500', split 'test', file math500/test.jsonl: empty split"):
        natural_pools(out, sources_dir=mini_mirror, progress=False)
    _assert_nothing_written(out)


def test_malformed_json_names_the_row(mini_mirror: Path, tmp_path: Path):
    path = mini_mirror / "alpaca" / "alpaca_made.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:-5]
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"source 'alpaca', split 'train', file alpaca/alpaca_made.jsonl: row 2 \(line 3\): not valid JSON"):
        natural_pools(out, sources_dir=mini_mirror, progress=False)
    _assert_nothing_written(out)


def test_unreadable_gzip_is_an_error(mini_mirror: Path, tmp_path: Path):
    (mini_mirror / "humaneval" / "HumanEval.jsonl.gz").write_bytes(b"this is not gzip data\n")
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"source 'humaneval', split 'test', file humaneval/HumanEval.jsonl.gz: unreadable"):
        natural_pools(out, sources_dir=mini_mirror, progress=False)
    _assert_nothing_written(out)


def test_unknown_task_name_in_registry_stops_before_writing(mini_mirror: Path, tmp_path: Path):
    from importlib import resources

    data = json.loads(resources.files("hexainst.builders.natural").joinpath("sources.json").read_text("utf-8"))
    data["sources"][1]["tasks"].append({"name": "made_up_summaries", "license": {"id": "other", "note": "x"}})
    path = tmp_path / "sources.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "out"
    with pytest.raises(UserError, match="source 'flan_summarization': unknown FLAN task name 'made_up_summaries'"):
        natural_pools(out, sources_dir=mini_mirror, progress=False, registry_file=path)
    _assert_nothing_written(out)


def test_lock_reproduces_revisions_and_catches_changed_files(mini_mirror: Path, tmp_path: Path):
    first = tmp_path / "first"
    natural_pools(first, sources_dir=mini_mirror, progress=False)
    second = tmp_path / "second"
    natural_pools(second, sources_dir=mini_mirror, lock_file=first / LOCK_FILE, progress=False)
    assert (first / LOCK_FILE).read_bytes() == (second / LOCK_FILE).read_bytes()
    for cat in CATEGORIES:
        assert (first / pool_file(cat)).read_bytes() == (second / pool_file(cat)).read_bytes()

    with gzip.open(mini_mirror / "humaneval" / "HumanEval.jsonl.gz", "at") as fh:
        fh.write(json.dumps({"task_id": "Made/2", "prompt": 'def one():\n    """Return 1."""\n', "entry_point": "one",
                             "canonical_solution": "    return 1\n", "test": ""}) + "\n")
    third = tmp_path / "third"
    with pytest.raises(UserError, match=r"source 'humaneval': mirror file humaneval/HumanEval.jsonl.gz has "
                                        r"sha256:[0-9a-f]{64}, the lock .* records sha256:"):
        natural_pools(third, sources_dir=mini_mirror, lock_file=first / LOCK_FILE, progress=False)
    _assert_nothing_written(third)


def test_bad_lock_file_is_an_error(mini_mirror: Path, tmp_path: Path):
    bad = tmp_path / "lock.json"
    bad.write_text('{"version": 1, "sources": {"math500": {"mode": "tape"}}}')
    with pytest.raises(UserError, match="source 'math500': 'mode' must be"):
        natural_pools(tmp_path / "out", sources_dir=mini_mirror, lock_file=bad, progress=False)
    with pytest.raises(UserError, match=r"absent.json: cannot read the lock file \(No such file"):
        natural_pools(tmp_path / "out", sources_dir=mini_mirror, lock_file=tmp_path / "absent.json", progress=False)


def test_hub_unreachable_gives_a_clear_error_and_writes_nothing(tmp_path: Path, monkeypatch):
    # The Hub cannot be reached from here; offline mode makes that certain (and fast) anywhere.
    import huggingface_hub.constants

    monkeypatch.delenv("HEXAINST_SOURCES", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        natural_pools(out, sources_dir=None, progress=False)
    msg = str(err.value)
    assert msg.startswith("no natural source could be read")
    assert "'openai/openai_humaneval' on the Hugging Face Hub" in msg
    assert "--sources DIR or set HEXAINST_SOURCES" in msg
    _assert_nothing_written(out)


def test_sources_folder_that_does_not_exist(tmp_path: Path):
    with pytest.raises(UserError, match="does not exist"):
        natural_pools(tmp_path / "out", sources_dir=tmp_path / "nowhere", progress=False)


def test_cli_builds_and_reports_bad_input_in_one_line(mini_mirror: Path, tmp_path: Path, capsys):
    from hexainst.cli import main

    out = tmp_path / "out"
    assert main(["build", "natural", "--sources", str(mini_mirror), "--out", str(out), "--seed", "3", "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["candidates"]["math"] == 2
    assert (out / pool_file("math")).is_file()

    (mini_mirror / "math500" / "test.jsonl").write_text("{not json\n")
    assert main(["build", "natural", "--sources", str(mini_mirror), "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "source 'math500', split 'test', file math500/test.jsonl: row 0 (line 1): not valid JSON" in err
    assert not (tmp_path / "bad").exists()
