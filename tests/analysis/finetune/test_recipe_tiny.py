"""The fine-tuning recipe run end to end on a tiny real-architecture model, in seconds.

A tiny gemma3 model (random weights, real config class) and a word-level tokenizer are saved to a
folder; a recipe (the bundled one with its model, prompt and training fields replaced) trains it
on made-up rows whose answer follows from the instruction. Checked: the loss goes down, the
trainable weights change and the frozen ones do not, the held-out NLL drops, a finished run is
reused and a changed recipe is not, and the saved model records into a store that compares with
the base model's store.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hexainst.analysis.finetune import fine_tune, finished
from hexainst.analysis.finetune.data import IGNORE, encode, split_rows
from hexainst.analysis.finetune.evaluate import greedy_answers, paired_difference, response_nll
from hexainst.analysis.recording.loading import load_model
from hexainst.analysis.recording.testing import make_rows, make_tokenizer
from hexainst.builders.text import comparison_key

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def split(rows_factory):
    return split_rows(rows_factory(336), exclude=set(), n_eval=16, seed=0)


@pytest.fixture(scope="module")
def tuned(tiny_folder, split, tmp_path_factory, recipe_factory):
    root = tmp_path_factory.mktemp("ft-root")
    recipe = recipe_factory(tiny_folder)
    return recipe, root, fine_tune(recipe, "tuned", root=root, split=split, progress=False)


def test_loss_goes_down(tuned):
    _, _, done = tuned
    losses = [e["loss"] for e in done.manifest["train"]["loss_history"]]
    assert done.manifest["train"]["steps"] == 40
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])


def test_weights_change(tuned, tiny_folder):
    _, _, done = tuned
    before = load_file(str(tiny_folder / "model.safetensors"))
    after = load_file(str(done.path / "model.safetensors"))
    assert set(before) == set(after)
    assert all(not torch.equal(before[k], after[k]) for k in before if k.endswith("proj.weight"))
    assert not torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])
    assert all(v.dtype == torch.float32 for v in after.values())
    assert done.manifest["parameters"]["frozen"] == 0


def test_frozen_parameters_stay_as_they_were(tiny_folder, split, tmp_path, recipe_factory):
    recipe = recipe_factory(tiny_folder, steps=3, freeze=["embed_tokens"])
    done = fine_tune(recipe, "tuned", root=tmp_path, split=split, progress=False)
    before = load_file(str(tiny_folder / "model.safetensors"))
    after = load_file(str(done.path / "model.safetensors"))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "model.embed_tokens.weight" not in changed  # tied with the LM head: both frozen
    assert any("mlp.gate_proj" in k for k in changed) and any("self_attn.q_proj" in k for k in changed)
    assert done.manifest["parameters"]["frozen"] == before["model.embed_tokens.weight"].numel()


def test_held_out_nll_drops_and_greedy_answers_follow_the_format(tuned, tiny_folder, split):
    recipe, _, done = tuned
    base = load_model(str(tiny_folder), progress=False)
    ft = load_model(str(done.path), progress=False)
    nll_base = response_nll(base.model, base.tokenizer, recipe, split.eval, "instruction")
    nll_ft = response_nll(ft.model, ft.tokenizer, recipe, split.eval, "instruction")
    assert nll_base.n_tokens.sum() == 16 * 4  # "the answer is <word>" on each of 16 held-out rows
    diff = paired_difference(nll_base, nll_ft, n_boot=200)
    assert nll_ft.per_token < 0.5 * nll_base.per_token
    assert diff["ci_high"] < 0 and diff["rows_lower"] == 16
    answers = greedy_answers(ft.model, ft.tokenizer, recipe, split.eval[:2])
    assert all(a.startswith("the answer is") for a in answers)


def test_finished_run_is_reused_and_changed_recipe_or_rows_are_not(tuned, split, rows_factory):
    recipe, root, done = tuned
    again = fine_tune(recipe, "tuned", root=root, split=split, progress=False)
    assert again.reused and again.path == done.path
    assert finished(recipe, "tuned", split, root).path == done.path
    assert finished(recipe.with_overrides(steps=41), "tuned", split, root) is None
    assert finished(recipe, "control", split, root) is None
    # A release that now holds one more of the rows (or another mirror) gives other rows: never reused.
    rows = rows_factory(336)
    other = split_rows(rows, exclude={comparison_key(rows[3]["instruction"])}, n_eval=16, seed=0)
    assert other.fingerprint != split.fingerprint
    assert finished(recipe, "tuned", other, root) is None
    retrained = fine_tune(recipe.with_overrides(steps=2), "tuned", root=root, split=other, progress=False)
    assert not retrained.reused and retrained.path != done.path and done.path.is_dir()
    assert retrained.manifest["rows_fingerprint"] == other.fingerprint
    assert recipe.fingerprint("tuned") != recipe.fingerprint("control")
    manifest = json.loads((done.path / "hexainst-finetune.json").read_text())
    assert manifest["fingerprint"] == recipe.fingerprint("tuned") and manifest["variant"] == "tuned"
    assert not list(root.rglob(".work-*")), "checkpoints of a finished run are removed"


def test_control_learns_the_responses_but_not_the_instruction(tiny_folder, split, tmp_path, recipe_factory):
    recipe = recipe_factory(tiny_folder)
    control = fine_tune(recipe, "control", root=tmp_path, split=split, progress=False)
    assert control.manifest["supervised_tokens_per_epoch"] == sum(
        sum(1 for x in encode(recipe, make_tokenizer(), r, "tuned")["labels"] if x != IGNORE) for r in split.train)
    base = load_model(str(tiny_folder), progress=False)
    ctl = load_model(str(control.path), progress=False)
    none_base = response_nll(base.model, base.tokenizer, recipe, split.eval, "none")
    none_ctl = response_nll(ctl.model, ctl.tokenizer, recipe, split.eval, "none")
    assert none_ctl.per_token < 0.7 * none_base.per_token


def test_tuned_model_records_and_compares(tuned, tiny_folder, tmp_path):
    from hexainst.analysis.recording import record
    from hexainst.cli import main

    _, _, done = tuned
    rows = make_rows(36, seed=2)
    record(str(tiny_folder), rows, tmp_path / "base", batch_size=4, progress=False)
    record(str(done.path), rows, tmp_path / "tuned", batch_size=4, progress=False)
    rc = main(["analyze", "--store", str(tmp_path / "base"), "--compare", str(tmp_path / "tuned"),
               "--out", str(tmp_path / "analysis"), "--permutations", "20", "--sweep-permutations", "5",
               "--bootstrap", "20", "--sweep-eps", "0.05", "--eps", "0.05", "--quiet"])
    assert rc == 0
    results = json.loads((tmp_path / "analysis" / "results.json").read_text())
    table1 = results["alteration"]["table1_jaccard"]
    assert set(table1) == {"classification", "code", "generalqa", "generation", "math", "summarization"}
    # The tuned weights changed the ISN sets (J < 1) but did not replace them (J > chance).
    assert 0.05 < results["alteration"]["table1_overall"] < 0.999


def test_encode_gives_both_variants_the_same_supervised_tokens(tiny_folder, recipe_factory):
    recipe = recipe_factory(tiny_folder)
    tok = make_tokenizer()
    row = {"instruction": "solve for x in equation", "input": "", "output": "the answer is solve"}
    tuned = encode(recipe, tok, row, "tuned")
    control = encode(recipe, tok, row, "control")
    sup = lambda e: [t for t, label in zip(e["input_ids"], e["labels"]) if label != IGNORE]  # noqa: E731
    assert sup(tuned) == sup(control) == tok("the answer is solve", add_special_tokens=False)["input_ids"]
    assert control["input_ids"][0] == tok.bos_token_id and len(control["input_ids"]) == 1 + 4
    assert tuned["length"] == control["length"] == len(tuned["input_ids"])
    assert tok.decode(tuned["input_ids"][1:-4]) == "solve for x in equation answer"
