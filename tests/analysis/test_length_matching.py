"""Length-matched category comparison (analysis/length_matching.py) on planted data."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hexainst.analysis.length_matching import length_matched_test, length_strata

CATS = ["a", "b", "c", "d", "e", "f"]


def _planted(n_per=80, seed=1, noise_sd=0.05):
    """Six categories whose lengths differ a lot (but overlap), and a similarity of lengths only."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(CATS, n_per)
    centres = np.repeat(np.linspace(2.4, 4.4, len(CATS)), n_per)
    log_t = centres + rng.normal(0, 0.6, labels.size)
    t = np.maximum(3, np.round(np.exp(log_t))).astype(int)
    lt = np.log(t)
    length_only = 0.6 - 0.12 * np.abs(lt[:, None] - lt[None, :]) + 0.02 * (lt[:, None] + lt[None, :])
    noise = rng.normal(0, noise_sd, length_only.shape)
    noise = (noise + noise.T) / 2
    return labels, t, length_only + noise


def test_pure_length_effect_vanishes_after_matching():
    labels, t, pair = _planted()
    res = length_matched_test(pair, labels, t, n_strata=20, n_permutations=300, seed=0)
    # Before matching the length effect looks like a category effect ...
    assert res.unmatched_difference > 0.03
    raw = length_matched_test(pair, labels, t, n_strata=1, n_permutations=300, seed=0)
    assert raw.p_value < 0.01
    # ... after matching it is (nearly) gone and not significant.
    assert abs(res.difference) < 0.05 * res.unmatched_difference
    assert res.p_value > 0.05
    assert min(res.coverage) > 0.5


def test_residual_length_bias_shrinks_with_finer_strata():
    labels, t, pair = _planted(noise_sd=0.0)
    diffs = [length_matched_test(pair, labels, t, n_strata=k, n_permutations=0).difference for k in (1, 5, 10, 20, 40)]
    assert diffs[0] > 0.03
    assert all(abs(b) < abs(a) for a, b in zip(diffs, diffs[1:]))
    assert abs(diffs[-1]) < 0.01 * diffs[0]


def test_planted_category_effect_survives_matching():
    labels, t, pair = _planted()
    same = labels[:, None] == labels[None, :]
    effect = {"a": 0.0, "b": 0.01, "c": 0.02, "d": 0.03, "e": 0.04, "f": 0.05}
    bonus = np.array([effect[x] for x in labels])
    pair = pair + np.where(same, bonus[:, None], 0.0)
    res = length_matched_test(pair, labels, t, n_strata=20, n_permutations=300, seed=0)
    assert res.difference == pytest.approx(0.025, abs=0.006)
    assert res.p_value < 0.01
    # Per category, the planted size is recovered (roughly) and the order kept.
    assert res.matched[CATS.index("f")] == pytest.approx(0.05, abs=0.012)
    assert res.matched[CATS.index("a")] == pytest.approx(0.0, abs=0.012)
    assert res.p_values[CATS.index("f")] < 0.01
    assert res.p_values[CATS.index("a")] > 0.05


def test_matched_values_equal_a_plain_loop():
    rng = np.random.default_rng(3)
    n = 18
    labels = np.array(list("xyz") * 6)
    t = rng.integers(5, 60, n)
    pair = rng.random((n, n))
    pair = (pair + pair.T) / 2
    pair[2, 7] = pair[7, 2] = np.nan
    strata = length_strata(t, 3)
    res = length_matched_test(pair, labels, t, categories=["x", "y", "z"], n_strata=3, n_permutations=0)
    for ci, c in enumerate(["x", "y", "z"]):
        cells: dict = {}
        for i, j in itertools.combinations(range(n), 2):
            if np.isnan(pair[i, j]):
                continue
            key = tuple(sorted((strata[i], strata[j])))
            kind = "same" if labels[i] == c and labels[j] == c else ("cross" if (labels[i] == c) != (labels[j] == c) else None)
            if kind:
                cells.setdefault(key, {"same": [], "cross": []})[kind].append(pair[i, j])
        num = den = s_num = x_num = 0.0
        for v in cells.values():
            if v["same"] and v["cross"]:
                w = len(v["same"])
                num += w * (np.mean(v["same"]) - np.mean(v["cross"]))
                s_num += w * np.mean(v["same"])
                x_num += w * np.mean(v["cross"])
                den += w
        assert res.matched[ci] == pytest.approx(num / den)
        assert res.matched_same[ci] == pytest.approx(s_num / den)
        assert res.matched_cross[ci] == pytest.approx(x_num / den)


def test_one_stratum_is_the_unmatched_contrast():
    labels, t, pair = _planted(n_per=10)
    res = length_matched_test(pair, labels, t, n_strata=1, n_permutations=0)
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    expected = np.mean([pair[(labels == c)[:, None] & (labels == c)[None, :] & off].mean()
                        - pair[((labels == c)[:, None] ^ (labels == c)[None, :])].mean() for c in CATS])
    assert res.difference == pytest.approx(expected)
    assert res.unmatched_difference == pytest.approx(expected)
    assert same.sum() > 0


def test_length_strata_keep_ties_and_order():
    t = np.array([5, 5, 5, 5, 9, 12, 30, 30, 80, 200])
    s = length_strata(t, 4)
    assert s.max() + 1 <= 4
    assert len(set(s[t == 5])) == 1 and len(set(s[t == 30])) == 1
    assert np.all(np.diff(s[np.argsort(t, kind="stable")]) >= 0)
    assert length_strata(t, 1).tolist() == [0] * 10
    with pytest.raises(ValueError):
        length_strata(np.array([]), 3)


def test_same_seed_same_p_and_unknown_label_refused():
    labels, t, pair = _planted(n_per=12)
    a = length_matched_test(pair, labels, t, n_strata=4, n_permutations=50, seed=5)
    b = length_matched_test(pair, labels, t, n_strata=4, n_permutations=50, seed=5)
    assert a == b
    with pytest.raises(ValueError, match="not among"):
        length_matched_test(pair, labels, t, categories=CATS[:3], n_permutations=0)


def test_analyze_length_matched_option_reports_both_models(dense_pair, tmp_path):
    import json

    from hexainst.cli import main

    base, ft = dense_pair
    out = tmp_path / "analysis"
    rc = main(["analyze", "--store", str(base.path), "--compare", str(ft.path), "--out", str(out),
               "--length-matched", "--length-strata", "3", "--permutations", "20", "--sweep-permutations", "30",
               "--bootstrap", "20", "--sweep-eps", "0.05", "--quiet"])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert results["parameters"]["length_matched"] is True and results["parameters"]["length_strata"] == 3
    for label in ("base", "fine-tuned"):
        lm = results[label]["jaccard"]["length_matched"]
        assert lm["n_strata"] <= 3 and lm["n_permutations"] == 30
        assert len(lm["matched"]) == 6
        # The stores plant a category block of neurons: the effect survives matching.
        assert lm["difference"] > 0.1 and lm["p_value"] < 0.05
        assert (out / "tables" / f"length_matched_{label}.md").is_file()
    report = (out / "report.md").read_text()
    assert "Length-matched: instructions cut into" in report and "length_matched_base.md" in report


def test_analyze_without_the_option_has_no_length_matched_section(dense_pair, tmp_path):
    import json

    from hexainst.cli import main

    base, _ = dense_pair
    out = tmp_path / "analysis"
    assert main(["analyze", "--store", str(base.path), "--out", str(out), "--permutations", "10",
                 "--sweep-permutations", "5", "--bootstrap", "10", "--sweep-eps", "0.05", "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert "length_matched" not in results["model"]["jaccard"]
    assert "Length-matched" not in (out / "report.md").read_text()


def test_analyze_refuses_zero_strata(dense_pair, tmp_path, capsys):
    from hexainst.cli import main

    base, _ = dense_pair
    with pytest.raises(SystemExit) as stop:
        main(["analyze", "--store", str(base.path), "--out", str(tmp_path / "a"), "--length-matched",
              "--length-strata", "0"])
    assert stop.value.code == 2
    assert "argument --length-strata: must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
