"""`hexainst baseline` and the causal check on tiny random-weight Llama models saved to disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hexainst.analysis.baseline import PairsError, load_pairs, resolve_model
from hexainst.cli import main


def test_bundled_pairs_are_the_papers_four() -> None:
    pairs = load_pairs()
    assert {(p["base"], p["fine_tuned"]) for p in pairs.values()} == {
        ("meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-7b-chat-hf"),
        ("meta-llama/Llama-2-13b-hf", "meta-llama/Llama-2-13b-chat-hf"),
        ("mistralai/Mistral-7B-v0.1", "mistralai/Mistral-7B-Instruct-v0.1"),
        ("Qwen/Qwen1.5-MoE-A2.7B", "Qwen/Qwen1.5-MoE-A2.7B-Chat"),
    }


def test_bad_pairs_file_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "pairs.json"
    bad.write_text(json.dumps({"format": "hexainst-model-pairs", "format_version": 1,
                               "pairs": [{"name": "x", "base": "a"}]}))
    with pytest.raises(PairsError, match="fine_tuned"):
        load_pairs(bad)


def test_resolve_model_prefers_local_folders(tmp_path: Path) -> None:
    (tmp_path / "Llama-2-7b-hf").mkdir()
    assert resolve_model("meta-llama/Llama-2-7b-hf", tmp_path) == str(tmp_path / "Llama-2-7b-hf")
    assert resolve_model("meta-llama/Llama-2-7b-chat-hf", tmp_path) == "meta-llama/Llama-2-7b-chat-hf"


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory) -> Path:
    """A tiny Llama 'base' and 'chat' (different random weights, same tokenizer) saved under a model root."""
    from hexainst.analysis.recording.testing import make_tokenizer, tiny_model

    root = tmp_path_factory.mktemp("models")
    tok = make_tokenizer()
    for name, seed in (("tiny-llama", 0), ("tiny-llama-chat", 1)):
        model = tiny_model("llama", seed=seed)
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
    return root


def test_baseline_records_and_analyses_a_pair(tiny_pair: Path, tmp_path: Path) -> None:
    from hexainst.analysis.recording.testing import make_rows

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in make_rows(24, seed=3)))
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps({"format": "hexainst-model-pairs", "format_version": 1, "pairs": [
        {"name": "tiny", "base": "someone/tiny-llama", "fine_tuned": "someone/tiny-llama-chat"}]}))
    out = tmp_path / "run"
    code = main(["baseline", "tiny", "--pairs-file", str(pairs), "--model-root", str(tiny_pair), "--rows", str(rows),
                 "--out", str(out), "--eps", "0.05", "--permutations", "50", "--sweep-permutations", "10",
                 "--bootstrap", "20", "--quiet", "--with-sums"])
    assert code == 0
    res = json.loads((out / "analysis" / "results.json").read_text())
    assert res["stores"]["base"]["header"]["model"]["name_or_path"] == str(tiny_pair / "tiny-llama")
    assert res["stores"]["fine-tuned"]["header"]["model"]["name_or_path"] == str(tiny_pair / "tiny-llama-chat")
    assert len(res["alteration"]["table1_jaccard"]) == 6
    # different random weights: the two models' ISN sets differ
    assert res["alteration"]["table1_overall"] < 1.0
    # exact-k ran in the sweep because the stores hold sums
    assert any(e["tie_rule"] == "exact-k" and "skipped" not in e for e in res["base"]["sweep"])
    assert (out / "analysis" / "figures" / "fig6_venn_per_layer.png").stat().st_size > 0
    code = main(["baseline", "nope", "--pairs-file", str(pairs), "--rows", str(rows), "--out", str(tmp_path / "x")])
    assert code == 2


def test_zeroing_hook_changes_exactly_the_chosen_neurons(tiny_pair: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from hexainst.analysis.causal import ZeroNeurons
    from hexainst.analysis.recording.adapters import adapter_for

    model = AutoModelForCausalLM.from_pretrained(tiny_pair / "tiny-llama").eval()
    acts = adapter_for(model).act_modules(model)
    mlp = model.model.layers[1].mlp
    captured = []
    handle = mlp.down_proj.register_forward_pre_hook(lambda m, a: captured.append(a[0].detach().clone()))
    x = torch.tensor([[1, 5, 6, 7, 8]])
    with torch.inference_mode():
        model(input_ids=x)
        with ZeroNeurons(acts, {1: np.array([0, 3])}):
            model(input_ids=x)
        model(input_ids=x)  # hooks removed on exit
    handle.remove()
    plain, zeroed, after = captured
    keep = [i for i in range(plain.shape[-1]) if i not in (0, 3)]
    assert torch.count_nonzero(plain[..., [0, 3]]) > 0
    assert torch.all(zeroed[..., [0, 3]] == 0)
    assert torch.equal(zeroed[..., keep], plain[..., keep])  # same layer input: other neurons untouched
    assert torch.equal(after, plain)


def test_causal_check_matrix(tiny_pair: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hexainst.analysis.data import open_store
    from hexainst.analysis.pipeline import AnalysisConfig, CausalConfig, CausalSpec, analyze
    from hexainst.analysis.recording import record
    from hexainst.analysis.recording.testing import make_rows

    rows = make_rows(24, seed=4)
    model = AutoModelForCausalLM.from_pretrained(tiny_pair / "tiny-llama").eval()
    tok = AutoTokenizer.from_pretrained(tiny_pair / "tiny-llama")
    store = record(model, rows, tmp_path / "store", tokenizer=tok, progress=False)
    spec = CausalSpec(model=model, tokenizer=tok, texts={r["id"]: r["instruction"] for r in rows},
                      config=CausalConfig(per_category=2))
    cfg = AnalysisConfig(eps=0.05, n_permutations=20, n_sweep_permutations=5, n_boot=10, progress=False,
                         sweep_eps=(0.05,), sweep_tie_rules=("paper",))
    res = analyze(open_store(store.path), tmp_path / "out", config=cfg, causal=spec)
    c = res["causal"]
    effect = np.array(c["effect"], dtype=float)
    assert effect.shape == (6, 6) and np.isfinite(effect).all()
    # effect = ΔNLL(ISNs) − ΔNLL(random), as reported
    np.testing.assert_allclose(effect, np.array(c["delta_nll_isn"]) - np.array(c["delta_nll_random"]))
    assert all(size > 0 for size in c["set_sizes"].values())
    assert (tmp_path / "out" / "figures" / "causal_delta_nll.svg").stat().st_size > 0
    assert "Causal check" in (tmp_path / "out" / "report.md").read_text()


def test_mean_nll_equals_manual_cross_entropy(tiny_pair: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from hexainst.analysis.causal import mean_nll

    model = AutoModelForCausalLM.from_pretrained(tiny_pair / "tiny-llama").eval()
    ids = [1, 5, 9, 6, 7, 8, 12]
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), dim=-1)
    per_token = [-float(logp[t, ids[t + 1]]) for t in range(len(ids) - 1)]
    assert mean_nll(model, [ids], None)[0] == pytest.approx(np.mean(per_token), rel=1e-5)
    assert mean_nll(model, [ids], 2)[0] == pytest.approx(np.mean(per_token[-2:]), rel=1e-5)
    # batched with left padding: the same numbers as one sequence at a time
    seqs = [ids, ids[:3], [1, 7, 7, 7, 7, 7, 7, 7, 7, 9], ids[:2]]
    batched = mean_nll(model, seqs, 4, batch_size=4)
    single = [mean_nll(model, [s], 4, batch_size=1)[0] for s in seqs]
    np.testing.assert_allclose(batched, single, rtol=1e-4)
    assert batched[0] == pytest.approx(np.mean(per_token[-4:]), rel=1e-4)


def test_exclude_shared_removes_the_common_core(tiny_pair: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hexainst.analysis.causal import causal_check
    from hexainst.analysis.isn import IsnSets
    from hexainst.analysis.recording.testing import make_rows

    model = AutoModelForCausalLM.from_pretrained(tiny_pair / "tiny-llama").eval()
    tok = AutoTokenizer.from_pretrained(tiny_pair / "tiny-llama")
    n_layers, width = 3, 48
    layer = np.repeat(np.arange(n_layers), width)
    index = np.tile(np.arange(width), n_layers)
    cats = ["classification", "code", "generalqa", "generation", "math", "summarization"]
    # every category's sets hold columns {0, 1} (shared) plus 3 of their own
    rows_sets = [np.array([0, 1, 10 + 3 * k, 11 + 3 * k, 12 + 3 * k]) for k in range(6)]
    sets = IsnSets(np.arange(0, 31, 5, dtype=np.int64), np.concatenate(rows_sets).astype(np.int32),
                   n_layers * width, 0.05, "paper", "global")
    eval_rows = make_rows(6, seed=1)
    kw = dict(sets=sets, set_categories=cats, eval_rows=eval_rows, categories=cats, neuron_layer=layer,
              neuron_index=index, neuron_expert=np.full(layer.size, -1), progress=False)
    full = causal_check(model, tok, **kw)
    core = causal_check(model, tok, exclude_shared=True, **kw)
    assert full.shared_by_all_categories == 2
    assert all(v == 5 for v in full.set_sizes.values())
    assert all(v == 3 for v in core.set_sizes.values())


def test_baseline_on_a_tiny_qwen2_moe_pair(tmp_path: Path) -> None:
    """The MoE path end to end: real recorder stores (CSR counts, routing), Tables 2 and 6, Fig. 4."""
    from hexainst.analysis.recording.testing import make_rows, make_tokenizer, tiny_model

    root = tmp_path / "models"
    tok = make_tokenizer()
    for name, seed in (("moe", 0), ("moe-chat", 1)):
        tiny_model("qwen2moe", seed=seed).save_pretrained(root / name)
        tok.save_pretrained(root / name)
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in make_rows(18, seed=5)))
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps({"format": "hexainst-model-pairs", "format_version": 1, "pairs": [
        {"name": "tiny-moe", "base": "org/moe", "fine_tuned": "org/moe-chat", "moe": True}]}))
    out = tmp_path / "run"
    assert main(["baseline", "tiny-moe", "--pairs-file", str(pairs), "--model-root", str(root), "--rows", str(rows),
                 "--out", str(out), "--eps", "0.05", "--permutations", "30", "--sweep-permutations", "5",
                 "--bootstrap", "20", "--sweep-eps", "0.05", "--quiet"]) == 0
    res = json.loads((out / "analysis" / "results.json").read_text())
    assert res["base"]["is_moe"] is True
    table2 = res["alteration"]["table2_pearson"]
    assert len(table2) == 6 and all(-1 <= v["mean"] <= 1 for v in table2.values())
    t6 = res["alteration"]["table6"]["code"]
    assert len(t6["base_top5"]) == 5 and len(t6["per_layer"]) == 3
    # routing counts: top-2 of 6 experts on every token of every MoE layer
    from hexainst.analysis.data import open_store

    store = open_store(out / "stores" / "base")
    moe_layers = [j for j in range(store.n_layers) if store.routing[:, j].sum() > 0]
    for j in moe_layers:
        assert np.array_equal(store.routing[:, j].sum(axis=1), 2 * store.n_tokens)
    assert (out / "analysis" / "figures" / "fig4_routing_pearson_base.png").stat().st_size > 0
