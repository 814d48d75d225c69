"""The Hub path, with the Hub replaced at its edge (huggingface_hub and datasets.load_dataset).

The Hub cannot be reached from here, so ``HfApi.dataset_info`` answers with a fixed commit and
``datasets.load_dataset(<hub id>, ...)`` serves made-up rows of the same columns (through the
real ``datasets`` json loader, as an IterableDataset when streaming). Everything between those
two library calls is the builders' real code.
"""

from __future__ import annotations

import json
import types
from importlib import resources
from pathlib import Path

import pytest
from stage_runs import natural_pools

from hexainst.builders.natural import LOCK_FILE, pool_file
from hexainst.kernel.errors import UserError

COMMITS = {
    "DataProvenanceInitiative/flan2021_submix_original": "f" * 40,
    "openai/openai_humaneval": "1" * 40,
    "mandarjoshi90/trivia_qa": "2" * 40,
    "tatsu-lab/alpaca": "3" * 40,
    "HuggingFaceH4/MATH-500": "4" * 40,
}


@pytest.fixture()
def fake_hub(monkeypatch, mini_mirror: Path):
    import datasets
    import huggingface_hub

    files = {
        "DataProvenanceInitiative/flan2021_submix_original": mini_mirror / "flan" / "made.jsonl",
        "openai/openai_humaneval": mini_mirror / "humaneval" / "HumanEval.jsonl.gz",
        "mandarjoshi90/trivia_qa": mini_mirror / "triviaqa" / "validation_subset.jsonl",
        "tatsu-lab/alpaca": mini_mirror / "alpaca" / "alpaca_made.jsonl",
        "HuggingFaceH4/MATH-500": mini_mirror / "math500" / "test.jsonl",
    }
    calls: list[tuple] = []
    real_load = datasets.load_dataset

    def dataset_info(self, repo_id, *, revision=None, **kwargs):
        calls.append(("info", repo_id, revision))
        return types.SimpleNamespace(sha=revision or COMMITS[repo_id])

    def load_dataset(path, name=None, *, split=None, revision=None, streaming=False, **kwargs):
        if path == "json":
            return real_load(path, name, split=split, **kwargs)
        calls.append(("load", path, name, split, revision, streaming))
        ds = real_load("json", data_files={split: str(files[path])}, split=split)
        return ds.to_iterable_dataset() if streaming else ds

    monkeypatch.delenv("HEXAINST_SOURCES", raising=False)
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", dataset_info)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hub_build_records_commits_and_streams_flan(fake_hub, tmp_path: Path, mini_expected):
    out = tmp_path / "out"
    report = natural_pools(out, sources_dir=None, progress=False)
    assert report["mode"] == "hub"
    assert {c: report["cells"][c]["candidates"] for c in mini_expected} == mini_expected
    loads = {c[1]: c for c in fake_hub if c[0] == "load"}
    assert loads["DataProvenanceInitiative/flan2021_submix_original"][5] is True  # streamed
    # TriviaQA is streamed too: only the validation split is read, not the large train split.
    assert loads["mandarjoshi90/trivia_qa"][2:6] == ("unfiltered.nocontext", "validation", "2" * 40, True)
    assert loads["openai/openai_humaneval"][5] is False
    lock = json.loads((out / LOCK_FILE).read_text())
    for entry in lock["sources"].values():
        assert entry["mode"] == "hub"
        assert entry["revision"] == COMMITS[entry["dataset_id"]]
    rows = [json.loads(line) for line in (out / pool_file("classification")).read_text().splitlines()]
    assert {r["provenance"]["natural"]["revision"] for r in rows} == {"f" * 40}
    assert sorted(r["provenance"]["natural"]["row_id"] for r in rows) == ["0", "1", "2"]


def test_second_hub_build_reads_the_locked_commits(fake_hub, tmp_path: Path):
    first = tmp_path / "first"
    natural_pools(first, sources_dir=None, progress=False)
    fake_hub.clear()
    second = tmp_path / "second"
    locked = json.loads((first / LOCK_FILE).read_text())
    locked["sources"]["math500"]["revision"] = "9" * 40  # an older commit, pinned by hand
    lock_path = tmp_path / "lock.json"
    lock_path.write_text(json.dumps(locked))
    natural_pools(second, sources_dir=None, lock_file=lock_path, progress=False)
    infos = {c[1]: c[2] for c in fake_hub if c[0] == "info"}
    loads = {c[1]: c[4] for c in fake_hub if c[0] == "load"}
    assert infos["HuggingFaceH4/MATH-500"] == loads["HuggingFaceH4/MATH-500"] == "9" * 40
    assert loads["openai/openai_humaneval"] == "1" * 40
    assert json.loads((second / LOCK_FILE).read_text()) == locked


def test_streaming_stops_once_every_task_has_enough_rows(fake_hub, tmp_path: Path):
    data = json.loads(resources.files("hexainst.builders.natural").joinpath("sources.json").read_text("utf-8"))
    data["sources"][0]["hub"]["max_rows_per_task"] = 2
    data["sources"][0]["tasks"] = [t for t in data["sources"][0]["tasks"] if t["name"] == "ag_news_subset"]
    path = tmp_path / "sources.json"
    path.write_text(json.dumps(data))
    report = natural_pools(tmp_path / "out", sources_dir=None, progress=False, registry_file=path)
    assert report["sources"]["flan_classification"]["rows_read"] == 2
    assert report["sources"]["flan_summarization"]["rows_read"] == 7


def test_mirror_lock_used_for_a_hub_build_is_an_error(fake_hub, mini_mirror: Path, tmp_path: Path):
    first = tmp_path / "first"
    natural_pools(first, sources_dir=mini_mirror, progress=False)
    with pytest.raises(UserError, match="the lock records mirror files, but this build reads the Hub"):
        natural_pools(tmp_path / "second", sources_dir=None, lock_file=first / LOCK_FILE, progress=False)
    assert not (tmp_path / "second").exists()
