"""The alteration demo's chain on a tiny model: rows from a mirror folder, tuned + control fine-tunes,
evaluation, three recorded stores, two --compare analyses with --length-matched, and the report."""

from __future__ import annotations

import json

import pytest

from hexainst.analysis.finetune import fine_tune
from hexainst.analysis.finetune.data import FinetuneDataError, load_split
from hexainst.analysis.finetune.report import evaluate_pair, write_alteration_report
from hexainst.analysis.recording import record
from hexainst.analysis.recording.testing import make_rows
from hexainst.cli import main
from hexainst.kernel.errors import UserError
from hexainst.kernel.release import read_release_rows

# slow: fine-tunes a tiny model per arm and records it (40 s of CPU; 30 min under a load of 8 on 2 cores)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CATS = ["classification", "code", "generalqa", "generation", "math", "summarization"]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory, rows_factory):
    """A mirror folder with the recipe's file: made-up rows plus one row whose instruction is in the release."""
    folder = tmp_path_factory.mktemp("mirror")
    rows = rows_factory(260, seed=5)
    in_release = read_release_rows()[0]["instruction"]
    rows.insert(7, {"instruction": in_release.upper(), "input": "", "output": "the answer is code"})
    path = folder / "alpaca" / "alpaca_first4000.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def pair(tiny_folder, mirror, recipe_factory, tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    recipe = recipe_factory(tiny_folder)
    done = {v: fine_tune(recipe, v, sources=mirror, root=root, progress=False) for v in ("tuned", "control")}
    return recipe, root, done


@pytest.fixture(scope="module")
def evaluation(pair, mirror, tmp_path_factory):
    recipe, root, _ = pair
    out = tmp_path_factory.mktemp("eval") / "evaluation.json"
    doc = evaluate_pair(recipe, out, sources=mirror, root=root, progress=False)
    return out, doc


def test_release_instructions_are_left_out(pair, mirror):
    recipe, _, done = pair
    split = load_split(recipe, mirror)
    assert split.n_excluded == 1  # compared case-insensitively, like the builders' duplicate key
    assert split.summary() == done["tuned"].manifest["rows"] == {"read": 261, "excluded_in_release": 1,
                                                                  "train": 244, "eval": 16}
    release = {r["instruction"].casefold() for r in read_release_rows()}
    assert not any(r["instruction"].casefold() in release for r in split.train + split.eval)


def test_missing_mirror_is_one_clear_error(tiny_folder, recipe_factory, tmp_path, monkeypatch):
    monkeypatch.delenv("HEXAINST_SOURCES", raising=False)
    with pytest.raises(FinetuneDataError, match="sources is not set"):
        load_split(recipe_factory(tiny_folder))
    with pytest.raises(FinetuneDataError, match="not found"):
        load_split(recipe_factory(tiny_folder), tmp_path)


def test_evaluation_shows_what_each_fine_tune_learned(evaluation):
    path, doc = evaluation
    assert json.loads(path.read_text()) == doc
    nll = doc["nll"]
    # The tuned model learned to answer the instruction; the control learned the responses alone.
    assert nll["tuned"]["instruction"]["nll_per_token"] < 0.6 * nll["base"]["instruction"]["nll_per_token"]
    assert nll["control"]["none"]["nll_per_token"] < 0.8 * nll["base"]["none"]["nll_per_token"]
    assert nll["tuned"]["instruction_benefit"] > nll["control"]["instruction_benefit"]
    assert doc["differences"]["tuned - base (instruction)"]["ci_high"] < 0
    assert [set(g) for g in doc["greedy"]] == [{"instruction", "input", "reference", "base", "tuned", "control"}] * 2
    assert doc["training"]["tuned"]["steps"] == doc["training"]["control"]["steps"] == 40


def test_report_from_the_chain(pair, evaluation, tmp_path):
    _, _, done = pair
    rows = make_rows(48, seed=3)
    stores = {}
    for name, model in (("base", None), ("tuned", done["tuned"].path), ("control", done["control"].path)):
        src = str(model) if model else str(pair[0].model)
        stores[name] = record(src, rows, tmp_path / "stores" / name, batch_size=8, with_sums=True, progress=False)
    fast = ["--permutations", "20", "--sweep-permutations", "20", "--bootstrap", "20", "--sweep-eps", "0.05",
            "--eps", "0.05", "--quiet", "--length-matched", "--length-strata", "3"]
    for v in ("tuned", "control"):
        assert main(["analyze", "--store", str(tmp_path / "stores" / "base"), "--compare",
                     str(tmp_path / "stores" / v), "--out", str(tmp_path / "analysis" / v), *fast]) == 0
    assert main(["analyze", "--store", str(tmp_path / "stores" / "base"), "--out", str(tmp_path / "single"),
                 "--no-save-sets", *fast]) == 0
    out = tmp_path / "report"
    data = write_alteration_report(out, evaluation=evaluation[0], tuned=tmp_path / "analysis" / "tuned",
                                   control=tmp_path / "analysis" / "control", second=tmp_path / "single",
                                   second_name="second", first=tmp_path / "single", n_permutations=50)
    # The paired means are the two analyses' Table 1 (computed there from the stores, here from saved sets).
    for v in ("tuned", "control"):
        table1 = json.loads((tmp_path / "analysis" / v / "results.json").read_text())["alteration"]["table1_jaccard"]
        assert data["contrast"]["paired"][v] == pytest.approx([table1[c]["mean"] for c in CATS])
    assert set(data["findings"]) == {"base", "tuned", "control", "second"}
    assert data["findings"]["tuned"]["length_matched"]["n_strata"] <= 3
    # The base's own single-model analysis of the same store agrees exactly with the pairs' base.
    assert data["findings"]["base"]["single_model_analysis"]["max_abs_difference"] == 0
    layers = data["findings"]["base"]["layers"]
    assert layers["shape"] in {"U (low in the middle)", "inverted U (high in the middle)", "falling", "rising"}
    assert layers["u_shape"] == (layers["middle"] < min(layers["early"], layers["late"]))
    report = (out / "report.md").read_text()
    for heading in ("## Summary", "## 1. The pair", "## 2. Alteration", "## 3. Length-matched",
                    "## 4. A second model: second", "## 5. The paper's claims"):
        assert heading in report
    for fig in ("training_loss", "table1_tuned_vs_control", "fig5_base_tuned_control", "length_matched"):
        assert (out / "figures" / f"{fig}.png").is_file() and (out / "figures" / f"{fig}.svg").is_file()
    assert (out / "base-vs-tuned" / "report.md").is_file() and (out / "base-vs-control" / "figures").is_dir()
    assert not list(out.rglob("*.npz")), "ISN sets stay in the analyses, not in the report folder"
    assert json.loads((out / "results.json").read_text())["table1"]["overall"]["tuned"] == pytest.approx(
        json.loads((tmp_path / "analysis" / "tuned" / "results.json").read_text())["alteration"]["table1_overall"])
    with pytest.raises(UserError, match="not a base vs fine-tuned analysis"):
        write_alteration_report(tmp_path / "bad", evaluation=evaluation[0], tuned=tmp_path / "single",
                                control=tmp_path / "analysis" / "control")
    assert not (tmp_path / "bad").exists()


def test_evaluation_is_kept_when_nothing_changed(pair, evaluation, mirror, recipe_factory, tiny_folder):
    recipe, root, _ = pair
    path, doc = evaluation
    before = path.stat().st_mtime_ns
    assert evaluate_pair(recipe, path, sources=mirror, root=root, progress=False) == doc
    assert path.stat().st_mtime_ns == before
    # Another recipe (other steps) has no finished fine-tunes: a clear error, the old file kept.
    with pytest.raises(UserError, match="fine-tune tuned, control first"):
        evaluate_pair(recipe_factory(tiny_folder, steps=41), path, sources=mirror, root=root, progress=False)
    assert path.stat().st_mtime_ns == before


def test_report_refuses_or_skips_analyses_of_other_instructions(pair, evaluation, tmp_path):
    _, _, done = pair
    fast = ["--permutations", "10", "--sweep-permutations", "10", "--bootstrap", "10", "--sweep-eps", "0.05",
            "--eps", "0.05", "--quiet"]
    for name, rows in (("a", make_rows(36, seed=3)), ("b", make_rows(30, seed=3))):
        record(str(pair[0].model), rows, tmp_path / name / "base", batch_size=8, progress=False)
        record(str(done["tuned"].path), rows, tmp_path / name / "tuned", batch_size=8, progress=False)
        assert main(["analyze", "--store", str(tmp_path / name / "base"), "--compare", str(tmp_path / name / "tuned"),
                     "--out", str(tmp_path / name / "pair"), *fast]) == 0
        assert main(["analyze", "--store", str(tmp_path / name / "base"), "--out", str(tmp_path / name / "single"),
                     "--no-save-sets", *fast]) == 0
    a = tmp_path / "a"
    # A single-model analysis of other instructions as --first: left out, and the report says so.
    data = write_alteration_report(tmp_path / "r1", evaluation=evaluation[0], tuned=a / "pair", control=a / "pair",
                                   first=tmp_path / "b" / "single", n_permutations=10)
    assert "another release" in data["analyses"]["skipped"]["first"]
    assert "single_model_analysis" not in data["findings"]["base"]
    assert "another release); not used." in (tmp_path / "r1" / "report.md").read_text()
    # ... as --second, or a pair of other instructions: refused.
    with pytest.raises(UserError, match="record it again"):
        write_alteration_report(tmp_path / "r2", evaluation=evaluation[0], tuned=a / "pair", control=a / "pair",
                                second=tmp_path / "b" / "single", n_permutations=10)
    with pytest.raises(UserError, match="different instructions"):
        write_alteration_report(tmp_path / "r3", evaluation=evaluation[0], tuned=a / "pair",
                                control=tmp_path / "b" / "pair", n_permutations=10)
