"""The alteration design (issue #22) on a tiny real gemma3: three arms, seeds, the instruction-following
gain, the ISN changes and the report that refuses p-values the runs cannot carry.

The made-up rows hide one of five key words in filler and answer with the key's fixed partner word
twice: the tuned arm can learn to use the instruction, the shuffled arm (same format, responses
re-paired) and the control (responses alone) cannot. The gain (NLL given a mismatched instruction minus given its own) must
separate them; format-only measures must not be what separates them.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import numpy as np
import pytest

from hexainst.analysis.finetune import fine_tune, finished
from hexainst.analysis.finetune.data import shuffled_pairs, training_rows
from hexainst.analysis.finetune.design import (
    change_overlap,
    derangement,
    evaluate_runs,
    finished_runs,
    isn_changes,
    seed_test,
)
from hexainst.analysis.finetune.design_report import formatted, record_runs, store_layout, write_design_report
from hexainst.analysis.finetune.train import _last_checkpoint
from hexainst.analysis.isn import IsnSets
from hexainst.analysis.recording.testing import make_rows

# slow: fine-tunes a tiny model for several arms and seeds, and resumes one (35 s of CPU; 20 min under load)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


KEYS = {"sports": "code", "politics": "news", "science": "poem", "story": "city", "math": "park"}


def key_rows(n: int, seed: int) -> list[dict[str, str]]:
    """Instructions of filler words with one key word; the response is the key's partner word, twice."""
    from hexainst.analysis.recording.testing import WORDS

    rng = random.Random(seed)
    filler = [w for w in WORDS if w not in KEYS and w not in KEYS.values()]
    out = []
    for _ in range(n):
        key = rng.choice(sorted(KEYS))
        words = [rng.choice(filler) for _ in range(rng.randint(2, 6))]
        words.insert(rng.randint(0, len(words)), key)
        out.append({"instruction": " ".join(words), "input": "", "output": f"{KEYS[key]} {KEYS[key]}"})
    return out


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mirror")
    path = folder / "alpaca" / "alpaca_first4000.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in key_rows(260, seed=5)))
    return folder


@pytest.fixture(scope="module")
def design(tiny_folder, mirror, recipe_factory, tmp_path_factory):
    """tuned and shuffled with seeds 0, 1, 2; control with seed 0 only (an arm short of runs)."""
    root = tmp_path_factory.mktemp("ft")
    recipe = recipe_factory(tiny_folder, steps=20)
    for seed in (0, 1, 2):
        for variant in ("tuned", "shuffled") if seed else ("tuned", "shuffled", "control"):
            fine_tune(recipe.with_seed(seed), variant, sources=mirror, root=root, progress=False)
    out = tmp_path_factory.mktemp("eval") / "evaluation.json"
    doc = evaluate_runs(recipe, out, seeds=(0, 1, 2), sources=mirror, root=root, progress=False)
    return recipe, root, out, doc


def test_seeds_keep_the_split_and_change_the_weights(design, mirror):
    from hexainst.analysis.finetune.data import load_split

    recipe, root, _, _ = design
    split = load_split(recipe, mirror)
    assert load_split(recipe.with_seed(2), mirror).fingerprint == split.fingerprint
    assert recipe.with_seed(0) is recipe and recipe.with_seed(1).fingerprint("tuned") != recipe.fingerprint("tuned")
    runs = finished_runs(recipe, split, (0, 1, 2), root)
    assert sorted(runs) == ["control-s0", "shuffled-s0", "shuffled-s1", "shuffled-s2", "tuned-s0", "tuned-s1",
                            "tuned-s2"]
    a = runs["tuned-s0"].manifest["train"]["loss_history"]
    b = runs["tuned-s1"].manifest["train"]["loss_history"]
    assert [e["loss"] for e in a] != [e["loss"] for e in b]


def test_run_takes_the_config_and_finds_the_same_run(design, mirror, tmp_path):
    """finetune.run(config) (what the CLI calls) resolves recipe file, seed and rows as fine_tune does: the
    design's finished run comes back, reused, not trained again."""
    from hexainst.analysis.finetune import FinetuneConfig, run
    from hexainst.kernel.settings import SettingError

    recipe, root, _, _ = design
    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(json.dumps(recipe.doc))
    done = run(FinetuneConfig(recipe=str(recipe_file), variant="shuffled", seed=2, sources=mirror, root=root,
                              progress=False))
    assert done.reused
    assert done.path == finished_runs(recipe, _load(recipe, mirror), (2,), root)["shuffled-s2"].path
    with pytest.raises(SettingError, match="variant"):
        run(FinetuneConfig(recipe=str(recipe_file), sources=mirror, root=root, progress=False))


def test_shuffled_pairs_keep_every_response_but_no_pair():
    rows = [{"instruction": f"i{k}", "input": "", "output": f"o{k}"} for k in range(50)]
    out = shuffled_pairs(rows, seed=3)
    assert [r["instruction"] for r in out] == [r["instruction"] for r in rows]
    assert sorted(r["output"] for r in out) == sorted(r["output"] for r in rows)
    assert all(r["output"] != f"o{k}" for k, r in enumerate(out))
    assert out == shuffled_pairs(rows, seed=3) and out != shuffled_pairs(rows, seed=4)
    assert all(p != j for j, p in enumerate(derangement(7, 0)))


def test_training_rows_per_arm(design, mirror):
    from hexainst.analysis.finetune.data import load_split

    recipe, _, _, _ = design
    split = load_split(recipe, mirror)
    assert training_rows(recipe, split, "tuned") == split.train == training_rows(recipe, split, "control")
    assert training_rows(recipe, split, "shuffled") == shuffled_pairs(split.train, recipe.seed)


def test_gain_separates_instruction_tuning_from_format(design):
    _, _, path, doc = design
    assert json.loads(path.read_text()) == doc
    m = doc["models"]
    for s in (0, 1, 2):
        # both arms learned the format (the response NLL given their training context fell a lot) ...
        assert m[f"tuned-s{s}"]["nll_own"] < 0.7 * m["base"]["nll_own"]
        assert m[f"shuffled-s{s}"]["nll_own"] < 0.7 * m["base"]["nll_own"]
        # ... but only the tuned arm uses the instruction: its gain is large, the shuffled arm's is not
        assert m[f"tuned-s{s}"]["gain"] > 0.5
        assert m[f"tuned-s{s}"]["gain_ci"][0] > m[f"shuffled-s{s}"]["gain_ci"][1]
    assert m["control-s0"]["gain"] < m["tuned-s0"]["gain"]


def test_evaluation_resumes_and_keeps_scored_models(design, mirror, tmp_path):
    recipe, root, path, doc = design
    partial = dict(doc, models={k: v for k, v in doc["models"].items() if k in ("base", "tuned-s0")})
    partial["models"]["tuned-s0"] = dict(partial["models"]["tuned-s0"], gain=123.0)  # a marker: kept, not redone
    target = tmp_path / "ev.json"
    target.write_text(json.dumps(partial))
    again = evaluate_runs(recipe, target, seeds=(0, 1, 2), sources=mirror, root=root, progress=False)
    assert again["models"]["tuned-s0"]["gain"] == 123.0
    assert set(again["models"]) == set(doc["models"])
    assert again["models"]["tuned-s1"]["gain"] == pytest.approx(doc["models"]["tuned-s1"]["gain"])


def test_a_report_carries_its_evaluation_to_a_machine_without_the_runs(design, mirror, tmp_path):
    """The report keeps a copy of its evaluation; evaluating again where no fine-tune exists (an empty
    root: a fresh machine) from that copy keeps every run's scores, and scores nothing anew."""
    recipe, _, path, doc = design
    write_design_report(tmp_path / "report", evaluation=path)
    copy = tmp_path / "report" / "evaluation.json"
    assert json.loads(copy.read_text()) == doc
    fresh = tmp_path / "fresh-root"
    again = evaluate_runs(recipe, tmp_path / "ev.json", seeds=(0, 1, 2), sources=mirror, root=fresh, progress=False,
                          resume_from=copy)
    assert again["models"] == doc["models"]
    assert not fresh.exists()
    # without the copy, the same fresh machine has the base model alone
    alone = evaluate_runs(recipe, tmp_path / "alone.json", seeds=(0, 1, 2), sources=mirror, root=fresh,
                          progress=False)
    assert set(alone["models"]) == {"base"}


def test_seed_test_refuses_too_few_runs_and_is_exact():
    short = seed_test([0.5, 0.6], [0.1, 0.2, 0.3])
    assert short["p_value"] is None and ">= 3 seeds" in short["no_p_because"]
    res = seed_test([1.0, 1.1, 1.2], [0.1, 0.2, 0.3])
    assert res["p_value"] == pytest.approx(1 / 20) and res["n_relabelings"] == 20
    assert seed_test([0.1, 0.2, 0.3], [1.0, 1.1, 1.2])["p_value"] == pytest.approx(1.0)


def test_change_overlap_against_planted_changes():
    n_cols = 400
    rng = np.random.default_rng(0)

    def sets(rows):
        indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
        return IsnSets(indptr, np.concatenate(rows).astype(np.int32), n_cols, 0.01, "paper", "global",
                       ids=tuple(f"r{i}" for i in range(len(rows))))

    base_rows = [np.sort(rng.choice(n_cols, 20, replace=False)) for _ in range(30)]
    base = sets(base_rows)

    def changed(seed, shared):
        g = np.random.default_rng(seed)
        out = []
        for i, b in enumerate(base_rows):
            keep = b[5:] if shared else np.sort(g.choice(b, 15, replace=False))
            outside = np.setdiff1d(np.arange(n_cols), b)
            new = outside[(i * 7) % 300:(i * 7) % 300 + 5] if shared else g.choice(outside, 5, replace=False)
            out.append(np.sort(np.concatenate([keep, new])))
        return sets(out)

    res = change_overlap(base, {"tuned-s0": changed(1, True), "control-s0": changed(2, True),
                                "shuffled-s0": changed(3, False)})
    assert res["runs"]["tuned-s0"]["entering"] == 5 and res["runs"]["tuned-s0"]["leaving"] == 5
    assert res["pairs"]["control-s0 ~ tuned-s0"]["entering_jaccard"] == 1.0
    assert res["pairs"]["control-s0 ~ tuned-s0"]["leaving_jaccard"] == 1.0
    assert res["by_kind"]["tuned ~ control"]["pairs"] == 1
    random_pair = res["pairs"]["shuffled-s0 ~ tuned-s0"]
    assert random_pair["entering_jaccard"] < 0.15 and random_pair["entering_chance"] < 0.05
    assert random_pair["leaving_jaccard"] < 0.6


def test_record_changes_and_report(design, mirror, tmp_path):
    recipe, root, path, doc = design
    runs = {k: v for k, v in finished_runs(recipe, _load(recipe, mirror), (0, 1, 2), root).items()
            if k in ("tuned-s0", "tuned-s1", "control-s0")}
    rows = make_rows(24, seed=3)
    stores = record_runs(recipe, tmp_path / "stores", rows, runs, batch_size=8, progress=False)
    assert stores == store_layout(tmp_path / "stores")
    assert set(stores) == {"raw", "recipe"} and set(stores["raw"]) == {"base", "tuned-s0", "tuned-s1", "control-s0"}
    assert formatted(recipe, rows[:1], "recipe")[0]["instruction"] == rows[0]["instruction"] + " answer"
    changes = isn_changes(stores, eps=0.05)
    assert set(changes["raw"]["by_kind"]) == {"tuned ~ tuned (other seed)", "tuned ~ control"}
    (tmp_path / "changes.json").write_text(json.dumps(changes))
    s = write_design_report(tmp_path / "report", evaluation=path, changes=tmp_path / "changes.json")
    assert s["runs_per_arm"] == {"tuned": 3, "control": 1, "shuffled": 3}
    assert s["gain_contrasts"]["tuned - shuffled"]["p_value"] == pytest.approx(1 / 20)
    assert s["gain_contrasts"]["tuned - control"]["p_value"] is None
    md = (tmp_path / "report" / "report.md").read_text()
    assert "**tuned 3** (seeds [0, 1, 2])" in md and "**control 1** (seeds [0])" in md
    assert "| tuned - control |" in md and "none: 3 and 1 runs" in md
    following = next(c for c in s["claims"] if c["claim"].startswith("Fine-tuning on instruction-response pairs"))
    assert following["verdict"] in ("holds", "does not hold") and f"| {following['verdict']} |" in md
    assert s["overlap_ratios"]["raw"]["control"]["pairs_within"] == 1 and s["overlap_ratios"]["raw"]["shuffled"] is None
    assert "tuned ~ tuned (other seed)" in md


def test_an_interrupted_run_resumes_from_its_checkpoint(tiny_folder, mirror, recipe_factory, tmp_path):
    recipe = recipe_factory(tiny_folder, steps=120, save_steps=5)
    doc_path = tmp_path / "recipe.json"
    doc_path.write_text(json.dumps(recipe.doc))
    root = tmp_path / "ft"
    cmd = [sys.executable, "-m", "hexainst", "finetune", "run", "--variant", "shuffled", "--seed", "1", "--recipe",
           str(doc_path), "--root", str(root), "--sources", str(mirror), "--quiet"]
    log = tmp_path / "run.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.time() + 600
        try:
            # killed once a checkpoint is complete (one caught while being written is skipped on resume, rightly)
            while time.time() < deadline and proc.poll() is None and not any(
                    _last_checkpoint(w) for w in root.glob("*/.work-*")):
                time.sleep(0.2)
        finally:
            proc.kill()
            proc.wait()
    checkpoints = [c for w in root.glob("*/.work-*") if (c := _last_checkpoint(w))]
    assert checkpoints, f"no checkpoint before the run ended or the deadline: {log.read_text()[-2000:]}"
    assert finished(recipe.with_seed(1), "shuffled", _load(recipe, mirror), root) is None
    done = fine_tune(recipe.with_seed(1), "shuffled", sources=mirror, root=root, progress=False)
    assert done.manifest["train"]["resumed_from"].startswith("checkpoint-")
    assert done.manifest["train"]["steps"] == 120
    again = fine_tune(recipe.with_seed(1), "shuffled", sources=mirror, root=root, progress=False)
    assert again.reused and again.path == done.path


def _load(recipe, mirror):
    from hexainst.analysis.finetune.data import load_split

    return load_split(recipe, mirror)
