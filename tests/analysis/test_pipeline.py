"""`hexainst analyze` end to end on small stores written by the real StoreWriter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hexainst.analysis.data import ComparisonError
from hexainst.analysis.nulls import format_p
from hexainst.analysis.pipeline import AnalysisConfig, analyze
from hexainst.cli import main
from hexainst.kernel.vocab import CATEGORIES

FAST = AnalysisConfig(eps=0.05, n_permutations=200, n_sweep_permutations=50, n_boot=100, progress=False)


def _figure_files(out: Path) -> list[Path]:
    return sorted((out / "figures").iterdir())


def test_dense_pair_writes_every_output(dense_pair, tmp_path: Path) -> None:
    base, ft = dense_pair
    out = tmp_path / "report"
    res = analyze(base.path, out, store_b=ft.path, config=FAST)
    # planted category blocks: the diagonal is clearly higher, significantly
    perm = res["base"]["jaccard"]["permutation"]
    assert perm["diagonal"] > perm["off_diagonal"] and perm["p_value"] < 0.01
    names = {p.name for p in _figure_files(out)}
    for stem in ("fig3_jaccard_base", "fig3_jaccard_fine-tuned", "fig5_isn_per_layer", "fig6_venn_per_layer",
                 "instruction_lengths"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    assert all(p.stat().st_size > 1000 for p in _figure_files(out))
    for table in ("table1_jaccard_base_vs_ft", "jaccard_base", "sweep_base", "instruction_lengths", "isn_sizes_base"):
        assert (out / "tables" / f"{table}.csv").stat().st_size > 0
        assert (out / "tables" / f"{table}.md").read_text().startswith("|")
    assert (out / "isn_sets" / "base" / "isn_sets.eps0.05.paper-ties.npz").is_file()
    saved = json.loads((out / "results.json").read_text())
    assert saved["parameters"]["eps"] == 0.05
    assert saved["stores"]["base"]["header"]["tokenizer"]["sha256"] == "tok-a"
    assert len(saved["base"]["jaccard"]["matrix"]) == 6
    report = (out / "report.md").read_text()
    # the planted effect beats every shuffle: its p is written as the floor's bound, never as "p = 1/(n+1)"
    assert "figures/fig3_jaccard_base.png" in report and format_p(perm["p_value"], perm["n_permutations"]) in report
    assert perm["p_value"] == pytest.approx(1 / (perm["n_permutations"] + 1)) and f"p = {perm['p_value']:.4f}" not in report
    assert "| `tie_rule` |" in report and '"sha256": "tok-a"' in report
    # the sweep covers 4 eps x 2 tie rules
    assert len(saved["base"]["sweep"]) == 8
    assert {(e["eps"], e["tie_rule"]) for e in saved["base"]["sweep"]} == {
        (e, t) for e in (0.005, 0.01, 0.02, 0.05) for t in ("paper", "exact-k")}


def test_table1_equals_hand_computation(dense_pair, tmp_path: Path) -> None:
    base, ft = dense_pair
    res = analyze(base.path, tmp_path / "r", store_b=ft.path, config=FAST)
    from hexainst.analysis.isn import compute_isn_sets

    sb = compute_isn_sets(base.counts(), eps=0.05)
    sf = compute_isn_sets(ft.counts(), eps=0.05)
    for c in CATEGORIES:
        vals = []
        for r, cat in enumerate(base.categories):
            if cat == c:
                a, b = set(sb.row(r).tolist()), set(sf.row(r).tolist())
                vals.append(len(a & b) / len(a | b))
        assert res["alteration"]["table1_jaccard"][c]["mean"] == pytest.approx(np.mean(vals))


def test_same_inputs_same_bytes(dense_pair, tmp_path: Path) -> None:
    base, _ = dense_pair
    analyze(base.path, tmp_path / "a", config=FAST)
    analyze(base.path, tmp_path / "b", config=FAST)
    for name in ("results.json", "report.md", "figures/fig3_jaccard_model.png", "figures/fig3_jaccard_model.svg",
                 "tables/jaccard_model.csv"):
        a = (tmp_path / "a" / name).read_bytes()
        b = (tmp_path / "b" / name).read_bytes()
        assert a == b, name


def test_tokenizer_mismatch_is_an_error(tmp_path: Path, make_dense) -> None:
    base = make_dense(tmp_path / "base", tokenizer_sha="tok-a")
    other = make_dense(tmp_path / "other", tokenizer_sha="tok-b")
    with pytest.raises(ComparisonError, match="different tokenizers"):
        analyze(base.path, tmp_path / "out", store_b=other.path, config=FAST)
    assert not (tmp_path / "out").exists()
    code = main(["analyze", "--store", str(base.path), "--compare", str(other.path), "--out", str(tmp_path / "o")])
    assert code == 2


def test_policy_and_id_mismatch_are_errors(tmp_path: Path, make_dense) -> None:
    base = make_dense(tmp_path / "base")
    chat = make_dense(tmp_path / "chat", policy={"mode": "chat", "add_special_tokens": True, "bos_in_T": True})
    with pytest.raises(ComparisonError, match="input policies"):
        analyze(base.path, tmp_path / "o1", store_b=chat.path, config=FAST)
    fewer = make_dense(tmp_path / "fewer", per_category=5)
    with pytest.raises(ComparisonError, match="different instructions"):
        analyze(base.path, tmp_path / "o2", store_b=fewer.path, config=FAST)


def test_exact_k_without_sums_fails_clearly(tmp_path: Path, make_dense) -> None:
    store = make_dense(tmp_path / "s", with_sums=False)
    code = main(["analyze", "--store", str(store.path), "--out", str(tmp_path / "o"), "--tie-rule", "exact-k"])
    assert code == 2
    res = analyze(store.path, tmp_path / "o", config=FAST)  # the sweep skips exact-k, and says so
    skipped = [e for e in res["model"]["sweep"] if e["tie_rule"] == "exact-k"]
    assert skipped and all("no activation sums" in e["skipped"] for e in skipped)


def test_moe_pair_tables_2_and_6(moe_pair, tmp_path: Path) -> None:
    base, ft = moe_pair
    out = tmp_path / "moe"
    res = analyze(base.path, out, store_b=ft.path, config=FAST)
    names = {p.name for p in _figure_files(out)}
    assert {"fig4_routing_pearson_base.png", "fig4_routing_pearson_fine-tuned.svg"} <= names
    assert (out / "tables" / "table2_pearson_base_vs_ft.csv").is_file()
    assert (out / "tables" / "table6_expert_selection_per_layer.csv").is_file()
    # Table 6 by hand: token-level counts summed over layers and instructions of the category
    routing_b, routing_f = base.routing, ft.routing
    labels = np.asarray(base.categories)
    for c in CATEGORIES:
        tb = routing_b[labels == c].sum(axis=(0, 1))
        tf = routing_f[labels == c].sum(axis=(0, 1))
        entry = res["alteration"]["table6"][c]
        top_b = sorted(range(tb.size), key=lambda e: (-tb[e], e))[:5]
        top_f = sorted(range(tf.size), key=lambda e: (-tf[e], e))[:5]
        assert [e for e, _ in entry["base_top5"]] == top_b
        assert [n for _, n in entry["base_top5"]] == [int(tb[e]) for e in top_b]
        assert entry["stable"] == sorted(set(top_b) & set(top_f))
    # Table 2 against scipy on one instruction
    from scipy.stats import pearsonr

    f_b = routing_b[0].astype(float).ravel() / base.n_tokens[0]
    f_f = routing_f[0].astype(float).ravel() / ft.n_tokens[0]
    cat0 = base.categories[0]
    rows = [r for r in range(len(base.ids)) if base.categories[r] == cat0]
    want = np.mean([pearsonr(routing_b[r].ravel(), routing_f[r].ravel()).statistic for r in rows])
    assert res["alteration"]["table2_pearson"][cat0]["mean"] == pytest.approx(want)
    assert pearsonr(f_b, f_f).statistic == pytest.approx(pearsonr(routing_b[0].ravel(), routing_f[0].ravel()).statistic)


def test_sampling_is_seeded(dense_pair, tmp_path: Path) -> None:
    base, _ = dense_pair
    cfg = AnalysisConfig(eps=0.05, sample=3, n_permutations=50, n_sweep_permutations=10, n_boot=20,
                         progress=False, save_sets=False)
    res = analyze(base.path, tmp_path / "s", config=cfg)
    assert res["instructions"]["n"] == 18
    assert all(v == 3 for v in res["instructions"]["per_category"].values())
    assert not (tmp_path / "s" / "isn_sets").exists()


def test_rerender_report_from_results(dense_pair, tmp_path: Path) -> None:
    from hexainst.analysis.render import rerender

    base, _ = dense_pair
    out = tmp_path / "r"
    analyze(base.path, out, config=FAST)
    before = (out / "report.md").read_text()
    rerender(out)
    assert (out / "report.md").read_text() == before  # same results, same report
    rerender(out, note="a pilot run")
    text = (out / "report.md").read_text()
    assert text.startswith("# SPARCOM analysis report\n\n> a pilot run\n")
    assert json.loads((out / "results.json").read_text())["parameters"]["note"] == "a pilot run"


def test_per_layer_scope_sets_hold_k_per_layer(dense_pair, tmp_path: Path) -> None:
    from hexainst.analysis.isn import IsnSets, target_size

    base, _ = dense_pair
    cfg = AnalysisConfig(eps=0.05, scope="per-layer", tie_rule="exact-k", n_permutations=20,
                         n_sweep_permutations=5, n_boot=10, sweep_eps=(0.05,), progress=False)
    analyze(base.path, tmp_path / "pl", config=cfg)
    sets = IsnSets.load(tmp_path / "pl" / "isn_sets" / "model" / "isn_sets.eps0.05.exact-k.per-layer.npz")
    per_layer = sets.per_layer_counts(base.neuron_layer, base.n_layers)
    k = target_size(0.05, 60)
    assert np.all(per_layer == k)  # exact-k per layer of 60 neurons


def test_one_category_is_reported_without_a_test(tmp_path: Path, make_dense, capsys) -> None:
    """A store of one category: no across-category comparison, said so, no traceback and no fake p-value."""
    import dataclasses

    from hexainst.analysis.recording.store import ActivationStore, write_store

    full = make_dense(tmp_path / "full")
    rows = [r for r, c in enumerate(full.categories) if c == "code"]
    one = write_store(
        tmp_path / "code-only", instructions=[full.header["instructions"][r] for r in rows],
        n_tokens=full.n_tokens[rows], counts=full.counts(rows), blocks=full.header["layout"]["blocks"],
        n_layers=full.n_layers, model=full.header["model"], tokenizer=full.header["tokenizer"])
    assert isinstance(one, ActivationStore)
    res = analyze(one.path, tmp_path / "o", config=dataclasses.replace(FAST, sweep_eps=(0.05,)))
    perm = res["model"]["jaccard"]["permutation"]
    assert perm["p_value"] is None and perm["off_diagonal"] is None and perm["diagonal"] > 0
    assert res["model"]["sweep"][0]["p_value"] is None
    report = (tmp_path / "o" / "report.md").read_text()
    assert "nothing to compare across categories" in report
    assert main(["analyze", "--store", str(one.path), "--out", str(tmp_path / "cli"), "--quiet",
                 "--permutations", "10", "--sweep-permutations", "5", "--bootstrap", "10"]) == 0
    assert "no across-category test" in capsys.readouterr().out


def test_no_progress_hides_the_progress_bars(dense_pair, tmp_path: Path, capsys) -> None:
    """``analyze --no-progress``, as every other command spells it, shows no progress bar; nor does ``hexainst -q
    analyze``, nor ``analyze --quiet`` (the same as ``-q``, hidden from --help). Without them, the eps sweep
    shows its bar on stderr."""
    base, _ = dense_pair
    argv = ["analyze", "--store", str(base.path), "--permutations", "10", "--sweep-permutations", "5",
            "--bootstrap", "10", "--sweep-eps", "0.05"]
    assert main([*argv, "--out", str(tmp_path / "bars")]) == 0
    assert "eps sweep" in capsys.readouterr().err
    for n, (before, after) in enumerate((((), ("--no-progress",)), ((), ("--quiet",)), (("-q",), ()))):
        assert main([*before, *argv, "--out", str(tmp_path / f"quiet{n}"), *after]) == 0
        assert "eps sweep" not in capsys.readouterr().err, (before, after)


def test_one_instruction_per_category_gives_no_p_value(dense_pair, tmp_path: Path) -> None:
    """--sample 1 without self-pairs: no same-category pair, so no test (was a p-value of 1/(n+1))."""
    import dataclasses

    base, _ = dense_pair
    res = analyze(base.path, tmp_path / "s1", config=dataclasses.replace(FAST, sample=1, sweep_eps=(0.05,)))
    perm = res["model"]["jaccard"]["permutation"]
    assert res["instructions"]["n"] == 6 and perm["p_value"] is None and perm["diagonal"] is None
    assert perm["off_diagonal"] is not None  # across categories is still defined
    assert "no pair of different instructions within a category" in (tmp_path / "s1" / "report.md").read_text()
