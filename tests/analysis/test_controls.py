"""Controls (issue 22): untrained and lexical baselines, the excess, nulls, cluster bootstrap, claims.

The two planted tests use tiny real ``transformers`` models (LlamaConfig) and the real recorder:
- a pure lexical effect (categories differ only in which words they use; the "model" is the
  architecture with random weights, whose activations are a function of the tokens alone and learned
  nothing) must vanish in the excess over the untrained baseline;
- a learned effect (the model maps each category's words to one direction, which random weights do
  not) must survive it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from hexainst.analysis.controls import PairDesign
from hexainst.analysis.length_matching import length_matched_test
from hexainst.analysis.nulls import (
    cluster_bootstrap_weights,
    format_p,
    provenance_cluster,
    stratified_permutation,
)
from hexainst.analysis.stats import length_adjusted_test, permutation_test

CATS = ["classification", "code", "summarization"]


def _random_pairs(n: int, seed: int, effect: float = 0.1):
    rng = np.random.default_rng(seed)
    labels = np.array([CATS[i % 3] for i in range(n)])
    x = rng.random((n, n))
    pair = (x + x.T) / 2 + effect * (labels[:, None] == labels[None, :])
    np.fill_diagonal(pair, 1.0)
    t = rng.integers(5, 120, n)
    natural = (np.arange(n) // 3) % 2 == 0
    return pair, labels, t, natural


def test_fast_statistics_equal_the_pair_loop_and_the_existing_tests() -> None:
    pair, labels, t, natural = _random_pairs(90, 0)
    design = PairDesign.build(labels, CATS, t, natural, 5)
    fast = design.statistics(pair[None])
    ref = design.statistics_pairs(design.values(pair)[:, None])
    for k in ("unmatched", "length_adjusted", "length_matched", "cross_source"):
        assert np.allclose(fast[k], ref[k]), k
    assert fast["unmatched"][0] == pytest.approx(permutation_test(pair, labels, CATS, n_permutations=1).difference)
    assert fast["length_adjusted"][0] == pytest.approx(
        length_adjusted_test(pair, labels, t, n_permutations=1).same_category_coef)
    lm = length_matched_test(pair, labels, t, categories=CATS, n_strata=5, n_permutations=1)
    assert fast["length_matched"][0] == pytest.approx(lm.difference)
    assert np.allclose(fast["length_matched_per_category"][:, 0], lm.matched)
    # cross-source by a plain loop over natural x synthetic pairs
    sums = np.zeros((3, 3))
    cnt = np.zeros((3, 3))
    idx = {c: i for i, c in enumerate(CATS)}
    for i in np.flatnonzero(natural):
        for j in np.flatnonzero(~natural):
            sums[idx[labels[i]], idx[labels[j]]] += pair[i, j]
            cnt[idx[labels[i]], idx[labels[j]]] += 1
    cell = sums / cnt
    loop = np.mean(np.diagonal(cell)) - np.mean(cell[~np.eye(3, dtype=bool)])
    assert fast["cross_source"][0] == pytest.approx(loop)
    # weighted (bootstrap multiplicities): fast and pair loop agree
    w = np.random.default_rng(1).integers(0, 3, 90).astype(float)
    fw, rw = design.statistics(pair[None], weights=w), design.statistics_pairs(design.values(pair)[:, None], weights=w)
    for k in ("unmatched", "length_adjusted", "length_matched", "cross_source"):
        assert np.allclose(fw[k], rw[k]), k


def test_statistics_are_linear_so_the_excess_is_the_difference() -> None:
    a, labels, t, natural = _random_pairs(60, 2, effect=0.2)
    b = _random_pairs(60, 3, effect=0.05)[0]
    design = PairDesign.build(labels, CATS, t, natural, 4)
    s = design.statistics(np.stack([a, b, a - b]))
    for k in ("unmatched", "length_adjusted", "length_matched", "cross_source"):
        assert s[k][2] == pytest.approx(s[k][0] - s[k][1])


def test_stratified_permutation_stays_within_strata_and_free_shuffle_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    strata = rng.integers(0, 4, 200)
    perm = stratified_permutation(strata, rng)
    assert sorted(perm.tolist()) == list(range(200))
    assert np.array_equal(strata[perm], strata)
    assert not np.array_equal(perm, np.arange(200))
    # our free-shuffle p-value agrees with scipy's permutation_test on a two-group difference
    x = np.r_[rng.normal(0.3, 1, 30), rng.normal(0, 1, 30)]
    g = np.r_[np.zeros(30), np.ones(30)]
    obs = x[g == 0].mean() - x[g == 1].mean()
    r2 = np.random.default_rng(5)
    null = np.array([(lambda p: x[p[:30]].mean() - x[p[30:]].mean())(r2.permutation(60)) for _ in range(4000)])
    ours = (1 + np.sum(null >= obs)) / 4001
    theirs = scipy.stats.permutation_test((x[:30], x[30:]), lambda a, b: a.mean() - b.mean(), n_resamples=4000,
                                          alternative="greater", random_state=7).pvalue
    assert abs(ours - theirs) < 0.03


def test_cluster_bootstrap_draws_whole_clusters_within_categories() -> None:
    codes = np.repeat([0, 1], 20)
    clusters = np.r_[np.repeat([0, 1], 10), np.repeat([2, 3, 4, 5], 5)]
    rng = np.random.default_rng(0)
    seen_single = False
    for _ in range(200):
        w = cluster_bootstrap_weights(codes, clusters, rng)
        assert w[codes == 1].sum() == 20  # four clusters of 5: always 20 rows
        used = {int(c) for c in np.unique(clusters[(codes == 0) & (w > 0)])}
        assert w[codes == 0].sum() == 10 * 2
        seen_single |= len(used) == 1  # both draws of category 0 took the same cluster
    assert seen_single


def test_p_at_the_floor_is_written_as_a_bound() -> None:
    assert format_p(1 / 501, 500) == "p <= 0.0020 (the floor of 500 shuffles)"
    assert format_p(0.25, 500) == "p = 0.2500"


def test_provenance_clusters() -> None:
    flan = {"id": "a", "provenance": {"natural": {"source_name": "flan_classification", "task_name": "trec:1.0.0",
                                                  "pattern_id": "flan.trec.t3"}}}
    he = {"id": "b", "provenance": {"natural": {"source_name": "humaneval", "task_name": None,
                                                "pattern_id": "humaneval.prompt"}}}
    syn = {"id": "c", "provenance": {"natural": None, "synthetic": {"generator_model": "embedded:gemma-3-270m",
                                                                    "prompt_id": "code.completions"}}}
    assert provenance_cluster(flan) == "natural:flan_classification:trec:1.0.0"
    assert provenance_cluster(he) == "natural:humaneval:humaneval.prompt"
    assert provenance_cluster(syn) == "synthetic:embedded:gemma-3-270m:code.completions"
    assert provenance_cluster({"id": "d"}) == "row:d"


def test_lexical_sets_are_the_distinct_tokens_when_k_exceeds_them() -> None:
    from hexainst.analysis.lexical import lexical_sets, token_counts
    from hexainst.analysis.metrics import jaccard_matrix

    ids = [[1, 5, 5, 9], [1, 9, 7], [1, 2, 3, 4, 2]]
    counts = token_counts(ids, [1, 1, 1], vocab_size=1000)  # BOS out of T
    sets = lexical_sets(counts, eps=0.05, tie_rule="paper")  # k = 50 > any instruction's distinct tokens
    assert [set(sets.row(r).tolist()) for r in range(3)] == [{5, 9}, {7, 9}, {2, 3, 4}]
    jac = jaccard_matrix(sets)
    assert jac[0, 1] == pytest.approx(1 / 3) and jac[0, 2] == 0
    # a small vocabulary: the top-eps threshold cuts as for neurons (the most frequent type, ties kept)
    small = lexical_sets(token_counts(ids, [1, 1, 1], vocab_size=10), eps=0.1, tie_rule="paper")
    assert set(small.row(0).tolist()) == {5} and set(small.row(2).tolist()) == {2}
    # the same rule as ISN sets: equal to compute_isn_sets on the dense counts, both tie rules
    from hexainst.analysis.isn import compute_isn_sets

    rng = np.random.default_rng(0)
    many = [rng.integers(0, 40, rng.integers(3, 30)).tolist() for _ in range(30)]
    counts = token_counts(many, [0] * 30, vocab_size=40)
    for tie in ("paper", "exact-k"):
        ours = lexical_sets(counts, eps=0.1, tie_rule=tie)
        dense = counts.toarray()
        ref = compute_isn_sets(dense, eps=0.1, tie_rule=tie, sums=dense.astype(np.float32))
        assert np.array_equal(ours.indptr, ref.indptr) and np.array_equal(ours.indices, ref.indices), tie


# --- planted effects with tiny real models ----------------------------------------------------------

N_WORDS = 120


def _word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials + [f"w{k:03d}" for k in range(N_WORDS)])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")


def _rows(pool_size: int, per_category: int = 16, seed: int = 0) -> list[dict]:
    """Category c writes only words of its own pool (pools disjoint, ``pool_size`` words each)."""
    rng = random.Random(seed)
    rows = []
    for a, c in enumerate(CATS):
        pool = [f"w{a * 40 + k:03d}" for k in range(pool_size)]
        for k in range(per_category):
            text = " ".join(rng.choice(pool) for _ in range(rng.randint(18, 26)))
            src = "natural" if k % 2 else "synthetic"
            prov = ({"natural": {"source_name": f"src-{c}", "task_name": f"task{k % 4}", "pattern_id": "p"}}
                    if src == "natural" else {"synthetic": {"generator_model": "gen", "prompt_id": c}})
            rows.append({"id": f"{c}-{k:02d}", "category": c, "source": src, "instruction": text,
                         "provenance": prov})
    return rows


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny Llama (real config class) saved with its tokenizer: what --random-init reads."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    config = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    LlamaForCausalLM(config).save_pretrained(folder)
    _word_tokenizer().save_pretrained(folder)
    return folder


def _record_all(model_dir: Path, rows: list[dict], out: Path, model=None, tokenizer=None) -> tuple[Path, list[Path]]:
    from hexainst.analysis.recording.recorder import record

    if model is None:
        from hexainst.analysis.recording.loading import random_init_model

        model = random_init_model(str(model_dir), 100)  # no training: a function of the tokens
    record(model, rows, out / "model", tokenizer=tokenizer or _word_tokenizer(), progress=False, with_sums=True)
    untrained = []
    for seed in (0, 1, 2):
        record(str(model_dir), rows, out / f"untrained-{seed}", random_init=seed, progress=False, with_sums=True)
        untrained.append(out / f"untrained-{seed}")
    return out / "model", untrained


def _analyze(model_store: Path, untrained: list[Path], rows: list[dict], out: Path) -> dict:
    from hexainst.analysis.compute import LexicalSpec
    from hexainst.analysis.pipeline import AnalysisConfig, analyze

    config = AnalysisConfig(eps=0.1, n_permutations=200, n_sweep_permutations=200, n_boot=200,
                            length_strata=3, progress=False, save_sets=False, sweep_eps=(0.1,),
                            sweep_tie_rules=("paper",))
    lexical = LexicalSpec(tokenizer=_word_tokenizer(), texts={r["id"]: r["instruction"] for r in rows})
    clusters = {r["id"]: provenance_cluster(r) for r in rows}
    return analyze(model_store, out, config=config, untrained=untrained, lexical=lexical, clusters=clusters)


def _headline(res: dict, name: str) -> dict:
    return next(h for h in res["controls"]["headlines"] if h["name"] == name)


def test_random_init_is_seeded_and_keeps_the_tokenizer(model_dir: Path, tmp_path: Path) -> None:
    from hexainst.analysis.recording.store import ActivationStore
    from hexainst.cli import main

    rows = _rows(40, per_category=4)
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert main(["record", "--model", str(model_dir), "--rows", str(tmp_path / "rows.jsonl"), "--out",
                     str(tmp_path / name), "--random-init", str(seed)]) == 0
    a, b, c = (ActivationStore.open(tmp_path / x) for x in "abc")
    assert a.header["model"]["random_init"] == 3 and a.header["model"]["weights"] == "random init from config"
    assert np.array_equal(a.counts(), b.counts())
    assert not np.array_equal(a.counts(), c.counts())
    from hexainst.analysis.recording.loading import load_model, tokenizer_sha256

    assert a.header["tokenizer"]["sha256"] == tokenizer_sha256(load_model(str(model_dir)).tokenizer)
    with pytest.raises(SystemExit) as refused:  # a negative seed is refused while parsing
        main(["record", "--model", str(model_dir), "--rows", str(tmp_path / "rows.jsonl"), "--out",
              str(tmp_path / "d"), "--random-init", "-1"])
    assert refused.value.code == 2 and not (tmp_path / "d").exists()


def test_planted_lexical_effect_vanishes_in_the_excess(model_dir: Path, tmp_path: Path) -> None:
    rows = _rows(pool_size=8)  # few words per category: heavy within-category token overlap
    model_store, untrained = _record_all(model_dir, rows, tmp_path)
    res = _analyze(model_store, untrained, rows, tmp_path / "report")
    un, lm = _headline(res, "unmatched"), _headline(res, "length_matched")
    # the effect is there, raw, for the model, every untrained seed and the words alone ...
    assert un["values"]["model"] > 0.05 and un["p_values"]["model"] < 0.01
    assert un["values"]["lexical"] > 0.05 and un["p_values"]["lexical"] < 0.01
    assert un["values"]["untrained mean"] > 0.05
    # ... and vanishes in the excess: its interval reaches 0 and it is a small share of the raw effect
    for h in (un, lm):
        assert h["ci_low"]["excess"] <= 0 <= h["ci_high"]["excess"] or abs(h["values"]["excess"]) < \
            0.2 * h["values"]["model"]
    assert abs(un["values"]["excess"]) < 0.25 * un["values"]["model"]
    claim = res["claims"][0]
    assert claim["verdict"].startswith("holds on the paper's reading but confounded")
    # every shuffle's statistic is below the planted one: the claims table writes the floor as a bound
    assert "(p <= " in claim["paper_value"] and "(the floor of" in claim["paper_value"]
    report = (tmp_path / "report" / "report.md").read_text()
    first = report.split("## Learned function or input structure? (read this first)")[1].split("\n\n")[1]
    # the first paragraph states the excess, as the headline table has it, and says what it means
    assert f"excess **{un['values']['excess']:+.4f} [{un['ci_low']['excess']:+.4f}, " in first
    assert "It is small" in first or "not distinguishable from an untrained model's" in first


def test_planted_learned_effect_survives_the_excess(model_dir: Path, tmp_path: Path) -> None:
    import torch

    from hexainst.analysis.recording.loading import random_init_model

    rows = _rows(pool_size=40)  # many words per category: little token overlap
    model = random_init_model(str(model_dir), 100)
    emb = model.get_input_embeddings().weight
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # "training": each category's words share one direction of the embedding space
        for a in range(len(CATS)):
            direction = torch.randn(emb.shape[1], generator=g)
            for k in range(40):
                tid = 4 + a * 40 + k
                emb[tid] = 0.05 * direction + 0.002 * torch.randn(emb.shape[1], generator=g)
    model_store, untrained = _record_all(model_dir, rows, tmp_path, model=model)
    res = _analyze(model_store, untrained, rows, tmp_path / "report")
    un, lm = _headline(res, "unmatched"), _headline(res, "length_matched")
    assert un["values"]["excess"] > 0.5 * un["values"]["model"]
    for h in (un, lm, _headline(res, "cross_source")):
        assert h["ci_low"]["excess"] > 0, h["name"]
        assert h["p_values"]["excess"] < 0.01, h["name"]
    assert res["claims"][0]["verdict"] == "holds"
    figures = res["figures"]
    assert "fig3_beside_untrained" in figures and (tmp_path / "report" / figures["fig3_beside_untrained"]).is_file()


def _claims_input(model_ratio_matrix: list[list[float]], untrained_matrix: list[list[float]]) -> dict:
    """The least of results.json that the diagonal claim reads: a paper's reading that holds, excesses whose
    intervals lie above 0, and the model's and untrained seeds' Fig. 3 matrices."""
    def headline(name: str) -> dict:
        return {"name": name, "values": {"model": 0.10, "excess": 0.05, "untrained mean": 0.05},
                "ci_low": {"excess": 0.02}, "ci_high": {"excess": 0.08}, "p_values": {}, "n_permutations": 500}

    return {
        "model": {"jaccard": {"categories": ["a", "b"], "matrix": model_ratio_matrix, "permutation": {
            "difference": 0.1, "p_value": 0.001, "diagonal": 0.5, "off_diagonal": 0.4, "n_permutations": 999}}},
        "controls": {"headlines": [headline("unmatched"), headline("length_matched")],
                     "model_matrix": model_ratio_matrix,
                     "untrained": [{"matrix": untrained_matrix}, {"matrix": untrained_matrix}], "lexical": None},
    }


def test_the_diagonal_claim_is_confounded_when_the_ratio_scale_disagrees() -> None:
    from hexainst.analysis.claims import _claim_diagonal, same_cross_ratio

    # the model's sets overlap much more overall: a larger difference (0.10 vs 0.05), a smaller ratio
    model, untrained = [[0.50, 0.40], [0.40, 0.50]], [[0.10, 0.05], [0.05, 0.10]]
    assert same_cross_ratio(model) == 0.50 / 0.40 and same_cross_ratio(untrained) == 0.10 / 0.05
    row = _claim_diagonal(_claims_input(model, untrained), "model")
    assert row.verdict.startswith("holds on the paper's reading but confounded (scale")
    assert "same/cross ratio: model 1.250, untrained 2.000 / 2.000" in row.our_value
    # the same differences with the model also above on the ratio: the claim holds
    row = _claim_diagonal(_claims_input([[0.25, 0.10], [0.10, 0.25]], untrained), "model")
    assert row.verdict == "holds"


def test_the_layers_claim_shows_our_reading_and_the_layer_a_shape_rests_on() -> None:
    from hexainst.analysis.claims import _claim_layers

    def results(profile: list[float], untrained: list[float]) -> dict:
        return {"model": {"is_moe": False, "n_layers": len(profile), "jaccard": {"categories": ["a"]},
                          "isn_per_layer": {"a": profile}},
                "instructions": {"per_category": {"a": 10}},
                "controls": {"untrained_per_layer": {"a": untrained}}}

    # falls only because of one huge early layer: the paper's reading fails, ours names the layer
    row = _claim_layers(results([5, 90, 5, 20, 20, 20, 10, 10, 10], [10] * 9), "model")
    assert row.verdict == "does not hold" and "(not U-shaped: falls)" in row.paper_value
    assert "untrained thirds 10.0 / 10.0 / 10.0" in row.our_value and "rests on layer 1" in row.our_value
    # a U shape that the untrained model has too: confounded
    row = _claim_layers(results([30, 30, 30, 10, 10, 10, 30, 30, 30], [30, 30, 30, 10, 10, 10, 30, 30, 30]), "model")
    assert row.verdict == "holds on the paper's reading but confounded (untrained baseline)"
