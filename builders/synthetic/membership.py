"""Min-K%++ membership scores of candidates under a local reference model.

Min-K%++ (Zhang et al., 2024, "Min-K%++: Improved Baseline for Detecting Pre-Training Data from
Large Language Models") asks how typical each token of a text is under the model's own
next-token distribution. For token ``x_t`` after the prefix ``x_<t``:

    z_t = (log p(x_t | x_<t) - mu_t) / sigma_t
    mu_t = E_{v ~ p(.|x_<t)} [log p(v | x_<t)],  sigma_t^2 = Var_{v ~ p(.|x_<t)} [log p(v | x_<t)]

and the score of the text is the mean of the ``k`` fraction (default 20%) of lowest ``z_t``.
A text the model saw in training has no very surprising tokens, so a *higher* score suggests
membership; a threshold on it flags candidates a generator may have recalled rather than made.

Each text is scored alone (no padding), in float32 with the moments reduced in float64, so the
same model, text and ``k`` give the same score. Scores are cached next to the request cache,
keyed by (model, k, text), so a rerun loads no model when every score is cached.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hexainst.builders.synthetic.cache import RequestCache, request_key
from hexainst.builders.synthetic.generators import generator_registry, resolve_gguf
from hexainst.kernel.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_K = 0.2
SCORE_FORMAT = 1


def min_k_plus_plus(logits: Any, ids: Any, k: float = DEFAULT_K) -> float:
    """The Min-K%++ score of token ids ``ids`` (T,) given the model's ``logits`` (T, V) for them.

    Position ``t`` of ``logits`` predicts token ``t + 1``, so tokens 1..T-1 are scored (the
    first has no prefix; with a BOS token first, every text token is scored).
    """
    import torch  # deferred: torch (~1 s); `hexainst --help` imports this module

    if ids.shape[0] < 2:
        raise ValueError("Min-K%++ needs at least two tokens (a prefix and a scored token)")
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k}")
    logp = torch.log_softmax(logits[:-1].float(), dim=-1)  # (T-1, V)
    p = logp.exp()
    mu = (p * logp).sum(dim=-1, dtype=torch.float64)
    second = (p * logp * logp).sum(dim=-1, dtype=torch.float64)
    sigma = (second - mu * mu).clamp_min(1e-12).sqrt()
    token_logp = logp.gather(-1, ids[1:].unsqueeze(-1)).squeeze(-1).double()
    z = (token_logp - mu) / sigma
    n = max(1, int(round(k * z.shape[0])))
    return float(torch.topk(z, n, largest=False).values.mean())


def _load(model: str) -> tuple[Any, Any]:
    """(model, tokenizer) for a registered embedded generator name, a local folder or a Hub id."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # deferred: transformers (~1 s); --help imports this

    if model in generator_registry()["generators"]:
        gguf = resolve_gguf(model)
        kwargs: dict[str, Any] = {"gguf_file": gguf.name}
        where: Any = gguf.parent
    else:
        kwargs, where = {}, model
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
        lm = AutoModelForCausalLM.from_pretrained(where, dtype="float32", **kwargs)
    except (OSError, ValueError) as exc:
        raise UserError(f"membership reference model {model!r} could not be loaded: {exc}") from None
    return lm.eval(), tokenizer


class MembershipScorer:
    """Scores texts with Min-K%++ under ``model``; the model loads on the first uncached text."""

    def __init__(self, model: str, *, k: float = DEFAULT_K, cache_dir: Path | None = None,
                 loaded: tuple[Any, Any] | None = None) -> None:
        if not 0 < k <= 1:
            raise UserError(f"membership k must be in (0, 1], got {k}")
        self.model_name = model
        self.k = k
        self.cache = RequestCache(cache_dir) if cache_dir is not None else None
        self._loaded = loaded
        self.computed = 0
        self.cache_hits = 0

    def key(self, text: str) -> str:
        """The cache key of a score: the request cache's own key, with the method as its route."""
        return request_key(self.model_name, "min-k%++", text, {"k": self.k}, f"score-v{SCORE_FORMAT}")

    def score(self, text: str) -> float:
        key = self.key(text)
        if self.cache is not None:
            entry = self.cache.get(key)
            if entry is not None:
                self.cache_hits += 1
                return float(entry["score"])
        value = round(self._compute(text), 6)  # what is stored is what the threshold saw
        self.computed += 1
        if self.cache is not None:
            self.cache.put(key, {"score": value, "model": self.model_name, "k": self.k})
        return value

    def _compute(self, text: str) -> float:
        import torch  # deferred: torch (~1 s); `hexainst --help` imports this module

        if self._loaded is None:
            log.info("synthetic: loading the membership reference model %s", self.model_name)
            self._loaded = _load(self.model_name)
        lm, tokenizer = self._loaded
        ids = tokenizer(text, return_tensors="pt")["input_ids"][0]
        if ids.shape[0] == 1 and tokenizer.bos_token_id is not None and ids[0] != tokenizer.bos_token_id:
            ids = torch.cat([torch.tensor([tokenizer.bos_token_id]), ids])  # one token: score it after BOS
        if ids.shape[0] < 2:
            raise UserError(f"membership score: the text {text[:60]!r} has no tokens to score")
        with torch.inference_mode():
            logits = lm(input_ids=ids.unsqueeze(0).to(lm.device)).logits[0]
        return min_k_plus_plus(logits, ids.to(logits.device), self.k)

    def describe(self, threshold: float | None) -> dict[str, Any]:
        return {"method": "Min-K%++ (Zhang et al., 2024): mean of the k lowest standardised token log-probabilities",
                "model": self.model_name, "k": self.k, "threshold": threshold,
                "rule": "rejected when score >= threshold" if threshold is not None else "scores stored, none rejected",
                "computed": self.computed, "cache_hits": self.cache_hits}
