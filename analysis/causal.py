"""Causal check (beyond the paper): does zeroing a category's ISNs hurt that category most?

Two designs live here. :func:`heldout_causal_check` is the one to report (issue #22): sets built
from instructions disjoint from the evaluated ones, random neurons matched on firing rate, several
draws, loss on responses, an exact permutation test over the assignment of sets to categories
and a bootstrap interval (design functions in :mod:`hexainst.analysis.causal_design`).
:func:`causal_check` is the earlier, circular design (kept as a library function for comparison; it
reports how many evaluated rows built the sets; ``hexainst analyze`` no longer runs it), described next.

For each category m, its ISNs C(m) (the most frequent members of its instructions' ISN sets,
:func:`hexainst.analysis.isn.category_neuron_set`) are zeroed on the output of every dense MLP's
``act_fn`` through a forward hook, i.e. ``act_fn(gate_proj(x))[..., C(m)] = 0`` before the
product with ``up_proj``. The control zeroes as many random neurons from the same layers
(seeded, disjoint from C(m)). For every evaluated category m' the mean next-token NLL per
token of its instructions is measured, giving a category x category matrix of
``ΔNLL(ISNs) − ΔNLL(random)`` (ablated category in rows, evaluated category in columns).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from hexainst.analysis import causal_design as design
from hexainst.analysis.config import CausalConfig
from hexainst.analysis.isn import IsnSets, category_neuron_set
from hexainst.analysis.recording.adapters import adapter_for
from hexainst.analysis.recording.recorder import InputPolicy, tokenize
from hexainst.kernel.errors import UserError
from hexainst.kernel.vocab import DEFAULT_SEED, SHORT_NAMES


class CausalError(UserError):
    """The causal check cannot run (MoE store, tokenizer mismatch, missing instruction text)."""


@dataclass
class CausalResult:
    """The causal check: category x category matrices (zeroed category in rows, evaluated in columns).

    delta_nll_isn, delta_nll_random, effect: float [m, m] (nats per token); effect = isn - random.
    """

    categories: list[str]
    set_sizes: dict[str, int]
    per_category: int
    baseline_nll: dict[str, float]
    delta_nll_isn: np.ndarray
    delta_nll_random: np.ndarray
    effect: np.ndarray
    diagonal_mean: float
    off_diagonal_mean: float
    seed: int
    max_predicted_tokens: int | None
    shared_by_all_categories: int
    exclude_shared: bool
    set_rule: str
    #: The model the check ran on (a name for the report).
    model: str = ""
    #: Evaluated instructions that are also among the instructions the sets were built from. This
    #: design is circular whenever it is > 0; :func:`heldout_causal_check` is the design that is not.
    circular_rows: int = 0


def layer_indices(
    columns: np.ndarray, neuron_layer: np.ndarray, neuron_index: np.ndarray
) -> dict[int, np.ndarray]:
    """Store columns -> {layer: neuron indices within that layer's act_fn output (int64, sorted)}."""
    columns = np.asarray(columns, dtype=np.int64)
    layers = np.asarray(neuron_layer, dtype=np.int64)[columns]
    index = np.asarray(neuron_index, dtype=np.int64)[columns]
    return {int(lay): np.sort(index[layers == lay]) for lay in np.unique(layers)}


def random_like(
    chosen: Mapping[int, np.ndarray], layer_width: Mapping[int, int], rng: np.random.Generator
) -> dict[int, np.ndarray]:
    """As many random neurons per layer as ``chosen`` has, none of them in ``chosen``."""
    out = {}
    for lay, idx in chosen.items():
        pool = np.setdiff1d(np.arange(layer_width[lay]), idx)
        out[lay] = np.sort(rng.choice(pool, size=min(idx.size, pool.size), replace=False))
    return out


class ZeroNeurons:
    """Context manager: forward hooks that zero given neurons of given layers' act_fn outputs."""

    def __init__(self, act_modules: Sequence[tuple[int, Any]], zero: Mapping[int, np.ndarray]):
        self.modules = dict(act_modules)
        self.zero = zero
        self.handles: list[Any] = []

    def __enter__(self) -> ZeroNeurons:
        import torch  # deferred: torch (~1 s); the reports import this module to render, with no model

        for lay, idx in self.zero.items():
            if idx.size == 0:
                continue
            if lay not in self.modules:
                raise CausalError(f"layer {lay} has no dense act_fn module to hook")
            index = torch.as_tensor(idx, dtype=torch.long)

            def hook(_module, _inputs, output, index=index):
                out = output.clone()
                out[..., index.to(out.device)] = 0
                return out

            self.handles.append(self.modules[lay].register_forward_hook(hook))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def mean_nll(
    model: Any, token_ids: Sequence[Sequence[int]], max_predicted: int | None = CausalConfig.max_predicted, *,
    batch_size: int = 8,
    pad_id: int = 0,
) -> np.ndarray:
    """Mean next-token NLL (nats per predicted token) of each token sequence: float64 [n].

    Only the last ``max_predicted`` next-token predictions of each sequence are scored, through
    ``logits_to_keep`` (the LM head of a 262k-vocabulary model costs more than the rest of the
    forward); the zeroing still acts on every position. None scores them all. Sequences are
    batched with left padding (masked, explicit positions), so the scored positions are the
    last ones of every row; fp32 cross-entropy.
    """
    n_scored = [len(t) - 1 if max_predicted is None else min(len(t) - 1, max_predicted) for t in token_ids]
    return nll_of_last(model, token_ids, n_scored, batch_size=batch_size, pad_id=pad_id)


def nll_of_last(model: Any, token_ids: Sequence[Sequence[int]], n_scored: Sequence[int], *, batch_size: int = 8,
                pad_id: int = 0) -> np.ndarray:
    """Mean NLL (nats per token) of the last ``n_scored[k]`` tokens of each sequence k: float64 [n].

    A sequence with fewer than 2 tokens or nothing to score gets NaN. Left padding, masked, with
    explicit positions; ``logits_to_keep`` so only the scored positions reach the LM head; fp32.
    """
    import torch  # deferred: torch (~1 s); the reports import this module to render, with no model

    device = next(model.parameters()).device
    out = np.full(len(token_ids), np.nan, dtype=np.float64)
    scored = [min(int(n), len(token_ids[k]) - 1) for k, n in enumerate(n_scored)]
    order = sorted(range(len(token_ids)), key=lambda k: -len(token_ids[k]))
    order = [k for k in order if len(token_ids[k]) >= 2 and scored[k] >= 1]
    with torch.inference_mode():
        for b0 in range(0, len(order), batch_size):
            batch = order[b0 : b0 + batch_size]
            width = max(len(token_ids[k]) for k in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, k in enumerate(batch):
                seq = list(token_ids[k])
                ids[r, width - len(seq) :] = torch.as_tensor(seq)
                mask[r, width - len(seq) :] = 1
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            keep = max(scored[k] for k in batch) + 1
            logits = model(
                input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                use_cache=False, logits_to_keep=keep,
            ).logits[:, :-1].float()  # [b, keep - 1, V]: predictions of the last keep - 1 tokens
            for r, k in enumerate(batch):
                n = scored[k]
                targets = ids[r, width - n :].to(logits.device)
                out[k] = float(torch.nn.functional.cross_entropy(logits[r, -n:], targets, reduction="mean"))
    return out


def causal_check(
    model: Any,
    tokenizer: Any,
    *,
    sets: IsnSets,
    set_categories: Sequence[str],
    eval_rows: Sequence[Mapping[str, Any]],
    categories: Sequence[str],
    neuron_layer: np.ndarray,
    neuron_index: np.ndarray,
    neuron_expert: np.ndarray,
    input_policy: Mapping[str, Any] | None = None,
    seed: int = DEFAULT_SEED,
    max_predicted: int | None = CausalConfig.max_predicted,
    exclude_shared: bool = False,
    progress: bool = True,
    model_name: str = "",
) -> CausalResult:
    """Run the check; return its matrices and per-category NLLs.

    sets/set_categories: the analysed ISN sets and their instructions' categories (define C(m));
    eval_rows: dicts with ``category`` and ``instruction`` (the instructions whose NLL is measured).
    Circular when the evaluated rows are among the sets' rows (the result's ``circular_rows`` says
    how many, by id); :func:`heldout_causal_check` keeps them apart.
    """
    if np.any(np.asarray(neuron_expert) >= 0):
        raise CausalError("the causal check supports dense MLPs only (this store has expert neurons)")
    act_modules = adapter_for(model).act_modules(model)
    pad_id = getattr(tokenizer, "pad_token_id", None)
    pad_id = int(pad_id) if pad_id is not None else 0
    labels = np.asarray(set_categories)
    layer_width = {int(lay): int(np.count_nonzero(np.asarray(neuron_layer) == lay))
                   for lay in np.unique(neuron_layer)}
    policy = InputPolicy.coerce(dict(input_policy) if input_policy else None)
    token_ids = [tokenize(tokenizer, str(r["instruction"]), policy)[0] for r in eval_rows]
    eval_labels = np.asarray([r["category"] for r in eval_rows])
    rng = np.random.default_rng(seed)
    conditions: list[tuple[str, str | None, dict[int, np.ndarray]]] = [("none", None, {})]
    set_sizes = {}
    cat_sets = {c: category_neuron_set(sets, np.flatnonzero(labels == c)) for c in categories}
    shared = np.zeros(0, dtype=np.int64)
    if categories:
        shared = cat_sets[categories[0]]
        for c in categories[1:]:
            shared = np.intersect1d(shared, cat_sets[c])
    for c in categories:
        cols = np.setdiff1d(cat_sets[c], shared) if exclude_shared else cat_sets[c]
        chosen = layer_indices(cols, neuron_layer, neuron_index)
        set_sizes[c] = int(cols.size)
        conditions.append(("isn", c, chosen))
        conditions.append(("random", c, random_like(chosen, layer_width, rng)))
    iterator = conditions
    if progress:
        iterator = tqdm(conditions, desc="causal check", unit="condition")
    nll: dict[tuple[str, str | None], np.ndarray] = {}
    for kind, cat, zero in iterator:
        with ZeroNeurons(act_modules, zero):
            nll[(kind, cat)] = mean_nll(model, token_ids, max_predicted, pad_id=pad_id)
    base = nll[("none", None)]
    m = len(categories)
    d_isn = np.full((m, m), np.nan)
    d_rand = np.full((m, m), np.nan)
    for a, ca in enumerate(categories):
        for b, cb in enumerate(categories):
            sel = eval_labels == cb
            if sel.any():
                d_isn[a, b] = float(np.nanmean(nll[("isn", ca)][sel] - base[sel]))
                d_rand[a, b] = float(np.nanmean(nll[("random", ca)][sel] - base[sel]))
    effect = d_isn - d_rand
    off = ~np.eye(m, dtype=bool)
    return CausalResult(
        categories=list(categories),
        set_sizes=set_sizes,
        per_category=int(min(np.count_nonzero(eval_labels == c) for c in categories)),
        baseline_nll={c: float(np.nanmean(base[eval_labels == c])) for c in categories},
        delta_nll_isn=d_isn,
        delta_nll_random=d_rand,
        effect=effect,
        diagonal_mean=float(np.nanmean(np.diagonal(effect))) if m else float("nan"),
        off_diagonal_mean=float(np.nanmean(effect[off])) if off.any() else float("nan"),
        seed=seed,
        max_predicted_tokens=max_predicted,
        shared_by_all_categories=int(shared.size),
        exclude_shared=exclude_shared,
        set_rule="median-|S(I)| most frequent members of the category's ISN sets",
        model=model_name,
        circular_rows=int(len({str(r["id"]) for r in eval_rows if "id" in r} & set(map(str, sets.ids)))),
    )


# --- the held-out design (issue #22) ---------------------------------------------------------------


@dataclass(frozen=True)
class CausalInputs:
    """What :func:`heldout_causal_check` runs on: the model, the analysed rows and the instruction texts.

    ``sets``: ISN sets of the analysed instructions (``sets.ids`` their ids); ``row_categories``
    their categories; ``counts``/``n_tokens`` the store's counts [n, neurons] and T [n] of the same
    rows (firing rates, over the set-building rows only); ``neuron_layer``/``neuron_index``/
    ``neuron_expert`` [neurons] where each store column sits in the model. ``texts``: id ->
    instruction; ``responses``: id -> reference response
    (:func:`hexainst.analysis.causal_responses.natural_responses`) or None, ``responses_source``
    the folder they came from. ``categories``: their order (default: sorted). ``eval_ids`` and
    ``build_ids`` fix the design instead of the seeded split (both or neither; never overlapping).
    """

    model: Any
    tokenizer: Any
    sets: IsnSets
    row_categories: Sequence[str]
    counts: np.ndarray
    n_tokens: np.ndarray
    texts: Mapping[str, str]
    neuron_layer: np.ndarray
    neuron_index: np.ndarray
    neuron_expert: np.ndarray
    responses: Mapping[str, str] | None = None
    responses_source: str | None = None
    categories: Sequence[str] | None = None
    input_policy: Mapping[str, Any] | None = None
    eval_ids: Sequence[str] | None = None
    build_ids: Sequence[str] | None = None
    model_name: str = ""


@dataclass
class HeldoutCausalResult:
    """The held-out causal check. Matrices are [zeroed set (rows), evaluated category (columns)], nats/token.

    effect = delta_nll_isn - delta_nll_random (random: mean over the matched draws).
    """

    categories: list[str]
    config: dict[str, Any]
    seed: int
    model: str
    eval_ids: dict[str, list[str]]
    n_build: dict[str, int]
    targets: dict[str, dict[str, int]]
    set_sizes: dict[str, int]
    random_sizes: dict[str, list[int]]
    rate_match: dict[str, list[dict[str, float]]]
    baseline_nll: dict[str, float]
    delta_nll_isn: np.ndarray
    delta_nll_random: np.ndarray
    delta_nll_random_draws: np.ndarray
    effect: np.ndarray
    specificity: float
    ci_low: float
    ci_high: float
    p_value: float
    n_assignments: int
    null_mean: float
    own_set_rank: list[int]
    seconds: float
    seconds_per_instruction_condition: float
    #: Where the responses came from (the source mirror's folder), or None when none was given:
    #: then every row is scored on its instruction.
    responses_source: str | None = None

    @property
    def p_floor(self) -> float:
        """The smallest p the test can give: 1 / (number of assignments)."""
        return 1.0 / self.n_assignments

    @property
    def at_floor(self) -> bool:
        return self.p_value <= self.p_floor + 1e-12

    def p_text(self) -> str:
        """The test's p as the report writes it: ``p <= 1/n`` at the floor."""
        return heldout_p_text(self.p_value, self.n_assignments)

    def max_rate_gap(self) -> float:
        """The largest quantile gap between a set's firing rates and any of its random draws'."""
        return max((m["max_quantile_gap"] for ms in self.rate_match.values() for m in ms), default=float("nan"))

    def as_dict(self) -> dict[str, Any]:
        out = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}
        m = len(self.categories)
        off = ~np.eye(m, dtype=bool)
        out["design"] = ("held out: sets from instructions disjoint from the evaluated ones; random neurons matched "
                         "on firing rate in the same layers; exact test over the assignment of sets to categories")
        out["p_floor"] = self.p_floor
        out["p_text"] = self.p_text()
        out["max_rate_gap"] = self.max_rate_gap()
        out["diagonal_mean"] = float(np.nanmean(np.diagonal(self.effect))) if m else float("nan")
        out["off_diagonal_mean"] = float(np.nanmean(self.effect[off])) if off.any() else float("nan")
        return out

    def __json__(self) -> dict[str, Any]:
        return self.as_dict()

    def markdown(self) -> list[str]:
        """The report section (a list of lines): what was done, the test, and the matrix."""
        return heldout_markdown(self.as_dict())


def heldout_p_text(p_value: float, n_assignments: int) -> str:
    """The test's p as a report writes it: ``p <= 1/n`` at the floor of ``n`` assignments."""
    if p_value <= 1.0 / n_assignments + 1e-12:
        return f"p <= {1.0 / n_assignments:.4f} (the floor: 1/{n_assignments})"
    return f"p = {p_value:.4f}"


def most_damaging_test(effect: Any) -> tuple[int, float, int]:
    """How many categories' own set is the most damaging on their rows, and its exact p over every
    assignment of sets to categories: (count, p, number of assignments).

    effect: float [m, m], zeroed set (row) x evaluated category (column). Under an assignment pi the
    count is the columns whose most damaging row is pi's set for them; p = share of the m! assignments
    with a count at least the observed one (the observed assignment among them). Chance is 1 in
    expectation: each column's most damaging set is its own under 1 in m assignments."""
    e = np.asarray(effect, dtype=np.float64)
    m = e.shape[0]
    if m > 8:  # 8! = 40,320 assignments; beyond that, not worth an exact count here
        raise ValueError(f"most_damaging_test enumerates m! assignments; m = {m} is too many")
    best = np.argmax(e, axis=0)  # the most damaging set for each evaluated category
    observed = int(np.sum(best == np.arange(m)))
    counts = [sum(best[b] == perm[b] for b in range(m)) for perm in itertools.permutations(range(m))]
    return observed, sum(1 for c in counts if c >= observed) / len(counts), len(counts)


def _most_damaging_p(effect: np.ndarray) -> str:
    count, p, n = most_damaging_test(effect)
    return f"{count} or more has p = {p:.4f} over the {n} assignments"


def heldout_markdown(d: Mapping[str, Any]) -> list[str]:
    """The report's causal section (a list of lines) from :meth:`HeldoutCausalResult.as_dict`'s
    content (so that results.json alone re-renders it): the design, the test, the matrix."""
    cats = list(d["categories"])
    short = [SHORT_NAMES.get(c, c) for c in cats]
    effect = np.asarray(d["effect"], dtype=np.float64)
    d_isn = np.asarray(d["delta_nll_isn"], dtype=np.float64)
    d_rand = np.asarray(d["delta_nll_random"], dtype=np.float64)
    cfg = d["config"]
    n_eval = sum(len(v) for v in d["eval_ids"].values())
    kinds = {k: sum(t.get(k, 0) for t in d["targets"].values()) for k in ("response", "continuation")}
    gap = max((m["max_quantile_gap"] for ms in d["rate_match"].values() for m in ms), default=float("nan"))
    p_text = heldout_p_text(d["p_value"], d["n_assignments"])
    n_tok = cfg["max_predicted"]
    resp_part = "every token" if n_tok is None else f"the first {n_tok} tokens"
    instr_part = "every token of its instruction" if n_tok is None else f"its instruction's last {n_tok} tokens"
    if d.get("responses_source") is None:
        scored = (f"no response source was given (`--sources` / `$HEXAINST_SOURCES`), so every one of the "
                  f"{n_eval} rows is scored on its instruction, not on a response ({instr_part}).")
    else:
        scored = (f"{resp_part} of the reference response for {kinds['response']} rows (natural rows, answers read "
                  f"from the mirror {d['responses_source']}); {kinds['continuation']} rows have no response there "
                  f"(synthetic rows have none anywhere) and each is scored on {instr_part}.")
    n_build = list(d["n_build"].values())
    built = f"{min(n_build)}" if min(n_build) == max(n_build) else f"{min(n_build)}-{max(n_build)}"
    ranks = d["own_set_rank"]
    lines = [
        f"Held-out causal check on `{d.get('model') or 'the model'}`: {cfg['per_category']} evaluated "
        f"instructions per category ({n_eval} in all), each category's ISN set built from its other "
        f"{built} instructions only (no evaluated instruction is among them). Scored: "
        f"{scored} Control: {cfg['n_random']} draws of random neurons per set, same layers, matched "
        f"one-for-one on firing rate (largest gap between the quantiles of a set's rates and a draw's: "
        f"{gap:.3f}; mean rates per set in the table). Cell = ΔNLL(zeroing the row's set) − mean ΔNLL(zeroing "
        "its matched random draws) on the column's rows, nats per scored token.",
        "",
        f"Specificity (own set's effect minus the other sets' on the same rows): **{d['specificity']:+.4f} "
        f"nats/token**, {cfg['ci_level']:.0%} CI [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] (rows resampled "
        f"within category); exact permutation test over all {d['n_assignments']} assignments of sets to "
        f"categories: {p_text} (null mean {d['null_mean']:+.4f}). The own set is the most damaging for "
        f"{sum(1 for r in ranks if r == 1)} of {len(cats)} categories (chance 1; "
        f"{_most_damaging_p(effect)}; ranks " + ", ".join(f"{s} {r}" for s, r in zip(short, ranks)) + ").",
        "",
        "What this check does not control: "
        + (f"the random draws are matched loosely (a quantile gap of {gap:.3f}; the sets fire more often than "
           "their draws, so part of an effect can be firing rate rather than identity); " if gap > 0.1 else "")
        + "there is no untrained or lexical control of the causal check (a set of a category whose rows share "
          "one template may detect that template's tokens); the interval resamples rows, not provenance "
          "clusters.",
        "",
        "| zeroed set \\ evaluated | " + " | ".join(short)
        + " | \\|C(m)\\| | ΔNLL own (ISNs) | ΔNLL own (random) | firing rate: set / random draws |",
        "|---" * (len(short) + 5) + "|",
    ]
    for a, c in enumerate(cats):
        cells = " | ".join(f"{effect[a, b]:+.3f}" for b in range(len(cats)))
        ms = d["rate_match"].get(c, [])
        rates = (f"{ms[0]['mean_rate_set']:.3f} / " + ", ".join(f"{m['mean_rate_random']:.3f}" for m in ms)
                 if ms else "n/a")
        lines.append(f"| {short[a]} | {cells} | {d['set_sizes'][c]} | {d_isn[a, a]:.3f} | {d_rand[a, a]:.3f} | "
                     f"{rates} |")
    lines += ["", f"Time: {d['seconds']:.0f} s ({d['seconds_per_instruction_condition']:.3f} s per instruction "
                  "and condition)."]
    return lines


def _eval_tokens(tokenizer: Any, instruction: str, response: str | None, policy: Any, max_predicted: int | None
                 ) -> tuple[list[int], int]:
    """Token ids to feed and how many of the last ones to score: the response's first tokens, else the
    instruction's last ones."""
    ids = tokenize(tokenizer, instruction, policy)[0]
    if response is None:
        return ids, len(ids) - 1 if max_predicted is None else min(len(ids) - 1, max_predicted)
    resp = list(tokenizer("\n" + response, add_special_tokens=False)["input_ids"])[:max_predicted]
    return ids + resp, len(resp)


def heldout_causal_check(config: CausalConfig, inputs: CausalInputs) -> HeldoutCausalResult:
    """The held-out causal check (the design to report). Returns matrices, the test and its interval.

    By default a seeded ``config.per_category`` rows per category are evaluated (rows with a
    response where a category has enough) and every other row builds its category's set;
    ``inputs.eval_ids``/``inputs.build_ids`` fix both instead, and a design where they overlap is
    refused. Each category's ISN set and ``config.n_random`` random sets matched on firing rate are
    zeroed in turn; the effect matrix, the exact assignment test and the bootstrap interval follow.
    """
    started = time.perf_counter()
    ids, labels = _analysed_rows(inputs)
    cats = list(inputs.categories) if inputs.categories is not None else sorted(set(labels.tolist()))
    responses = dict(inputs.responses or {}) if config.targets == "response" else {}
    ev, build = _split(config, inputs, ids, labels, cats, responses)
    act_modules = adapter_for(inputs.model).act_modules(inputs.model)
    rates = design.firing_rates(inputs.counts, inputs.n_tokens, build)
    evaluated = _evaluated_rows(config, inputs, ids, labels, ev, responses)
    zeroed = _zeroed_sets(config, inputs, cats, labels, build, rates)
    nll = _nll_per_condition(config, inputs, act_modules, zeroed.conditions, evaluated)
    stats = _statistics(config, nll, len(cats), evaluated.labels, cats)
    seconds = time.perf_counter() - started
    eval_labels = evaluated.labels
    return HeldoutCausalResult(
        categories=cats,
        config=config.parameters(),
        seed=config.seed,
        model=inputs.model_name,
        eval_ids={c: [ids[r] for r in ev if labels[r] == c] for c in cats},
        n_build={c: int(np.count_nonzero(labels[build] == c)) for c in cats},
        targets={c: {k: int(sum(1 for lab, kk in zip(eval_labels, evaluated.kinds) if lab == c and kk == k))
                     for k in ("response", "continuation")} for c in cats},
        set_sizes={c: int(zeroed.sets[c].size) for c in cats},
        random_sizes={c: [int(x.size) for x in zeroed.random[c]] for c in cats},
        rate_match={c: [design.rate_match(zeroed.sets[c], x, rates) for x in zeroed.random[c]] for c in cats},
        baseline_nll={c: float(np.nanmean(nll[("none", -1, -1)][eval_labels == c])) for c in cats},
        **stats,
        seconds=seconds,
        seconds_per_instruction_condition=seconds / max(1, len(evaluated.seqs) * len(zeroed.conditions)),
        responses_source=None if inputs.responses_source is None else str(inputs.responses_source),
    )


def _analysed_rows(inputs: CausalInputs) -> tuple[list[str], np.ndarray]:
    """The analysed rows' ids and categories, after checking the store is dense and the arrays agree."""
    if np.any(np.asarray(inputs.neuron_expert) >= 0):
        raise CausalError("the causal check supports dense MLPs only (this store has expert neurons)")
    ids = [str(i) for i in inputs.sets.ids]
    labels = np.asarray([str(c) for c in inputs.row_categories])
    n_counts, n_lengths = np.asarray(inputs.counts).shape[0], np.asarray(inputs.n_tokens).size
    if len(ids) != labels.size or n_counts != labels.size or n_lengths != labels.size:
        raise CausalError(f"causal check: {len(ids)} set ids, {labels.size} categories, {n_counts} "
                          f"count rows and {n_lengths} lengths must all be one per instruction")
    return ids, labels


def _split(config: CausalConfig, inputs: CausalInputs, ids: list[str], labels: np.ndarray, cats: list[str],
           responses: Mapping[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """(evaluated rows, set-building rows), sorted and disjoint: the inputs' ids, else a seeded split per
    category (``seed + 7919 * k`` for the k-th), evaluating rows with a response where a category has enough."""
    has_resp = np.asarray([i in responses for i in ids])
    try:
        if inputs.eval_ids is not None or inputs.build_ids is not None:
            if inputs.eval_ids is None or inputs.build_ids is None:
                raise CausalError("causal check: pass both eval_ids and build_ids, or neither")
            design.check_disjoint(inputs.eval_ids, inputs.build_ids)
            pos = {i: k for k, i in enumerate(ids)}
            unknown = [i for i in list(inputs.eval_ids) + list(inputs.build_ids) if str(i) not in pos]
            if unknown:
                raise CausalError(f"causal check: {len(unknown)} ids are not among the sets' rows (first: {unknown[0]})")
            ev = np.sort(np.asarray([pos[str(i)] for i in inputs.eval_ids], dtype=np.int64))
            build = np.sort(np.asarray([pos[str(i)] for i in inputs.build_ids], dtype=np.int64))
        else:
            ev_parts, build_parts = [], []
            for k, c in enumerate(cats):
                in_c = labels == c
                eligible = has_resp if np.count_nonzero(in_c & has_resp) >= config.per_category else None
                e, b = design.heldout_split(np.where(in_c, c, ""), [c], config.per_category,
                                            seed=config.seed + 7919 * k, eligible=eligible)
                ev_parts.append(e)
                build_parts.append(b)
            ev = np.sort(np.concatenate(ev_parts))
            build = np.sort(np.concatenate(build_parts))
        design.check_disjoint([ids[r] for r in ev], [ids[r] for r in build])
    except design.DesignError as exc:
        raise CausalError(f"causal check: {exc}") from None
    missing = [ids[r] for r in ev if ids[r] not in inputs.texts]
    if missing:
        raise CausalError(f"causal check: no instruction text for {len(missing)} evaluated ids (first: {missing[0]})")
    return ev, build


@dataclass(frozen=True)
class _Evaluated:
    """The evaluated rows as the model sees them: token ids, how many of the last ones are scored, the
    row's category and what is scored (``response`` or ``continuation``)."""

    seqs: list[list[int]]
    n_scored: list[int]
    labels: np.ndarray
    kinds: list[str]


def _evaluated_rows(config: CausalConfig, inputs: CausalInputs, ids: list[str], labels: np.ndarray, ev: np.ndarray,
                    responses: Mapping[str, str]) -> _Evaluated:
    """Tokenise each evaluated row under the store's input policy, with its response where it has one."""
    policy = InputPolicy.coerce(dict(inputs.input_policy) if inputs.input_policy else None)
    seqs, n_scored, eval_labels, kinds = [], [], [], []
    for r in ev:
        resp = responses.get(ids[r])
        tok, n = _eval_tokens(inputs.tokenizer, str(inputs.texts[ids[r]]), resp, policy, config.max_predicted)
        seqs.append(tok)
        n_scored.append(n)
        eval_labels.append(str(labels[r]))
        kinds.append("response" if resp is not None else "continuation")
    return _Evaluated(seqs=seqs, n_scored=n_scored, labels=np.asarray(eval_labels), kinds=kinds)


@dataclass(frozen=True)
class _Zeroed:
    """The conditions to run, in order: (kind, set index, draw, store columns), "none" first; and per
    category its ISN set's columns and its random draws'."""

    conditions: list[tuple[str, int, int, np.ndarray]]
    sets: dict[str, np.ndarray]
    random: dict[str, list[np.ndarray]]


def _zeroed_sets(config: CausalConfig, inputs: CausalInputs, cats: list[str], labels: np.ndarray, build: np.ndarray,
                 rates: np.ndarray) -> _Zeroed:
    """Each category's set from its set-building rows, and its ``n_random`` draws matched on firing rate
    (one generator seeded with ``config.seed``, drawn category by category)."""
    rng = np.random.default_rng(config.seed)
    conditions: list[tuple[str, int, int, np.ndarray]] = [("none", -1, -1, np.zeros(0, dtype=np.int64))]
    set_cols, random_cols = {}, {}
    for a, c in enumerate(cats):
        cols = category_neuron_set(inputs.sets, build[labels[build] == c])
        set_cols[c] = cols
        conditions.append(("isn", a, -1, cols))
        random_cols[c] = []
        for d in range(config.n_random):
            drawn = design.matched_random(cols, rates, inputs.neuron_layer, rng, pool=config.rate_pool)
            random_cols[c].append(drawn)
            conditions.append(("random", a, d, drawn))
    return _Zeroed(conditions=conditions, sets=set_cols, random=random_cols)


def _nll_per_condition(config: CausalConfig, inputs: CausalInputs, act_modules: Sequence[tuple[int, Any]],
                       conditions: list[tuple[str, int, int, np.ndarray]], evaluated: _Evaluated
                       ) -> dict[tuple[str, int, int], np.ndarray]:
    """(kind, set index, draw) -> mean NLL of each evaluated row [rows] with that condition's neurons zeroed."""
    pad_id = getattr(inputs.tokenizer, "pad_token_id", None)
    pad_id = int(pad_id) if pad_id is not None else 0
    iterator: Any = conditions
    if config.progress:
        iterator = tqdm(conditions, desc="causal check (held out)", unit="condition")
    nll: dict[tuple[str, int, int], np.ndarray] = {}
    for kind, a, d, cols in iterator:
        zero = layer_indices(cols, inputs.neuron_layer, inputs.neuron_index) if cols.size else {}
        with ZeroNeurons(act_modules, zero):
            nll[(kind, a, d)] = nll_of_last(inputs.model, evaluated.seqs, evaluated.n_scored, pad_id=pad_id)
    return nll


def _statistics(config: CausalConfig, nll: Mapping[tuple[str, int, int], np.ndarray], m: int,
                eval_labels: np.ndarray, cats: list[str]) -> dict[str, Any]:
    """The result's matrices, the exact assignment test and the bootstrap interval of the specificity."""
    base = nll[("none", -1, -1)]
    d_isn_rows = np.stack([nll[("isn", a, -1)] - base for a in range(m)])  # [m, rows]
    d_rand_draws = np.stack([np.stack([nll[("random", a, d)] - base for d in range(config.n_random)])
                             for a in range(m)])  # [m, draws, rows]
    D = d_isn_rows - d_rand_draws.mean(axis=1)
    E = design.effect_matrix(D, eval_labels, cats)
    test = design.assignment_test(E)
    low, high = design.bootstrap_specificity(D, eval_labels, cats, n_boot=config.n_boot, seed=config.seed,
                                             level=config.ci_level)
    return {
        "delta_nll_isn": design.effect_matrix(d_isn_rows, eval_labels, cats),
        "delta_nll_random": design.effect_matrix(d_rand_draws.mean(axis=1), eval_labels, cats),
        "delta_nll_random_draws": np.stack([design.effect_matrix(d_rand_draws[:, d], eval_labels, cats)
                                            for d in range(config.n_random)]),
        "effect": E, "specificity": test["specificity"], "ci_low": low, "ci_high": high,
        "p_value": test["p_value"], "n_assignments": test["n_assignments"], "null_mean": test["null_mean"],
        "own_set_rank": design.own_set_rank(E),
    }
