"""The held-out causal check (issue #22) on a tiny real Llama with planted category-specific neurons.

The model is a tiny random Llama whose layer-1 MLP gets, per category, three planted neurons
that fire on that category's target word and write that word's unembedding into the residual:
they make the category's responses predictable, and nothing else. The check must find the
planted sets (own set most damaging everywhere, exact p at its floor), must not find anything
when the sets are assigned to the wrong categories, must draw random neurons matched on firing
rate, and must refuse a circular design.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from hexainst.analysis.causal_design import (
    DesignError,
    assignment_test,
    check_disjoint,
    firing_rates,
    heldout_split,
    matched_random,
    rate_match,
    specificity,
)

CATS = ["classification", "code", "generalqa", "generation", "math", "summarization"]
TARGETS = ["sports", "politics", "science", "story", "math", "news"]
LAYER, WIDTH, PLANTED = 1, 48, 3


def _rows(per_category: int, seed: int = 0) -> tuple[list[dict], dict[str, str]]:
    from hexainst.analysis.recording.testing import WORDS

    rng = random.Random(seed)
    filler = [w for w in WORDS if w not in TARGETS]
    rows, responses = [], {}
    for k, c in enumerate(CATS):
        for i in range(per_category):
            words = [rng.choice(filler) for _ in range(rng.randint(4, 12))] + [TARGETS[k]]
            rid = f"{c}-{i:02d}"
            rows.append({"id": rid, "category": c, "source": "natural", "instruction": " ".join(words)})
            responses[rid] = " ".join([TARGETS[k]] * 6)
    return rows, responses


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(model, tokenizer, store, rows, responses): a tiny Llama with planted neurons, recorded on the rows."""
    import torch

    from hexainst.analysis.data import open_store
    from hexainst.analysis.recording import record
    from hexainst.analysis.recording.testing import make_tokenizer, tiny_model

    torch.manual_seed(0)
    tok = make_tokenizer()
    model = tiny_model("llama", seed=0).eval()
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    mlp = model.model.layers[LAYER].mlp
    with torch.no_grad():
        for k, word in enumerate(TARGETS):
            t = tok.convert_tokens_to_ids(word)
            emb[t] *= 12.0  # the word dominates the residual where it is the input
            e = emb[t] / emb[t].norm()
            u = head[t] / head[t].norm()
            for j in range(PLANTED * k, PLANTED * k + PLANTED):
                mlp.gate_proj.weight[j] = 4.0 * e
                mlp.up_proj.weight[j] = 4.0 * e
                mlp.down_proj.weight[:, j] = 1.0 * u
    rows, responses = _rows(14)
    store = record(model, rows, tmp_path_factory.mktemp("store") / "s", tokenizer=tok, progress=False)
    return model, tok, open_store(store.path), rows, responses


def _sets(store, assignment: list[int]):
    """ISN sets: rows of category k hold the planted neurons of category assignment[k], plus one noise column."""
    from hexainst.analysis.isn import IsnSets

    rng = np.random.default_rng(1)
    offset = int(np.flatnonzero(store.neuron_layer == LAYER)[0])
    parts = []
    for c in store.categories:
        k = assignment[CATS.index(c)]
        cols = offset + np.arange(PLANTED * k, PLANTED * k + PLANTED)
        noise = rng.integers(0, store.n_cols)
        parts.append(np.unique(np.append(cols, noise)))
    indptr = np.concatenate([[0], np.cumsum([p.size for p in parts])]).astype(np.int64)
    return IsnSets(indptr, np.concatenate(parts).astype(np.int32), store.n_cols, 0.05, "paper", "global",
                   ids=tuple(store.ids))


def _check(planted, assignment, **kw):
    from hexainst.analysis.causal import CausalInputs, heldout_causal_check
    from hexainst.analysis.config import CausalConfig

    model, tok, store, rows, responses = planted
    inputs = CausalInputs(
        model=model, tokenizer=tok, sets=_sets(store, assignment), row_categories=store.categories,
        counts=store.counts(), n_tokens=store.n_tokens, texts={r["id"]: r["instruction"] for r in rows},
        responses=responses, neuron_layer=store.neuron_layer, neuron_index=store.neuron_index,
        neuron_expert=store.neuron_expert, categories=CATS, **kw)
    return heldout_causal_check(CausalConfig(per_category=5, n_random=3, n_boot=200, progress=False), inputs)


def test_planted_category_sets_are_detected(planted) -> None:
    res = _check(planted, list(range(6)))
    assert res.own_set_rank == [1] * 6
    assert res.specificity > 0 and res.ci_low > 0
    assert res.p_value == pytest.approx(1 / 720)
    # the evaluated rows never built a set
    for c in CATS:
        assert res.n_build[c] == 14 - 5 and len(res.eval_ids[c]) == 5
        assert res.targets[c] == {"response": 5, "continuation": 0}
    # each planted set's zeroing hurts its own rows more than matched random neurons do
    assert np.all(np.diagonal(res.delta_nll_isn) > np.diagonal(res.delta_nll_random))


def test_sets_assigned_to_the_wrong_categories_are_not_detected(planted) -> None:
    # every category's rows carry the next category's planted neurons: nothing own-category remains
    res = _check(planted, [(k + 1) % 6 for k in range(6)])
    assert res.specificity < 0
    assert res.p_value > 0.5
    assert all(r > 1 for r in res.own_set_rank)


def test_a_circular_design_is_refused(planted) -> None:
    from hexainst.analysis.causal import CausalError

    _, _, store, _, _ = planted
    ids = list(store.ids)
    with pytest.raises(CausalError, match="circular design"):
        _check(planted, list(range(6)), eval_ids=ids[:12], build_ids=ids)
    with pytest.raises(DesignError, match="circular"):
        check_disjoint(["a", "b"], ["b", "c"])


def test_the_old_design_reports_that_it_is_circular(planted) -> None:
    from hexainst.analysis.causal import causal_check

    model, tok, store, rows, _ = planted
    sets = _sets(store, list(range(6)))
    res = causal_check(model, tok, sets=sets, set_categories=store.categories, eval_rows=rows[:6] + rows[14:20],
                       categories=CATS, neuron_layer=store.neuron_layer, neuron_index=store.neuron_index,
                       neuron_expert=store.neuron_expert, progress=False)
    assert res.circular_rows == 12


def test_random_draws_in_the_check_are_matched_on_firing_rate(planted) -> None:
    res = _check(planted, list(range(6)))
    _, _, store, _, _ = planted
    for c in CATS:
        assert res.random_sizes[c] == [res.set_sizes[c]] * 3
        for m in res.rate_match[c]:
            assert abs(m["mean_rate_set"] - m["mean_rate_random"]) < 0.1
    # the draws differ from each other (several draws, not one repeated)
    assert not np.allclose(res.delta_nll_random_draws[0], res.delta_nll_random_draws[1])


def test_matched_random_matches_rates_where_plain_random_does_not() -> None:
    rng = np.random.default_rng(0)
    layer = np.repeat(np.arange(3), 200)
    rates = rng.uniform(0.0, 0.6, size=600)
    high = np.concatenate([np.arange(0, 200, 10), np.arange(200, 400, 10)])
    rates[high] = rng.uniform(0.95, 1.0, size=high.size)  # the chosen: fire on nearly every token
    extra = np.concatenate([np.arange(3, 400, 10), np.arange(5, 400, 10)])
    rates[extra] = rng.uniform(0.93, 1.0, size=extra.size)  # twice as many candidates of the same rate
    drawn = matched_random(high, rates, layer, np.random.default_rng(1), pool=3)
    assert drawn.size == high.size and not np.intersect1d(drawn, high).size
    assert np.array_equal(np.bincount(layer[drawn], minlength=3), np.bincount(layer[high], minlength=3))
    assert rate_match(high, drawn, rates)["max_quantile_gap"] < 0.08
    plain = np.random.default_rng(1).choice(np.setdiff1d(np.arange(400), high), size=high.size, replace=False)
    assert rate_match(high, plain, rates)["max_quantile_gap"] > 0.3
    # seeded: the same draw again
    assert np.array_equal(drawn, matched_random(high, rates, layer, np.random.default_rng(1), pool=3))


def test_firing_rates_are_counts_over_tokens() -> None:
    counts = np.array([[2, 0, 5], [1, 1, 1]], dtype=np.uint16)
    n_tokens = np.array([5, 2])
    np.testing.assert_allclose(firing_rates(counts, n_tokens), [3 / 7, 1 / 7, 6 / 7])
    np.testing.assert_allclose(firing_rates(counts, n_tokens, np.array([1])), [0.5, 0.5, 0.5])


def test_split_is_per_category_seeded_and_disjoint() -> None:
    labels = np.repeat(CATS, 10)
    eligible = np.tile(np.arange(10) % 2 == 0, 6)
    ev, build = heldout_split(labels, CATS, 3, seed=5, eligible=eligible)
    assert ev.size == 18 and build.size == 42 and not np.intersect1d(ev, build).size
    assert all(eligible[ev]) and all(np.count_nonzero(labels[ev] == c) == 3 for c in CATS)
    assert np.array_equal(ev, heldout_split(labels, CATS, 3, seed=5, eligible=eligible)[0])
    assert not np.array_equal(ev, heldout_split(labels, CATS, 3, seed=6, eligible=eligible)[0])
    with pytest.raises(DesignError, match="5 rows can be evaluated, 6 asked"):
        heldout_split(labels, CATS, 6, seed=0, eligible=eligible)


def test_assignment_test_against_a_plain_loop() -> None:
    import itertools

    rng = np.random.default_rng(3)
    E = rng.normal(size=(4, 4)) + np.eye(4) * 0.8
    res = assignment_test(E)
    loop = []
    for perm in itertools.permutations(range(4)):
        own = [E[perm[b], b] for b in range(4)]
        others = [np.mean([E[a, b] for a in range(4) if a != perm[b]]) for b in range(4)]
        loop.append(np.mean(np.subtract(own, others)))
    assert res["specificity"] == pytest.approx(loop[0])
    assert res["p_value"] == pytest.approx(np.mean(np.array(loop) >= loop[0] - 1e-12))
    assert res["n_assignments"] == 24
    assert specificity(np.ones((3, 3))) == 0.0
