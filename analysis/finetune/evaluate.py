"""Did the tuning work? NLL of held-out responses given their instructions, and greedy answers.

:func:`response_nll` scores, for each held-out row, the response tokens (the same tokens the
recipe trains on) under one of two contexts:

- ``instruction``: the recipe's prompt format with the instruction (what the tuned model learns);
- ``none``: BOS alone (what the control learns).

Sums are accumulated in float64 per row; the result keeps per-row sums and token counts so that
pooled means and paired bootstrap intervals (:func:`paired_difference`) come from the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .data import IGNORE, encode, prompt_text
from .recipe import Recipe

CONTEXTS = {"instruction": "tuned", "none": "control"}


@dataclass(frozen=True)
class NllResult:
    """Per-row NLL sums (nats, float64) and token counts of the response tokens."""

    context: str
    nll_sum: np.ndarray
    n_tokens: np.ndarray

    @property
    def per_token(self) -> float:
        """Pooled mean NLL per response token (nats)."""
        return float(self.nll_sum.sum() / self.n_tokens.sum())

    def as_dict(self) -> dict[str, Any]:
        return {"context": self.context, "nll_per_token": self.per_token, "rows": int(self.n_tokens.size),
                "tokens": int(self.n_tokens.sum())}


def response_nll(model: Any, tokenizer: Any, recipe: Recipe, rows: list[dict[str, str]], context: str = "instruction",
                 *, batch_size: int | None = None, progress: bool = False) -> NllResult:
    """NLL of each row's response tokens given ``context`` (``instruction`` or ``none``)."""
    import torch  # deferred: torch is heavy; only the scoring needs it

    if context not in CONTEXTS:
        raise ValueError(f"unknown context {context!r}; expected one of {', '.join(CONTEXTS)}")
    batch_size = batch_size or int(recipe.evaluation["batch_size"])
    examples = [e for e in (encode(recipe, tokenizer, r, CONTEXTS[context]) for r in rows) if e is not None]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    sums = np.zeros(len(examples), dtype=np.float64)
    counts = np.zeros(len(examples), dtype=np.int64)
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        batches = tqdm(batches, desc=f"NLL ({context})", unit="batch")
    model.eval()
    with torch.inference_mode():
        for batch in batches:
            width = max(len(examples[i]["input_ids"]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, i in enumerate(batch):
                n = len(examples[i]["input_ids"])
                ids[r, :n] = torch.tensor(examples[i]["input_ids"])
                labels[r, :n] = torch.tensor(examples[i]["labels"])
                mask[r, :n] = 1
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            target = labels[:, 1:]
            keep = target != IGNORE
            # Only the scored positions: (tokens, vocab) instead of (batch, length, vocab).
            tok = torch.nn.functional.cross_entropy(logits[keep].float(), target[keep], reduction="none").double()
            row = torch.arange(len(batch)).unsqueeze(1).expand_as(keep)[keep]
            per_row = torch.zeros(len(batch), dtype=torch.float64).index_add_(0, row, tok)
            for r, i in enumerate(batch):
                sums[i] = float(per_row[r])
                counts[i] = int(keep[r].sum())
    return NllResult(context=context, nll_sum=sums, n_tokens=counts)


def paired_difference(a: NllResult, b: NllResult, *, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> dict[str, float]:
    """Pooled per-token NLL of ``b`` minus ``a`` on the same rows, with a row bootstrap interval."""
    if not np.array_equal(a.n_tokens, b.n_tokens):
        raise ValueError("the two NLL results are not on the same rows and tokens")
    rng = np.random.default_rng(seed)
    n = a.n_tokens.size
    idx = rng.integers(0, n, size=(n_boot, n))
    tokens = a.n_tokens[idx].sum(axis=1)
    boot = (b.nll_sum[idx].sum(axis=1) - a.nll_sum[idx].sum(axis=1)) / tokens
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2]) if n_boot else (np.nan, np.nan)
    per_row = b.nll_sum / b.n_tokens - a.nll_sum / a.n_tokens
    return {"difference": b.per_token - a.per_token, "ci_low": float(lo), "ci_high": float(hi),
            "rows_lower": int(np.count_nonzero(per_row < 0)), "rows": int(n)}


def greedy_answers(model: Any, tokenizer: Any, recipe: Recipe, rows: list[dict[str, str]],
                   *, max_new_tokens: int | None = None) -> list[str]:
    """Greedy continuations of each row's prompt (the recipe's format), cut at the end-of-turn text."""
    import torch  # deferred: torch is heavy; only the scoring needs it

    max_new_tokens = max_new_tokens or int(recipe.evaluation["max_new_tokens"])
    stop = recipe.prompt["response"].split("{output}")[1]
    stop_ids = tokenizer(stop, add_special_tokens=False)["input_ids"] if stop else []
    eos = [tokenizer.eos_token_id] + (stop_ids[:1] if len(stop_ids) == 1 else [])
    out = []
    model.eval()
    with torch.inference_mode():
        for row in rows:
            enc = tokenizer(prompt_text(recipe, row), return_tensors="pt", add_special_tokens=True)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos,
                                 pad_token_id=tokenizer.pad_token_id)
            text = tokenizer.decode(gen[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            if stop and stop in text:
                text = text.split(stop)[0]
            out.append(text.strip())
    return out
