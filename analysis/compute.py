"""The computation of an analysis: stores in, :class:`~hexainst.analysis.results.AnalysisResults` out.

No files are written here and nothing is drawn: this module calls the pure functions of
:mod:`~hexainst.analysis.isn`, :mod:`~hexainst.analysis.metrics` and :mod:`~hexainst.analysis.stats`
in the order of the paper's sections and keeps what they return. Rendering (figures, tables,
report, results.json) is :mod:`~hexainst.analysis.render`'s job.

A new section is one function here that returns a results object, one field of
:class:`~hexainst.analysis.results.AnalysisResults` (or of a
:class:`~hexainst.analysis.results.ModelResult`) that holds it, one ``render_*`` function in
:mod:`~hexainst.analysis.render` and one section in the report's template (``templates/report.md.j2``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from hexainst.analysis.causal import CausalError, CausalInputs, HeldoutCausalResult, heldout_causal_check
from hexainst.analysis.config import AnalysisConfig, CausalConfig
from hexainst.analysis.controls import PairDesign, headline_statistics, per_layer_intervals
from hexainst.analysis.data import StoreData, check_comparable, header_summary
from hexainst.analysis.isn import IsnSets, compute_isn_sets
from hexainst.analysis.length_matching import length_matched_test, length_strata
from hexainst.analysis.lexical import lexical_sets, token_counts, tokenize_rows, vocabulary_size
from hexainst.analysis.metrics import (
    category_means,
    expert_selection,
    jaccard_matrix,
    length_stats,
    paired_jaccard,
    paired_pearson,
    pearson_matrix,
    per_category_mean,
    venn_counts_per_layer,
)
from hexainst.analysis.nulls import cluster_codes
from hexainst.analysis.recording.loading import tokenizer_sha256
from hexainst.analysis.results import (
    AlterationResult,
    AnalysisResults,
    CategoryMatrix,
    CategoryValue,
    ControlsResult,
    IsnSizes,
    JaccardResult,
    LengthStats,
    LexicalInfo,
    ModelResult,
    SizeStats,
    StoreInfo,
    SweepEntry,
    UntrainedInfo,
)
from hexainst.analysis.stats import (
    bootstrap_category_means,
    bootstrap_category_vector,
    chance_jaccard,
    length_adjusted_test,
    permutation_test,
    sample_per_category,
)
from hexainst.kernel.errors import UserError
from hexainst.kernel.settings import SettingError
from hexainst.kernel.vocab import CATEGORIES, SHORT_NAMES


@dataclass
class LexicalSpec:
    """What the lexical baseline needs: the model's tokenizer and the instruction texts (id -> text)."""

    tokenizer: Any
    texts: dict[str, str]


@dataclass
class Controls:
    """The controls of a run: untrained stores (opened), the lexical baseline's inputs, resampling clusters.

    ``clusters``: instruction id -> cluster key (:func:`hexainst.analysis.nulls.provenance_cluster`);
    None: every instruction is its own cluster (said in the report). ``lexical_skipped``: why there
    is no lexical baseline, when ``lexical`` is None.
    """

    untrained: Sequence[Any] = ()
    lexical: LexicalSpec | None = None
    clusters: dict[str, str] | None = None
    lexical_skipped: str | None = None


@dataclass
class CausalSpec:
    """What the causal check needs besides the store: store A's model and tokenizer, the instruction texts.

    ``responses``: id -> reference response (natural rows, from the source mirror, see
    :func:`hexainst.analysis.causal_responses.natural_responses`); ``responses_source``: that
    mirror's folder. Without them every row is scored on its instruction (the report says so).
    """

    model: Any
    tokenizer: Any
    texts: dict[str, str]
    model_name: str = ""
    config: CausalConfig = field(default_factory=CausalConfig)
    responses: dict[str, str] | None = None
    responses_source: str | None = None


def category_order(labels: Sequence[str]) -> list[str]:
    """The categories present in ``labels``: HexaInst's order first, then any others sorted."""
    present = set(labels)
    known = [c for c in CATEGORIES if c in present]
    return known + sorted(present - set(known))


def short_name(category: str) -> str:
    """The paper's short name of a category (CLS, CODE, ...), or the name itself."""
    return SHORT_NAMES.get(category, category)


def _isn_sets(data: StoreData, config: AnalysisConfig, eps: float, tie_rule: str, progress: bool) -> IsnSets:
    sums = data.sums() if tie_rule == "exact-k" else None
    return compute_isn_sets(data.counts, eps=eps, tie_rule=tie_rule, scope=config.scope,
                            neuron_layer=data.neuron_layer, sums=sums, ids=data.ids, progress=progress)


def _category_matrix(pair: np.ndarray, labels: np.ndarray, cats: list[str], config: AnalysisConfig,
                     clusters: np.ndarray | None = None) -> CategoryMatrix:
    inc = config.include_self_pairs
    means = category_means(pair, labels, cats, include_self=inc)
    low, high = bootstrap_category_means(pair, labels, cats, include_self=inc, n_boot=config.n_boot,
                                         level=config.ci_level, seed=config.seed, clusters=clusters)
    perm = permutation_test(pair, labels, cats, include_self=inc, n_permutations=config.n_permutations,
                            seed=config.seed)
    return CategoryMatrix(categories=list(cats), matrix=means, ci_low=low, ci_high=high, permutation=perm)


def isn_sizes(sets: IsnSets, labels: np.ndarray, cats: list[str]) -> IsnSizes:
    """Target k and the actual |S(I)| overall and per category."""
    sizes = sets.sizes()

    def stats(s: np.ndarray) -> SizeStats:
        return SizeStats(mean=float(s.mean()), min=int(s.min()), max=int(s.max()))

    return IsnSizes(
        target_k=int(sets.k[0]) if sets.k.size else None, n_cols=sets.n_cols, overall=stats(sizes),
        per_category={c: stats(sizes[labels == c]) for c in cats},
        n_per_category={c: int((labels == c).sum()) for c in cats},
    )


def compute_model(data: StoreData, cats: list[str], config: AnalysisConfig,
                  clusters: np.ndarray | None = None) -> ModelResult:
    """Everything on one store: ISN sets and sizes, Fig. 3 (with CIs, test, chance, length
    adjustment), Fig. 4 (MoE), ISNs per layer (Fig. 5, with intervals) and the eps sweep.

    clusters: int [n] resampling cluster of each row (None: rows), for every interval. The
    length tests shuffle labels within length strata (the null of "beyond length").
    """
    labels = np.asarray(data.categories)
    sets = _isn_sets(data, config, config.eps, config.tie_rule, config.progress)
    jac = jaccard_matrix(sets, progress=config.progress)
    fig3 = _category_matrix(jac, labels, cats, config, clusters)
    chance, chance_overall = chance_jaccard(
        sets, labels, cats, include_self=config.include_self_pairs, seed=config.seed,
        neuron_layer=data.neuron_layer if config.scope == "per-layer" else None,
    )
    strata = length_strata(data.n_tokens, config.length_strata)
    adjusted = length_adjusted_test(jac, labels, data.n_tokens, n_permutations=config.n_sweep_permutations,
                                    seed=config.seed, strata=strata)
    matched = None
    if config.length_matched and len(cats) > 1:
        matched = length_matched_test(jac, labels, data.n_tokens, categories=cats, n_strata=config.length_strata,
                                      n_permutations=config.n_sweep_permutations, seed=config.seed,
                                      shuffle_within_strata=True)
    jaccard = JaccardResult(**vars(fig3), chance_matrix=chance, chance_overall=chance_overall,
                            length_adjusted=adjusted, length_matched=matched)
    routing = None
    freq = data.routing_frequencies()
    if freq is not None:
        routing = _category_matrix(pearson_matrix(freq), labels, cats, config, clusters)
    per_layer = sets.per_layer_counts(data.neuron_layer, data.n_layers)
    codes = np.array([cats.index(x) for x in labels], dtype=np.int64)
    low, high = per_layer_intervals(per_layer, codes, len(cats), clusters, n_boot=config.n_boot,
                                    level=config.ci_level, seed=config.seed)
    result = ModelResult(
        label=data.label, model=data.model_name, n_layers=data.n_layers, is_moe=data.is_moe,
        isn_sizes=isn_sizes(sets, labels, cats), jaccard=jaccard, routing_pearson=routing,
        isn_per_layer={c: per_layer[labels == c].mean(axis=0) for c in cats},
        sweep=compute_sweep(data, cats, config, sets), sets=sets,
        isn_per_layer_low={c: low[i] for i, c in enumerate(cats)},
        isn_per_layer_high={c: high[i] for i, c in enumerate(cats)},
    )
    result.pair = jac
    return result


def compute_sweep(data: StoreData, cats: list[str], config: AnalysisConfig, main: IsnSets) -> list[SweepEntry]:
    """The eps x tie-rule sweep: diagonal vs off-diagonal Jaccard and its p-value per cell."""
    labels = np.asarray(data.categories)
    out = []
    grid: Any = [(tie, eps) for tie in config.sweep_tie_rules for eps in config.sweep_eps]
    if config.progress:
        grid = tqdm(grid, desc=f"eps sweep ({data.label})", unit="setting")
    for tie, eps in grid:
        if tie == "exact-k" and not data.has_sums:
            out.append(SweepEntry(eps=eps, tie_rule=tie, scope=config.scope,
                                  skipped="the store has no activation sums (record with sums to break ties)"))
            continue
        sets = main if (eps == config.eps and tie == config.tie_rule) else _isn_sets(data, config, eps, tie, False)
        jac = jaccard_matrix(sets)
        means = category_means(jac, labels, cats, include_self=config.include_self_pairs)
        perm = permutation_test(jac, labels, cats, include_self=config.include_self_pairs,
                                n_permutations=config.n_sweep_permutations, seed=config.seed)
        sizes = sets.sizes()
        out.append(SweepEntry(
            eps=eps, tie_rule=tie, scope=config.scope, target_k=int(sets.k[0]), mean_size=float(sizes.mean()),
            min_size=int(sizes.min()), max_size=int(sizes.max()), diagonal=perm.diagonal,
            off_diagonal=perm.off_diagonal, difference=perm.difference, p_value=perm.p_value,
            n_permutations=perm.n_permutations,
            diagonal_per_category={c: float(means[i, i]) for i, c in enumerate(cats)},
        ))
    return out


def venn_rows(data: StoreData, venn_ids: Sequence[str]) -> list[int]:
    """Rows of the Fig. 6 instructions: ``venn_ids``, or the first instruction of each category."""
    chosen = list(venn_ids)
    if not chosen:
        seen: set[str] = set()
        for i, c in zip(data.ids, data.categories):
            if c not in seen:
                seen.add(c)
                chosen.append(i)
    pos = {i: k for k, i in enumerate(data.ids)}
    missing = [i for i in chosen if i not in pos]
    if missing:
        raise SettingError("venn_ids", f"not among the analysed instructions: {', '.join(missing)}")
    return [pos[i] for i in chosen]


def compute_alteration(base: StoreData, ft: StoreData, sb: IsnSets, sf: IsnSets, cats: list[str],
                       config: AnalysisConfig) -> AlterationResult:
    """Base vs fine-tuned: Table 1 (paired Jaccard), Tables 2 and 6 (MoE), Fig. 6 (Venn per layer)."""
    labels = np.asarray(base.categories)

    def per_category(values: np.ndarray) -> dict[str, CategoryValue]:
        mean = per_category_mean(values, labels, cats)
        low, high = bootstrap_category_vector(values, labels, cats, n_boot=config.n_boot, level=config.ci_level,
                                              seed=config.seed)
        return {c: CategoryValue(mean[i], low[i], high[i]) for i, c in enumerate(cats)}

    pj = paired_jaccard(sb, sf)
    result = AlterationResult(table1_jaccard=per_category(pj), table1_overall=float(np.mean(pj)))
    fb, ff = base.routing_frequencies(), ft.routing_frequencies()
    if fb is not None and ff is not None:
        result.table2_pearson = per_category(paired_pearson(fb, ff))
        result.table6 = expert_selection(base.routing, ft.routing, labels, cats)
    for r in venn_rows(base, config.venn_ids):
        key = f"{base.ids[r]} ({short_name(base.categories[r])})"
        result.fig6_venn[key] = venn_counts_per_layer(sb.row(r), sf.row(r), base.neuron_layer, base.n_layers)
    return result


def check_causal(data: StoreData, spec: CausalSpec) -> None:
    """What the causal check needs, checked before any work: a dense store, every instruction's text,
    and enough instructions per category to hold ``per_category`` out and build a set from the rest."""
    if np.any(np.asarray(data.neuron_expert) >= 0):
        raise SettingError("causal", f"supports dense models only; store {data.path} has expert neurons")
    missing = [i for i in data.ids if i not in spec.texts]
    if missing:
        raise CausalError(f"no instruction text for {len(missing)} analysed ids (first: {missing[0]}); "
                          "pass the release the store was recorded from")
    check_causal_counts(data.categories, spec.config.per_category)


def check_causal_counts(categories: Sequence[str], per_category: int, sample: int | None = None) -> None:
    """Each category must keep at least one instruction to build its set from after ``per_category``
    are held out (``sample``: the run analyses at most that many per category)."""
    for c in category_order(categories):
        have = sum(1 for x in categories if x == c)
        have = have if sample is None else min(have, sample)
        if have < per_category + 1:
            raise SettingError("per_category", f"{per_category}: category {c} has {have} analysed instructions; "
                              f"the check holds {per_category} out and builds the set from the others, so it needs "
                              f"at least {per_category + 1}")


def compute_causal(data: StoreData, sets: IsnSets, cats: list[str], spec: CausalSpec,
                   config: AnalysisConfig) -> HeldoutCausalResult:
    """The held-out causal check on store A's model (see :func:`hexainst.analysis.causal.heldout_causal_check`).

    Each category's set is rebuilt from its instructions that are not evaluated; firing rates for
    the matched random draws come from those same instructions. The bootstrap, the interval's level,
    the seed and the progress bar are the run's (``config``).
    """
    check_causal(data, spec)
    inputs = CausalInputs(
        model=spec.model, tokenizer=spec.tokenizer, sets=sets, row_categories=data.categories, counts=data.counts,
        n_tokens=data.n_tokens, texts=spec.texts, neuron_layer=data.neuron_layer, neuron_index=data.neuron_index,
        neuron_expert=data.neuron_expert, responses=spec.responses, responses_source=spec.responses_source,
        categories=cats, input_policy=data.header.get("input_policy"), model_name=spec.model_name or data.model_name,
    )
    return heldout_causal_check(spec.config.for_run(config), inputs)


def _lengths(data: StoreData, cats: list[str]) -> dict[str, LengthStats]:
    return {c: LengthStats(**v) for c, v in length_stats(data.n_tokens, data.categories, cats).items()}


def compute(
    store_a: Any,
    *,
    store_b: Any = None,
    config: AnalysisConfig = AnalysisConfig(),
    causal: CausalSpec | None = None,
    before_work: Callable[[], None] | None = None,
    controls: Controls | None = None,
) -> AnalysisResults:
    """Analyse store A (and compare it with B, the fine-tuned model); return the results.

    ``store_a``/``store_b``: opened :class:`~hexainst.analysis.recording.store.ActivationStore`\\ s.
    Every input is checked first (comparability, tie rule, Fig. 6 ids, causal inputs); then
    ``before_work`` (if given) runs, then the computation. ``controls``: untrained stores, the
    lexical baseline's inputs and the resampling clusters (:class:`Controls`); the report states
    the model's excess over them.
    """
    controls = controls or Controls()
    b_rows_all = check_comparable(store_a, store_b) if store_b is not None else None
    untrained_rows = [check_untrained(store_a, u) for u in controls.untrained]
    if config.tie_rule == "exact-k" and not store_a.header.get("layout", {}).get("with_sums"):
        raise SettingError("tie_rule", f"'exact-k' needs activation sums, but store {getattr(store_a, 'path', 'A')} "
                                       "has none; record with sums or use the tie rule 'paper'")
    cats = category_order(store_a.categories)
    rows = sample_per_category(store_a.categories, cats, config.sample, seed=config.seed)
    label_a = "base" if store_b is not None else "model"
    da = StoreData.load(store_a, label_a, rows)
    db = StoreData.load(store_b, "fine-tuned", b_rows_all[rows]) if store_b is not None else None
    if db is not None:
        venn_rows(da, config.venn_ids)
    if causal is not None:
        check_causal(da, causal)
    if controls.lexical is not None:
        check_lexical(da, controls.lexical)
    if before_work is not None:
        before_work()
    clusters = cluster_codes(da.ids, controls.clusters)[0] if controls.clusters else None
    results = AnalysisResults(
        config=config, categories=cats,
        stores={da.label: StoreInfo(da.path, header_summary(store_a.header))},
        n_instructions=len(rows),
        per_category={c: int(sum(1 for x in da.categories if x == c)) for c in cats},
        lengths={da.label: _lengths(da, cats)},
        models={da.label: compute_model(da, cats, config, clusters)},
        n_tokens={c: da.n_tokens[np.asarray(da.categories) == c] for c in cats},
    )
    if db is not None:
        results.stores[db.label] = StoreInfo(db.path, header_summary(store_b.header))
        results.lengths[db.label] = _lengths(db, cats)
        results.models[db.label] = compute_model(db, cats, config, clusters)
        results.alteration = compute_alteration(da, db, results.models[da.label].sets,
                                                results.models[db.label].sets, cats, config)
    if causal is not None:
        results.causal = compute_causal(da, results.models[da.label].sets, cats, causal, config)
    if len(cats) > 1:
        us = [StoreData.load(u, f"untrained-{k}", r[rows]) for k, (u, r) in enumerate(zip(controls.untrained,
                                                                                          untrained_rows))]
        results.controls = compute_controls(da, results.models[da.label], us, controls, cats, config, clusters)
    return results


def check_untrained(store_a: Any, untrained: Any) -> np.ndarray:
    """An untrained store must hold the same rows, tokenizer, policy and layout, and be a random init."""
    rows = check_comparable(store_a, untrained)
    model = untrained.header.get("model") or {}
    if model.get("random_init") is None:
        raise SettingError("untrained", f"{getattr(untrained, 'path', '')}: not an untrained store (its header "
                                        "records no random_init seed); record one with 'hexainst record --random-init "
                                        "SEED'")
    return rows


def check_lexical(data: StoreData, spec: LexicalSpec) -> None:
    """The lexical baseline needs every analysed instruction's text and the store's own tokenizer."""
    missing = [i for i in data.ids if i not in spec.texts]
    if missing:
        raise UserError(f"lexical baseline: no instruction text for {len(missing)} analysed ids (first: "
                        f"{missing[0]}); pass the release the store was recorded from")
    want = (data.header.get("tokenizer") or {}).get("sha256")
    got = tokenizer_sha256(spec.tokenizer)
    if want != got:
        raise UserError(f"lexical baseline: the tokenizer given (sha256 {got[:12]}) is not the one store "
                        f"{data.path} was recorded with ({str(want)[:12]})")


def _untrained_info(data: StoreData, cats: list[str], config: AnalysisConfig) -> tuple[UntrainedInfo, np.ndarray]:
    labels = np.asarray(data.categories)
    sets = _isn_sets(data, config, config.eps, config.tie_rule, False)
    jac = jaccard_matrix(sets)
    per_layer = sets.per_layer_counts(data.neuron_layer, data.n_layers)
    model = data.header.get("model") or {}
    info = UntrainedInfo(
        label=data.label, seed=model.get("random_init"), path=data.path, model=data.model_name,
        mean_set_size=float(sets.sizes().mean()),
        matrix=category_means(jac, labels, cats, include_self=config.include_self_pairs),
        isn_per_layer={c: per_layer[labels == c].mean(axis=0) for c in cats},
    )
    return info, jac


def compute_controls(data: StoreData, model: ModelResult, untrained: Sequence[StoreData], controls: Controls,
                     cats: list[str], config: AnalysisConfig, clusters: np.ndarray | None) -> ControlsResult:
    """Headline statistics for the model, each untrained seed, their mean, the lexical baseline and the excess."""
    labels = np.asarray(data.categories)
    pairs: dict[str, np.ndarray] = {"model": model.pair}
    infos = []
    bar: Any = untrained
    if config.progress and untrained:
        bar = tqdm(untrained, desc="untrained baselines", unit="store")
    for u in bar:
        info, jac = _untrained_info(u, cats, config)
        info.label = f"untrained seed {info.seed}"
        pairs[info.label] = jac
        infos.append(info)
    lexical = None
    if controls.lexical is not None:
        ids, skips = tokenize_rows(controls.lexical.tokenizer, controls.lexical.texts, data.ids,
                                   data.header.get("input_policy"))
        vocab = vocabulary_size(controls.lexical.tokenizer)
        sets = lexical_sets(token_counts(ids, skips, vocab), eps=config.eps, tie_rule=config.tie_rule, ids=data.ids)
        jac = jaccard_matrix(sets)
        pairs["lexical"] = jac
        sizes = sets.sizes()
        lexical = LexicalInfo(
            vocab_size=vocab, target_k=int(sets.k[0]), mean_set_size=float(sizes.mean()),
            min_set_size=int(sizes.min()), max_set_size=int(sizes.max()),
            matrix=category_means(jac, labels, cats, include_self=config.include_self_pairs),
            rule=("token types of the instruction under the model's tokenizer and input policy; top-eps of "
                  "p_v = count_v / T over the vocabulary, same eps and tie rule as the ISN sets"),
        )
    instr = {row["id"]: row for row in data.header.get("instructions", [])}
    natural = [str(instr.get(i, {}).get("source")) == "natural" for i in data.ids]
    design = PairDesign.build(labels, cats, data.n_tokens, natural, config.length_strata)
    names = [i.label for i in infos]
    headlines = headline_statistics(pairs, design, untrained=names, clusters=clusters,
                                    n_permutations=config.n_sweep_permutations, n_boot=config.n_boot,
                                    level=config.ci_level, seed=config.seed, progress=config.progress)
    model_matrix = model.jaccard.matrix
    u_mean = np.mean([i.matrix for i in infos], axis=0) if infos else None
    per_cluster = {}
    codes = cluster_codes(data.ids, controls.clusters)[0]
    for c in cats:
        per_cluster[c] = int(np.unique(codes[labels == c]).size)
    return ControlsResult(
        categories=list(cats), untrained=infos, lexical=lexical,
        lexical_skipped=None if lexical is not None else (controls.lexical_skipped or "not asked for"),
        headlines=headlines, model_matrix=model_matrix, untrained_mean_matrix=u_mean,
        excess_matrix=None if u_mean is None else model_matrix - u_mean,
        untrained_per_layer=({c: np.mean([i.isn_per_layer[c] for i in infos], axis=0) for c in cats}
                             if infos else None),
        clusters_per_category=per_cluster,
        cluster_rule=("two-stage: clusters of provenance (natural: source task, else template; synthetic: "
                      "generator and meta-prompt) within categories, then rows" if controls.clusters
                      else "no provenance given: every row is its own cluster (rows resampled within categories)"),
        n_strata=int(design.strata.max()) + 1, n_boot=config.n_boot, ci_level=config.ci_level,
    )
