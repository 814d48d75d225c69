"""`hexainst analyze --causal` runs the held-out causal check end to end (issue 22, item 3).

A tiny random-weight Llama (real transformers model from a tiny config) is saved to disk with a
word-level tokenizer, recorded by the project's recorder on 7 rows per category, and analysed by
the command line. Natural rows name a TriviaQA row of a small offline mirror, so they have a
response; synthetic rows have none.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hexainst.cli import main

PER_CATEGORY = 7
FAST = ["--eps", "0.05", "--permutations", "20", "--sweep-permutations", "5", "--bootstrap", "50",
        "--sweep-eps", "0.05", "--quiet", "--no-lexical"]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(workspace, model folder, rows file, mirror folder, store folder, rows)."""
    from hexainst.analysis.recording import record
    from hexainst.analysis.recording.testing import WORDS, make_rows, make_tokenizer, tiny_model

    ws = tmp_path_factory.mktemp("causal")
    model_dir = ws / "tiny-llama"
    tiny_model("llama", seed=0).save_pretrained(model_dir)
    make_tokenizer().save_pretrained(model_dir)
    rows = make_rows(6 * PER_CATEGORY, seed=5)
    mirror = ws / "mirror"
    (mirror / "triviaqa").mkdir(parents=True)
    answers = []
    for k, row in enumerate(rows):
        if row["source"] == "natural":
            qid = f"tc_{k}"
            row["provenance"] = {"natural": {"source_name": "triviaqa", "row_id": qid, "pattern_id": "q"}}
            answers.append({"question_id": qid, "answer": {"value": " ".join(WORDS[(k + j) % len(WORDS)]
                                                                              for j in range(6))}})
        else:
            row["provenance"] = {"synthetic": {"generator_model": "g", "prompt_id": row["category"]}}
    (mirror / "triviaqa" / "validation_subset.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    rows_file = ws / "rows.jsonl"
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = ws / "store"
    record(str(model_dir), rows, store, progress=False)
    return ws, model_dir, rows_file, mirror, store, rows


def _analyze(world, out: Path, *extra: str) -> int:
    ws, model_dir, rows_file, mirror, store, rows = world
    return main(["analyze", "--store", str(store), "--out", str(out), "--causal", "--causal-model", str(model_dir),
                 "--rows", str(rows_file), "--causal-per-category", "3", *FAST, *extra])


def test_analyze_causal_writes_the_section_the_figure_and_a_p_value(world, monkeypatch) -> None:
    import hexainst.analysis.causal as causal
    import hexainst.analysis.causal_design as design

    monkeypatch.delenv("HEXAINST_SOURCES", raising=False)
    ws, model_dir, rows_file, mirror, store, rows = world
    # record which rows really build the sets and the firing rates (the real functions still run)
    built_from: list[np.ndarray] = []
    rated_on: list[np.ndarray] = []
    real_set, real_rates = causal.category_neuron_set, design.firing_rates
    monkeypatch.setattr(causal, "category_neuron_set", lambda sets, r: built_from.append(np.asarray(r))
                        or real_set(sets, r))
    monkeypatch.setattr(design, "firing_rates", lambda c, t, r=None: rated_on.append(np.asarray(r))
                        or real_rates(c, t, r))
    out = ws / "out"
    assert _analyze(world, out, "--sources", str(mirror)) == 0

    res = json.loads((out / "results.json").read_text())
    c = res["causal"]
    # the held-out design, not the circular one
    assert "held out" in c["design"] and "circular_rows" not in c
    assert c["n_assignments"] == 720 and 1 / 720 <= c["p_value"] <= 1
    assert c["ci_low"] <= c["specificity"] <= c["ci_high"]
    assert c["config"]["per_category"] == 3 and c["config"]["n_random"] == 3
    effect = np.array(c["effect"])
    assert effect.shape == (6, 6) and np.isfinite(effect).all()
    assert np.array(c["delta_nll_random_draws"]).shape == (3, 6, 6)
    np.testing.assert_allclose(effect, np.array(c["delta_nll_isn"]) - np.array(c["delta_nll_random"]), atol=1e-12)
    # responses: natural evaluated rows are scored on their mirror answer, synthetic ones on the instruction
    by_id = {r["id"]: r for r in rows}
    evaluated = [i for ids in c["eval_ids"].values() for i in ids]
    assert len(evaluated) == 18
    n_natural = sum(1 for i in evaluated if by_id[i]["source"] == "natural")
    assert sum(t["response"] for t in c["targets"].values()) == n_natural > 0
    assert c["responses_source"] == str(mirror)
    # the evaluated ids are never among the ids the sets and the firing rates were built from
    from hexainst.analysis.data import open_store

    ids = list(open_store(store).ids)
    assert len(built_from) == 6 and len(rated_on) == 1
    used = {ids[r] for rs in built_from for r in rs} | {ids[r] for r in rated_on[0]}
    assert used and not used & set(evaluated)
    assert used | set(evaluated) == set(ids)  # every other row builds its category's set
    # the figure, the report's section and the claims row
    for ext in ("png", "svg"):
        assert (out / "figures" / f"causal_delta_nll.{ext}").stat().st_size > 0
    svg = (out / "figures" / "causal_delta_nll.svg").read_text()
    assert "assignment test" in svg and "rate match" in svg and f"{c['ci_low']:+.4f}" in svg
    report = (out / "report.md").read_text()
    section = report.split("## Causal check (beyond the paper)", 1)[1]
    assert c["p_text"] in section and "assignment" in section and "causal_delta_nll.png" in section
    assert f"{n_natural} rows (natural rows, answers read from the mirror" in section
    assert "firing rate: set / random draws" in section
    assert "Causal check (held out)" in report.split("## Summary", 1)[1]
    claim = res["claims"][-1]
    assert claim["claim"].startswith("A category's ISNs serve that category")
    assert c["p_text"] in claim["our_value"]
    assert claim["verdict"] == ("holds" if c["p_value"] < 0.05 and c["ci_low"] > 0 else "does not hold")
    # the p-value is written as the floor when it is at it
    if c["p_value"] <= 1 / 720 + 1e-12:
        assert c["p_text"].startswith("p <= ")
    # results.json alone renders the same report again
    from hexainst.analysis.render import rerender

    rerender(out)
    assert (out / "report.md").read_text() == report


def test_without_sources_every_loss_is_on_the_instruction_and_the_report_says_so(world, monkeypatch) -> None:
    monkeypatch.delenv("HEXAINST_SOURCES", raising=False)
    ws = world[0]
    out = ws / "out-no-sources"
    assert _analyze(world, out) == 0
    c = json.loads((out / "results.json").read_text())["causal"]
    assert c["responses_source"] is None
    assert sum(t["response"] for t in c["targets"].values()) == 0
    assert sum(t["continuation"] for t in c["targets"].values()) == 18
    assert "so every one of the 18 rows is scored on its instruction" in (out / "report.md").read_text()


def test_sources_default_to_the_environment(world, monkeypatch) -> None:
    ws, mirror = world[0], world[3]
    monkeypatch.setenv("HEXAINST_SOURCES", str(mirror))
    out = ws / "out-env"
    assert _analyze(world, out, "--causal-draws", "1", "--causal-max-tokens", "0") == 0
    c = json.loads((out / "results.json").read_text())["causal"]
    assert c["responses_source"] == str(mirror) and sum(t["response"] for t in c["targets"].values()) > 0
    assert np.array(c["delta_nll_random_draws"]).shape[0] == 1
    assert c["config"]["max_predicted"] is None  # 0 = every token
    assert "every token of the reference response" in (out / "report.md").read_text()


def _result(p_value: float, ci: tuple[float, float]):
    from hexainst.analysis.causal import HeldoutCausalResult

    m = 6
    z = np.zeros((m, m))
    return HeldoutCausalResult(
        categories=[f"c{k}" for k in range(m)], config={"per_category": 20, "n_random": 3, "max_predicted": 32,
                                                         "ci_level": 0.95},
        seed=0, model="m", eval_ids={}, n_build={}, targets={}, set_sizes={}, random_sizes={}, rate_match={},
        baseline_nll={}, delta_nll_isn=z, delta_nll_random=z, delta_nll_random_draws=np.zeros((3, m, m)), effect=z,
        specificity=(ci[0] + ci[1]) / 2, ci_low=ci[0], ci_high=ci[1], p_value=p_value, n_assignments=720,
        null_mean=0.0, own_set_rank=[1] * m, seconds=1.0, seconds_per_instruction_condition=0.1)


def test_the_claims_row_follows_the_test_and_the_interval() -> None:
    from hexainst.analysis.claims import _claim_causal

    def claim(p_value: float, ci: tuple[float, float], ranks: list[int] | None = None):
        section = _result(p_value, ci).as_dict()  # the causal section as results.json holds it
        if ranks is not None:
            section["own_set_rank"] = ranks
        return _claim_causal({"causal": section})

    floor = claim(1 / 720, (0.01, 0.05))
    assert floor.verdict == "holds" and "p <= 0.0014 (the floor: 1/720)" in floor.our_value
    assert "most damaging in 6 of 6 categories" in floor.our_value
    assert "most damaging in 2 of 6 categories" in claim(1 / 720, (0.01, 0.05), [1, 2, 1, 3, 2, 4]).our_value
    assert claim(0.01, (-0.01, 0.05)).verdict == "does not hold"
    assert claim(0.2, (0.01, 0.05)).verdict == "does not hold"
    row = _claim_causal({})
    assert row.verdict.startswith("not comparable here") and "--causal" in row.verdict
    assert "circular" in row.paper_value


@pytest.mark.parametrize("extra, message", [
    (["--sources", "{ws}/no-such-mirror"], "--sources {ws}/no-such-mirror: not a folder"),
    (["--causal-per-category", "7"], "--causal-per-category 7: category classification has 7 analysed "
                                     "instructions"),
    (["--causal-draws", "0"], "argument --causal-draws: must be >= 1, got 0"),
])
def test_a_bad_causal_option_is_one_line_and_leaves_the_last_report(world, monkeypatch, capsys, extra,
                                                                     message) -> None:
    monkeypatch.delenv("HEXAINST_SOURCES", raising=False)
    ws = world[0]
    out = ws / "out-kept"
    if not out.exists():
        assert _analyze(world, out, "--causal-draws", "1") == 0
    before = _snapshot(out)
    capsys.readouterr()
    try:
        code = _analyze(world, out, *[x.replace("{ws}", str(ws)) for x in extra])
        err = capsys.readouterr().err
    except SystemExit as stop:  # refused while parsing: argparse's usage lines, then the one error line
        code, err = stop.code, capsys.readouterr().err
        err = err[err.index("hexainst analyze: error:"):]
    assert code != 0
    assert message.replace("{ws}", str(ws)) in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _snapshot(out) == before


def test_how_often_the_own_set_is_the_most_damaging_and_its_exact_p() -> None:
    from hexainst.analysis.causal import most_damaging_test

    # each column's most damaging set: itself for all six -> 6 of 6, reached by 1 of the 720 assignments
    assert most_damaging_test(np.eye(6)) == (6, 1 / 720, 720)
    # the most damaging sets form a permutation with one fixed point (set 0 on column 0, then a 5-cycle):
    # the count under a random assignment is the fixed points of a uniform permutation, and
    # P(at least 1) = 1 - D6/720 = 1 - 265/720 (D6 = 265 derangements of 6)
    sigma = [0, 2, 3, 4, 5, 1]
    effect = np.zeros((6, 6))
    for column, row in enumerate(sigma):
        effect[row, column] = 1.0
    assert most_damaging_test(effect) == (1, (720 - 265) / 720, 720)
