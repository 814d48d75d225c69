"""analyze and baseline on bad input and faults: one line, exit 2, nothing that existed changed.

Each case breaks something in a workspace (two comparable stores, an MoE store, an earlier report,
a rows file, a user's own folder), runs the command line in-process and asserts the exit status,
the one error line, and that every file of the workspace that existed before is byte-identical
after. Two more tests interrupt a real run and check the previous report survives whole.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from workspace_files import edit_bytes, snapshot

from hexainst.cli import main

QUICK = ["--permutations", "20", "--sweep-permutations", "5", "--bootstrap", "10", "--sweep-eps", "0.05",
         "--eps", "0.05", "--quiet"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_stores", Path(__file__).with_name("conftest.py"))
    stores = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stores)
    ws = tmp_path_factory.mktemp("ws")
    stores.make_dense_store(ws / "base", seed=1, model="tiny-base")
    stores.make_dense_store(ws / "ft", seed=2, model="tiny-chat")
    stores.make_dense_store(ws / "other-tok", seed=3, tokenizer_sha="tok-b")
    stores.make_dense_store(ws / "no-sums", seed=4, with_sums=False)
    stores.make_moe_store(ws / "moe", seed=1)
    stores.make_dense_store(ws / "rel-model", seed=5, model="./models/tiny")  # an old store's relative model path
    stores.make_dense_store(ws / "base-texts", seed=1, texts=True)
    stores.make_dense_store(ws / "ft-edited", seed=2, model="tiny-chat", texts=True, edited=("math-003",))
    assert main(["analyze", "--store", str(ws / "base"), "--out", str(ws / "report")] + QUICK) == 0
    (ws / "mine" / "data").mkdir(parents=True)
    (ws / "mine" / "README.md").write_text("# my notes\n")
    (ws / "mine" / "data" / "important.csv").write_text("a,b\n1,2\n")
    (ws / "a-file.txt").write_text("not a folder\n")
    (ws / "rows.jsonl").write_text("".join(json.dumps({"id": i, "category": c, "instruction": f"text {i}"}) + "\n"
                                           for i, c in (("code-000", "code"), ("math-000", "math"))))
    (ws / "pairs.json").write_text(json.dumps({"format": "hexainst-model-pairs", "format_version": 1, "pairs": [
        {"name": "tiny", "base": "someone/tiny-llama", "fine_tuned": "someone/tiny-llama-chat"}]}))
    return ws


@pytest.fixture
def ws(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ws"
    shutil.copytree(pristine, copy)
    return copy


@dataclass
class Case:
    id: str
    argv: list[str]
    message: str
    setup: Callable[[Path], None] = lambda ws: None
    usage: bool = False  # an argparse error (its usage line comes first)


AN = ["analyze", "--store", "{ws}/base"]
CASES = [
    # --out never replaces an input or a stranger's folder
    Case("out-is-the-store", AN + ["--out", "{ws}/base"], "it holds this command's input {ws}/base"),
    Case("out-holds-the-store", AN + ["--out", "{ws}"], "it holds this command's input {ws}/base"),
    Case("out-inside-the-store", AN + ["--out", "{ws}/base/report"], "lies inside this command's input {ws}/base"),
    Case("out-is-the-compared-store", AN + ["--compare", "{ws}/ft", "--out", "{ws}/ft"],
         "it holds this command's input {ws}/ft"),
    Case("out-is-a-users-folder", AN + ["--out", "{ws}/mine"], "was not written by hexainst"),
    Case("out-is-a-file", AN + ["--out", "{ws}/a-file.txt"], "is a file, not a folder"),
    Case("out-is-another-store", AN + ["--out", "{ws}/moe"], "holds a 'activation store' output, not a 'analysis report'"),
    Case("out-holds-the-causal-rows", AN + ["--causal", "--rows", "{ws}/rows.jsonl", "--out", "{ws}"],
         "it holds this command's input"),
    Case("out-report-edited-by-the-user", AN + ["--out", "{ws}/report"],
         "--out {ws}/report: report.md was edited since hexainst wrote it; a new report there would replace the edit",
         lambda ws: (ws / "report" / "report.md").write_text((ws / "report" / "report.md").read_text()
                                                             + "\nMy reading: the math block is tokenisation.\n")),
    Case("out-table-edited-by-the-user", AN + ["--out", "{ws}/report"], "was edited since hexainst wrote it",
         lambda ws: next((ws / "report" / "tables").glob("*.csv")).write_text("mine\n")),
    # numbers out of range
    Case("eps-0", AN + ["--out", "{ws}/o", "--eps", "0"], "argument --eps: must be in (0, 1), got 0.0", usage=True),
    Case("eps-above-1", AN + ["--out", "{ws}/o", "--eps", "1.5"], "argument --eps: must be in (0, 1), got 1.5", usage=True),
    Case("eps-negative", AN + ["--out", "{ws}/o", "--eps=-0.01"], "argument --eps: must be in (0, 1)", usage=True),
    Case("eps-not-a-number", AN + ["--out", "{ws}/o", "--eps", "one"], "argument --eps: expected a number, got 'one'", usage=True),
    Case("sweep-eps-out-of-range", AN + ["--out", "{ws}/o", "--sweep-eps", "0.01,2"], "argument --sweep-eps: must be in (0, 1), got 2.0",
         usage=True),
    Case("sweep-eps-not-numbers", AN + ["--out", "{ws}/o", "--sweep-eps", "a,b"], "argument --sweep-eps: expected a number, got 'a'",
         usage=True),
    Case("permutations-0", AN + ["--out", "{ws}/o", "--permutations", "0"], "argument --permutations: must be >= 1, got 0",
         usage=True),
    Case("sweep-permutations-0", AN + ["--out", "{ws}/o", "--sweep-permutations", "0"], "argument --sweep-permutations: must be",
         usage=True),
    Case("bootstrap-0", AN + ["--out", "{ws}/o", "--bootstrap", "0"], "argument --bootstrap: must be >= 1, got 0", usage=True),
    Case("sample-0", AN + ["--out", "{ws}/o", "--sample", "0"], "argument --sample: must be >= 1, got 0", usage=True),
    Case("seed-negative", AN + ["--out", "{ws}/o", "--seed", "-1"], "argument --seed: must be >= 0, got -1", usage=True),
    Case("causal-per-category-0", AN + ["--out", "{ws}/o", "--causal", "--causal-per-category", "0"],
         "argument --causal-per-category: must be >= 1, got 0", usage=True),
    Case("causal-max-tokens-negative", AN + ["--out", "{ws}/o", "--causal", "--causal-max-tokens", "-2"],
         "argument --causal-max-tokens: must be >= 0, got -2", usage=True),
    # stores
    Case("store-missing", ["analyze", "--store", "{ws}/nope", "--out", "{ws}/o"], "activation store {ws}/nope not found"),
    Case("store-is-a-users-folder", ["analyze", "--store", "{ws}/mine", "--out", "{ws}/o"],
         "mine is not an activation store (no header.json)"),
    Case("store-truncated-shard", AN + ["--out", "{ws}/o"], "shard shards/00001.npz (rows 16..31) does not match",
         edit_bytes("base/shards/00001.npz", lambda b: b[: len(b) // 3])),
    Case("store-header-broken", AN + ["--out", "{ws}/o"], "header.json line 3: the store header is not JSON",
         edit_bytes("base/header.json", lambda b: b[:30])),
    Case("store-header-not-utf8", AN + ["--out", "{ws}/o"], "the store header is not UTF-8",
         edit_bytes("base/header.json", lambda b: b"\xfe" + b)),
    Case("compare-other-tokenizer", AN + ["--compare", "{ws}/other-tok", "--out", "{ws}/o"], "different tokenizers"),
    Case("compare-other-texts", ["analyze", "--store", "{ws}/base-texts", "--compare", "{ws}/ft-edited", "--out",
                                 "{ws}/o"], "were recorded from different texts of 1 instruction(s) with the same id "
                                            "(first: 'math-003')"),
    Case("compare-missing", AN + ["--compare", "{ws}/nope", "--out", "{ws}/o"], "activation store {ws}/nope not found"),
    Case("venn-id-unknown", AN + ["--compare", "{ws}/ft", "--out", "{ws}/o", "--venn-id", "nope-1"],
         "--venn-id not among the analysed instructions: nope-1"),
    Case("exact-k-without-sums", ["analyze", "--store", "{ws}/no-sums", "--out", "{ws}/o", "--tie-rule", "exact-k"],
         "--tie-rule 'exact-k' needs activation sums, but store {ws}/no-sums has none"),
    Case("causal-on-moe", ["analyze", "--store", "{ws}/moe", "--out", "{ws}/o", "--causal", "--causal-model", "x"],
         "--causal supports dense models only"),
    Case("causal-model-a-relative-path", ["analyze", "--store", "{ws}/rel-model", "--out", "{ws}/o", "--causal"],
         "--causal-model not given, and the store header names the model './models/tiny', a path relative to where "
         "the store was recorded"),
    Case("untrained-not-random-init", AN + ["--untrained", "{ws}/ft", "--out", "{ws}/o"],
         "--untrained {ws}/ft: not an untrained store (its header records no random_init seed)"),
    Case("causal-rows-missing", AN + ["--out", "{ws}/o", "--causal", "--rows", "{ws}/nope.jsonl"],
         "nope.jsonl: cannot read the rows file"),
    Case("causal-rows-no-instruction", AN + ["--out", "{ws}/o", "--causal", "--rows", "{ws}/rows.jsonl"],
         "row 2 (math-000) has no instruction", edit_bytes("rows.jsonl", lambda b: b.replace(b'"instruction": "text math', b'"text": "x'))),
    # baseline
    Case("baseline-unknown-pair", ["baseline", "nope", "--pairs-file", "{ws}/pairs.json", "--out", "{ws}/b"],
         "unknown pair 'nope'; the pairs file lists: tiny"),
    Case("baseline-pairs-file-broken", ["baseline", "tiny", "--pairs-file", "{ws}/pairs.json", "--out", "{ws}/b"],
         "pairs.json: invalid JSON", edit_bytes("pairs.json", lambda b: b[:20])),
    Case("baseline-out-is-a-users-folder", ["baseline", "tiny", "--pairs-file", "{ws}/pairs.json", "--out", "{ws}/mine"],
         "was not written by hexainst"),
    Case("baseline-out-holds-the-rows", ["baseline", "tiny", "--pairs-file", "{ws}/pairs.json", "--rows",
                                         "{ws}/rows.jsonl", "--out", "{ws}"], "it holds this command's input"),
    Case("baseline-model-root-a-file", ["baseline", "tiny", "--pairs-file", "{ws}/pairs.json", "--model-root",
                                        "{ws}/a-file.txt", "--out", "{ws}/b"],
         "--model-root {ws}/a-file.txt: is a file, not a folder holding the models"),
    Case("baseline-model-root-missing", ["baseline", "tiny", "--pairs-file", "{ws}/pairs.json", "--model-root",
                                         "{ws}/no-models", "--out", "{ws}/b"], "--model-root {ws}/no-models: no such folder"),
    Case("baseline-batch-size-0", ["baseline", "tiny", "--pairs-file", "{ws}/pairs.json", "--out", "{ws}/b",
                                   "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0",
         usage=True),
    Case("baseline-per-category-0", ["baseline", "tiny", "--pairs-file", "{ws}/pairs.json", "--rows", "{ws}/rows.jsonl",
                                     "--out", "{ws}/b", "--per-category", "0"], "argument --per-category: must be >= 1, got 0",
         usage=True),
    Case("baseline-eps-1", ["baseline", "tiny", "--pairs-file", "{ws}/pairs.json", "--out", "{ws}/b", "--eps", "1"],
         "argument --eps: must be in (0, 1), got 1.0", usage=True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, ws: Path, capsys) -> None:
    case.setup(ws)
    before = snapshot(ws)
    argv = [a.format(ws=ws) for a in case.argv]
    if case.usage:
        with pytest.raises(SystemExit) as info:
            main(argv)
        code = info.value.code
    else:
        code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("hexainst ")]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    real = ws.resolve()
    assert case.message.format(ws=real) in lines[0] or case.message.format(ws=ws) in lines[0], lines[0]
    assert snapshot(ws) == before  # nothing that existed was changed or removed
    assert not list(ws.glob(".*.new-*"))  # no staging folder left behind


def test_a_python_caller_gets_the_checks_of_the_command_line(ws: Path, monkeypatch) -> None:
    """analysis.run.run and analysis.baseline.run check what the command line checks, before any work; their
    errors name the setting (the command line names its flag), and nothing in the workspace changes."""
    from hexainst.analysis import baseline
    from hexainst.analysis.config import AnalysisConfig, AnalyzeConfig, BaselineConfig
    from hexainst.analysis.data import open_store
    from hexainst.analysis.run import run
    from hexainst.kernel.settings import SettingError

    monkeypatch.delenv("HEXAINST_SOURCES", raising=False)
    store = open_store(ws / "base")
    (ws / "all-rows.jsonl").write_text("".join(json.dumps({"id": i, "category": c, "instruction": f"text {i}"}) + "\n"
                                               for i, c in zip(store.ids, store.categories)))
    before = snapshot(ws)
    cases = [
        (AnalyzeConfig(store=ws / "moe", out=ws / "o", causal=True, causal_model="x"), "causal",
         "supports dense models only"),
        (AnalyzeConfig(store=ws / "rel-model", out=ws / "o", causal=True), "causal_model",
         "a path relative to where the store was recorded"),
        (AnalyzeConfig(store=ws / "base", out=ws / "o", untrained=(ws / "ft",)), "untrained", "not an untrained store"),
        (AnalyzeConfig(store=ws / "no-sums", out=ws / "o", analysis=AnalysisConfig(tie_rule="exact-k")), "tie_rule",
         "'exact-k' needs activation sums"),
        (AnalyzeConfig(store=ws / "base", out=ws / "o", causal=True, sources=ws / "a-file.txt",
                       rows=ws / "all-rows.jsonl", lexical=False), "sources", "not a folder"),
        (BaselineConfig(pair="tiny", out=ws / "b", pairs_file=ws / "pairs.json", model_root=ws / "no-models"),
         "model_root", "no such folder"),
    ]
    for config, setting, words in cases:
        with pytest.raises(SettingError) as info:
            (baseline.run if isinstance(config, BaselineConfig) else run)(config)
        assert info.value.setting == setting and words in str(info.value), str(info.value)
        assert not str(info.value).startswith("--")
    with pytest.raises(SettingError, match="per_category must be >= 1, got 0"):
        BaselineConfig(pair="tiny", out=ws / "b", per_category=0)
    with pytest.raises(baseline.PairsError, match="unknown pair 'nope'"):
        baseline.run(BaselineConfig(pair="nope", out=ws / "b", pairs_file=ws / "pairs.json"))
    assert snapshot(ws) == before and not (ws / "o").exists() and not (ws / "b").exists()


def test_rerun_replaces_its_own_report(ws: Path, capsys) -> None:
    old = (ws / "report" / "results.json").read_text()
    assert main(["analyze", "--store", str(ws / "base"), "--out", str(ws / "report"), "--note", "second"] + QUICK) == 0
    new = json.loads((ws / "report" / "results.json").read_text())
    assert new["parameters"]["note"] == "second" and json.loads(old)["parameters"]["note"] == ""
    assert json.loads((ws / "report" / ".hexainst-output.json").read_text())["kind"] == "analysis report"


def test_an_empty_folder_is_taken(ws: Path) -> None:
    (ws / "fresh").mkdir()
    assert main(["analyze", "--store", str(ws / "base"), "--out", str(ws / "fresh")] + QUICK) == 0
    assert (ws / "fresh" / "report.md").is_file()


@pytest.mark.parametrize("when", ["computing", "writing"])
def test_an_interrupted_run_leaves_the_previous_report(ws: Path, when: str) -> None:
    """SIGINT during the computation or while the new folder is being written: the old report is untouched."""
    before = snapshot(ws / "report")
    argv = [sys.executable, "-m", "hexainst.cli", "analyze", "--store", str(ws / "base"), "--compare", str(ws / "ft"),
            "--out", str(ws / "report"), "--quiet", "--eps", "0.05", "--sweep-eps", "0.05"]
    argv += ["--permutations", "200000"] if when == "computing" else ["--permutations", "20", "--bootstrap", "10",
                                                                      "--sweep-permutations", "5"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    start = time.monotonic()
    deadline = start + 120
    staged: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        staged = list(ws.glob(".report.new-*"))
        if when == "writing" and staged and list(staged[0].rglob("*.png")):
            break
        if when == "computing" and time.monotonic() > start + 6:  # imports done, permutations running
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()}"
    if when == "writing":
        assert staged, "the new report was never staged"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().endswith("interrupted")
    assert snapshot(ws / "report") == before
    assert not list(ws.glob(".report.*"))  # the staged folder was removed


def test_a_store_without_weights_and_texts_is_analysed_and_said_unchecked(ws: Path, capsys) -> None:
    """A store whose header lacks the weights fingerprint and text hashes (an old store) still reads; the run
    says, after its report, that what made it cannot be checked."""
    assert main(["analyze", "--store", str(ws / "base"), "--out", str(ws / "o")] + QUICK) == 0
    err = capsys.readouterr().err
    assert f"{ws / 'base'}: its header does not record the weights or the texts it was made from" in err
    assert (ws / "o" / "report.md").is_file()


def test_a_second_analyze_onto_the_same_report_gets_one_line(ws: Path, capsys) -> None:
    """A second writer on one report folder stops at once with one line; the report is as it was."""
    code = ("import sys, time\nfrom hexainst.kernel.output_lock import writer_lock\n"
            "with writer_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(ws / "report")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(ws)
        assert main(["analyze", "--store", str(ws / "base"), "--out", str(ws / "report")] + QUICK) == 2
        err = capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    lines = [line for line in err.splitlines() if line.startswith("hexainst ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"{(ws / 'report').resolve()}: another hexainst run is writing this analysis report" in lines[0]
    assert snapshot(ws) == before


def test_a_full_disk_under_analyze_is_one_line_and_keeps_the_earlier_report(ws: Path, small_disk: Path,
                                                                             capsys) -> None:
    """The report's device is full (a real 2 MB tmpfs, filled): one line naming the folder; the earlier report
    is as it was and no staged folder is left."""
    from workspace_files import fill_disk

    shutil.copytree(ws / "report", small_disk / "report")
    filler = fill_disk(small_disk)
    before, disk_before = snapshot(ws), snapshot(small_disk)
    assert main(["analyze", "--store", str(ws / "base"), "--out", str(small_disk / "report")] + QUICK) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("hexainst ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"{small_disk / 'report'}: no space left on the device while writing the analysis report" in lines[0]
    assert snapshot(ws) == before and snapshot(small_disk) == disk_before
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "report"]
    filler.unlink()
    assert main(["analyze", "--store", str(ws / "base"), "--out", str(small_disk / "report")] + QUICK) == 0
