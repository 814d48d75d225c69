"""Min-K%++ membership scores: the formula, its meaning on a model that memorised a text, and the
builder storing scores per candidate and rejecting at a threshold."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from stage_runs import synthetic_pools

from hexainst.builders.synthetic.membership import MembershipScorer, min_k_plus_plus
from hexainst.kernel.errors import UserError
from hexainst.kernel.vocab import CATEGORIES


def test_hand_computed_two_token_vocabulary():
    # Every position predicts p = (3/4, 1/4). The log-probabilities are ln(3/4) and ln(1/4); their
    # mean under p is mu, their standard deviation sqrt(3/16) ln 3. Standardised, the likely token
    # scores +1/sqrt(3) and the unlikely one -sqrt(3), whatever the logarithms are (float32: 1e-6).
    logits = torch.tensor([[math.log(3.0), 0.0]] * 6)
    ids = torch.tensor([0, 0, 1, 0, 0, 0])  # scored: 0, 1, 0, 0, 0
    assert min_k_plus_plus(logits, ids, k=0.2) == pytest.approx(-math.sqrt(3), abs=1e-6)
    assert min_k_plus_plus(logits, ids, k=1.0) == pytest.approx((4 / math.sqrt(3) - math.sqrt(3)) / 5, abs=1e-6)
    assert min_k_plus_plus(logits, ids, k=0.4) == pytest.approx((1 / math.sqrt(3) - math.sqrt(3)) / 2, abs=1e-6)


@pytest.mark.parametrize("k", [0.1, 0.2, 0.5, 1.0])
def test_matches_a_float64_numpy_computation(k):
    rng = np.random.default_rng(7)
    logits = rng.normal(0, 3, size=(15, 50))
    ids = rng.integers(0, 50, size=15)
    logp = logits[:-1] - np.log(np.exp(logits[:-1]).sum(axis=1, keepdims=True))
    p = np.exp(logp)
    z = []
    for t in range(14):
        mu = (p[t] * logp[t]).sum()
        sigma = math.sqrt((p[t] * (logp[t] - mu) ** 2).sum())
        z.append((logp[t, ids[t + 1]] - mu) / sigma)
    n = max(1, int(round(k * 14)))
    expected = float(np.mean(sorted(z)[:n]))
    got = min_k_plus_plus(torch.tensor(logits, dtype=torch.float32), torch.tensor(ids), k=k)
    assert got == pytest.approx(expected, abs=1e-4)


def byte_tokenizer():
    """A real byte-level tokenizer (256 byte symbols, no merges) that prepends <bos>: any text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<bos>", "<pad>", "<eos>"]
    vocab = {s: i for i, s in enumerate(specials)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", pad_token="<pad>", eos_token="<eos>")


MEMORISED = "Write a limerick about a lighthouse keeper who collects seashells."
UNSEEN = [
    "Summarize the following paragraph about coral reef bleaching in two sentences.",
    "Classify the sentiment of this review as positive or negative.",
    "What is the capital city of Australia?",
    "Solve for x: 3x + 7 = 22.",
    "Write a Python function that reverses a linked list.",
]


@pytest.fixture(scope="module")
def memorising_model():
    """A tiny Llama (random init) trained on one sentence until it has memorised it."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = byte_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                         bos_token_id=0, pad_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config)
    ids = tok(MEMORISED, return_tensors="pt")["input_ids"]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(150):
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05  # memorised
    return model.eval(), tok


def test_a_memorised_text_scores_higher_than_unseen_ones(memorising_model):
    scorer = MembershipScorer("tiny-memoriser", loaded=memorising_model)
    member = scorer.score(MEMORISED)
    others = [scorer.score(t) for t in UNSEEN]
    assert member > max(others) + 1.0, (member, others)


def test_scores_are_cached_and_reproducible(memorising_model, tmp_path):
    first = MembershipScorer("tiny-memoriser", cache_dir=tmp_path / "c", loaded=memorising_model)
    scores = [first.score(t) for t in UNSEEN]
    assert first.computed == len(UNSEEN) and first.cache_hits == 0
    again = MembershipScorer("tiny-memoriser", cache_dir=tmp_path / "c", loaded=None)  # would load nothing
    assert [again.score(t) for t in UNSEEN] == scores
    assert again.computed == 0 and again.cache_hits == len(UNSEEN)
    # Another k is another score, not a cache hit.
    other_k = MembershipScorer("tiny-memoriser", k=0.5, cache_dir=tmp_path / "c", loaded=memorising_model)
    other_k.score(UNSEEN[0])
    assert other_k.computed == 1


def _pools(out: Path) -> list[dict]:
    return [json.loads(line) for c in CATEGORIES for line in (out / f"{c}.synthetic.jsonl").read_text("utf-8").splitlines()]


def test_build_stores_scores_and_rejects_at_the_threshold(stub, memorising_model, tmp_path):
    model, tok = memorising_model
    folder = tmp_path / "reference-model"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    per = 4
    report = synthetic_pools(tmp_path / "scored", per, base_url=stub.base_url, progress=False, concurrency=4,
                   cache_dir=tmp_path / "cache", membership_model=str(folder))
    rows = _pools(tmp_path / "scored")
    scores = [r["provenance"]["synthetic"]["membership_score"] for r in rows]
    assert len(rows) == per * len(CATEGORIES) and all(isinstance(s, float) for s in scores)
    info = report["filters"]["membership"]
    assert info["model"] == str(folder) and info["k"] == 0.2 and info["threshold"] is None
    assert info["computed"] == len(rows) and "membership" not in report["rejections"]

    threshold = float(np.median(scores))
    report2 = synthetic_pools(tmp_path / "thresholded", per, base_url=stub.base_url, progress=False, concurrency=4,
                    cache_dir=tmp_path / "cache", membership_model=str(folder), membership_threshold=threshold)
    rows2 = _pools(tmp_path / "thresholded")
    kept = [r["provenance"]["synthetic"]["membership_score"] for r in rows2]
    assert report2["rejections"]["membership"] >= sum(s >= threshold for s in scores) > 0
    assert all(s < threshold for s in kept)
    assert report2["filters"]["membership"]["cache_hits"] >= len(rows) - report2["rejections"]["membership"]


def test_threshold_without_a_model_is_an_error(stub, tmp_path):
    with pytest.raises(UserError, match="^membership_threshold needs a membership model"):
        synthetic_pools(tmp_path / "x", 2, base_url=stub.base_url, progress=False, membership_threshold=0.0)


def test_an_unloadable_reference_model_is_named(tmp_path):
    scorer = MembershipScorer(str(tmp_path / "no-such-model"))
    with pytest.raises(UserError, match="no-such-model"):
        scorer.score("Write a haiku about rain.")
