"""``hexainst finetune``: bad input is one clear line (exit 2), never a traceback; recipes are checked data."""

from __future__ import annotations

import json

import pytest

from hexainst.analysis.finetune import load_recipe
from hexainst.analysis.finetune.recipe import RecipeError, bundled_recipes
from hexainst.cli import main


def _run(argv, capsys):
    rc = main(argv)
    return rc, capsys.readouterr().err


def test_bundled_recipe_is_valid_and_fingerprints_differ_by_variant():
    assert "gemma3-270m-alpaca" in bundled_recipes()
    recipe = load_recipe()
    assert recipe.model == "gemma3-270m-gguf"
    assert recipe.training["seed"] == 0 and recipe.data["exclude_release"] is True
    assert recipe.fingerprint("tuned") != recipe.fingerprint("control")
    # The description and the evaluation settings do not change the weights, so not the fingerprint.
    doc = dict(recipe.doc, description="other words", evaluation=dict(recipe.evaluation, greedy=1))
    from hexainst.analysis.finetune.recipe import parse_recipe

    assert parse_recipe(doc).fingerprint("tuned") == recipe.fingerprint("tuned")
    assert recipe.with_overrides(steps=3).fingerprint("tuned") != recipe.fingerprint("tuned")


def test_unknown_recipe_and_bad_recipe_file(tmp_path, capsys):
    rc, err = _run(["finetune", "path", "--variant", "tuned", "--recipe", "no-such-recipe"], capsys)
    assert rc == 2 and "no bundled recipe 'no-such-recipe'" in err and "Traceback" not in err
    bad = dict(load_recipe().doc)
    bad["training"] = dict(bad["training"], learning_rate=-1)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    rc, err = _run(["finetune", "path", "--variant", "tuned", "--recipe", str(path)], capsys)
    assert rc == 2 and str(path) in err and "learning_rate" in err
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "missing.json")


def test_a_folder_given_as_recipe_is_named(tmp_path, capsys):
    rc, err = _run(["finetune", "path", "--variant", "tuned", "--recipe", str(tmp_path)], capsys)
    assert rc == 2 and f"recipe {tmp_path}: is a folder, not a recipe file" in err


def test_path_before_run_and_bad_steps(tmp_path, capsys, rows_factory):
    mirror = tmp_path / "mirror" / "alpaca" / "alpaca_first4000.jsonl"
    mirror.parent.mkdir(parents=True)
    mirror.write_text("".join(json.dumps(r) + "\n" for r in rows_factory(150)))
    rc, err = _run(["finetune", "path", "--variant", "control", "--root", str(tmp_path / "ft"),
                    "--sources", str(tmp_path / "mirror")], capsys)
    assert rc == 2 and "not fine-tuned yet" in err
    with pytest.raises(SystemExit) as stop:  # refused while parsing
        main(["finetune", "run", "--variant", "tuned", "--steps", "0", "--root", str(tmp_path)])
    assert stop.value.code == 2 and "argument --steps: must be >= 1, got 0" in capsys.readouterr().err


def test_run_without_a_mirror_names_the_option(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HEXAINST_SOURCES", raising=False)
    rc, err = _run(["finetune", "run", "--variant", "tuned", "--root", str(tmp_path)], capsys)
    assert rc == 2 and "--sources is not set" in err and "HEXAINST_SOURCES" in err
    assert not any(tmp_path.iterdir()), "nothing written before the rows are found"


def _evaluation_shaped(path):
    # an evaluation file of the design with no run scored yet (what 'finetune evaluate' writes before any run)
    from hexainst.analysis.finetune.design import FORMAT

    recipe = load_recipe().doc
    path.write_text(json.dumps({"format": FORMAT, "recipe": recipe, "rows": {"eval": 100}, "seeds": [0, 1, 2],
                                "models": {}}))
    return path


@pytest.mark.parametrize("content", ['{"x": 1}', "[]", '{"recipe": {}}'])
def test_report_refuses_a_file_that_is_not_an_evaluation(tmp_path, capsys, content):
    ev = tmp_path / "evaluation.json"
    ev.write_text(content)
    rc, err = _run(["finetune", "report", "--out", str(tmp_path / "r"), "--evaluation", str(ev)], capsys)
    assert rc == 2 and f"{ev}: not a file written by 'hexainst finetune evaluate'" in err
    assert not (tmp_path / "r").exists()


def test_report_refuses_a_missing_changes_file(tmp_path, capsys):
    ev = _evaluation_shaped(tmp_path / "evaluation.json")
    rc, err = _run(["finetune", "report", "--out", str(tmp_path / "r"), "--evaluation", str(ev),
                    "--changes", str(tmp_path / "none.json")], capsys)
    assert rc == 2 and "none.json" in err
    assert not (tmp_path / "r").exists()


def test_report_with_no_finished_run_says_so(tmp_path, capsys):
    ev = _evaluation_shaped(tmp_path / "evaluation.json")
    rc, _ = _run(["finetune", "report", "--out", str(tmp_path / "r"), "--evaluation", str(ev)], capsys)
    assert rc == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "**tuned 0** (seeds none)" in md and "No conclusion: 0 tuned runs scored, and the base model is not scored" in md
    verdicts = [line.rsplit(" | ", 1)[-1] for line in md.splitlines() if line.startswith("| ") and "(" in line
                and line.rstrip(" |").endswith(")") and "not comparable here" in line]
    assert len(verdicts) == 4, md  # every claim of the table: nothing to compare without runs
    assert "p =" not in md and "p <=" not in md


def test_report_never_replaces_a_strangers_folder(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    ev = _evaluation_shaped(tmp_path / "evaluation.json")
    rc, err = _run(["finetune", "report", "--out", str(out), "--evaluation", str(ev)], capsys)
    assert rc == 2 and "was not written by hexainst" in err
    assert (out / "notes.txt").read_text() == "keep me"


def test_bad_seed_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["finetune", "run", "--variant", "shuffled", "--seed", "-1", "--root", str(tmp_path)])
    assert exc.value.code == 2 and "argument --seed: must be >= 0, got -1" in capsys.readouterr().err
