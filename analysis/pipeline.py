"""``hexainst analyze``: from one or two activation stores to figures, tables, report and JSON.

Stage: activations -> metrics -> figures. Inputs: store folder(s). Output: one folder::

    results.json        every number (and every parameter, both stores' headers)
    report.md           the report, embedding the figures and tables
    figures/*.png|svg   Fig. 3 (Jaccard), Fig. 4 (routing Pearson, MoE), Fig. 5, Fig. 6, ...
    tables/*.csv|md     Table 1, 2, 6, category matrices with CIs, eps sweep, lengths, set sizes
    isn_sets/<label>/   isn_sets.eps<eps>.<tie rule>.npz (unless save_sets is off)

The folder is built beside the target and renamed into place when complete.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hexainst.analysis import figures, tables
from hexainst.analysis.data import StoreData, check_comparable, header_summary, open_store
from hexainst.analysis.isn import TIE_RULES, IsnSets, compute_isn_sets
from hexainst.analysis.metrics import (
    category_means,
    diagonal_contrast,
    jaccard_matrix,
    paired_jaccard,
    paired_pearson,
    pearson_matrix,
    per_category_mean,
    venn_counts_per_layer,
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
from hexainst.kernel.vocab import CATEGORIES, SHORT_NAMES

DEFAULT_SWEEP: tuple[float, ...] = (0.005, 0.01, 0.02, 0.05)


@dataclass(frozen=True)
class AnalysisConfig:
    """Every parameter of a run (written into results.json and report.md)."""

    eps: float = 0.01
    tie_rule: str = "paper"
    scope: str = "global"
    seed: int = 0
    sample: int | None = None
    include_self_pairs: bool = False
    sweep_eps: tuple[float, ...] = DEFAULT_SWEEP
    sweep_tie_rules: tuple[str, ...] = TIE_RULES
    n_permutations: int = 2000
    n_sweep_permutations: int = 500
    n_boot: int = 1000
    ci_level: float = 0.95
    venn_ids: tuple[str, ...] = ()
    save_sets: bool = True
    note: str = ""
    progress: bool = True


def _category_order(labels: Sequence[str]) -> list[str]:
    present = set(labels)
    known = [c for c in CATEGORIES if c in present]
    return known + sorted(present - set(known))


def _short(cat: str) -> str:
    return SHORT_NAMES.get(cat, cat)


def _matrix_rows(matrix: np.ndarray, low: np.ndarray, high: np.ndarray, cats: Sequence[str]) -> list[list[Any]]:
    rows = []
    for i, a in enumerate(cats):
        rows.append([a] + [f"{matrix[i, j]:.3f} [{low[i, j]:.3f}, {high[i, j]:.3f}]" for j in range(len(cats))])
    return rows


def _tolist(x: Any) -> Any:
    """JSON-safe (NaN -> None)."""
    if isinstance(x, np.ndarray):
        return _tolist(x.tolist())
    if isinstance(x, (list, tuple)):
        return [_tolist(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _tolist(v) for k, v in x.items()}
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


class _Run:
    """One analysis run writing into ``self.out`` (a temporary folder)."""

    def __init__(self, out: Path, config: AnalysisConfig):
        self.out = out
        self.cfg = config
        self.fig_dir = out / "figures"
        self.tab_dir = out / "tables"
        self.figures: dict[str, str] = {}
        self.tables: dict[str, str] = {}

    def figure(self, key: str, fn, *args, **kwargs) -> None:
        fn(*args, stem=self.fig_dir / key, **kwargs)
        self.figures[key] = f"figures/{key}.png"

    def table(self, key: str, header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 3) -> None:
        self.tables[key] = tables.write_table(self.tab_dir / key, header, rows, digits)

    # -- one store -----------------------------------------------------------------------------
    def isn_sets(self, data: StoreData, eps: float, tie_rule: str) -> IsnSets:
        sums = data.sums() if tie_rule == "exact-k" else None
        return compute_isn_sets(
            data.counts, eps=eps, tie_rule=tie_rule, scope=self.cfg.scope,
            neuron_layer=data.neuron_layer, sums=sums, ids=data.ids, progress=self.cfg.progress,
        )

    def single(self, data: StoreData, cats: list[str]) -> tuple[dict[str, Any], IsnSets]:
        cfg = self.cfg
        res: dict[str, Any] = {"model": data.model_name, "n_layers": data.n_layers, "is_moe": data.is_moe}
        sets = self.isn_sets(data, cfg.eps, cfg.tie_rule)
        if cfg.save_sets:
            sets.save(self.out / "isn_sets" / data.label)
        sizes = sets.sizes()
        labels = np.asarray(data.categories)
        res["isn_sizes"] = {
            "target_k": int(sets.k[0]) if sets.k.size else None,
            "n_cols": sets.n_cols,
            "overall": {"mean": float(sizes.mean()), "min": int(sizes.min()), "max": int(sizes.max())},
            "per_category": {
                c: {"mean": float(sizes[labels == c].mean()), "min": int(sizes[labels == c].min()),
                    "max": int(sizes[labels == c].max())}
                for c in cats
            },
        }
        self.table(
            f"isn_sizes_{data.label}",
            ["category", "instructions", "target k", "mean |S(I)|", "min", "max"],
            [[c, int((labels == c).sum()), res["isn_sizes"]["target_k"],
              res["isn_sizes"]["per_category"][c]["mean"], res["isn_sizes"]["per_category"][c]["min"],
              res["isn_sizes"]["per_category"][c]["max"]] for c in cats],
            digits=1,
        )
        # Fig. 3: Jaccard category means, CIs, chance level, permutation test.
        jac = jaccard_matrix(sets, progress=cfg.progress)
        inc = cfg.include_self_pairs
        means = category_means(jac, labels, cats, include_self=inc)
        low, high = bootstrap_category_means(jac, labels, cats, include_self=inc, n_boot=cfg.n_boot,
                                             level=cfg.ci_level, seed=cfg.seed)
        perm = permutation_test(jac, labels, cats, include_self=inc, n_permutations=cfg.n_permutations,
                                seed=cfg.seed)
        chance, chance_overall = chance_jaccard(
            sets, labels, cats, include_self=inc, seed=cfg.seed,
            neuron_layer=data.neuron_layer if cfg.scope == "per-layer" else None,
        )
        adjusted = length_adjusted_test(jac, labels, data.n_tokens, n_permutations=cfg.n_sweep_permutations,
                                        seed=cfg.seed)
        res["jaccard"] = {
            "categories": cats, "matrix": means, "ci_low": low, "ci_high": high,
            "permutation": perm.as_dict(), "chance_matrix": chance, "chance_overall": chance_overall,
            "length_adjusted": adjusted.as_dict(),
        }
        short = [_short(c) for c in cats]
        self.figure(
            f"fig3_jaccard_{data.label}", figures.heatmap, means, short, low=low, high=high,
            title=(f"Fig. 3 — mean Jaccard of ISN sets ({data.label}: {data.model_name})\n"
                   f"eps={cfg.eps:g}, ties={cfg.tie_rule}, {'with' if inc else 'without'} self-pairs; "
                   f"diag {perm.diagonal:.3f} vs off {perm.off_diagonal:.3f}, p={perm.p_value:.4f}; "
                   f"chance {chance_overall:.3f}"),
            colorbar_label="mean Jaccard",
        )
        self.table(f"jaccard_{data.label}", ["category"] + short, _matrix_rows(means, low, high, cats))
        self.table(f"jaccard_chance_{data.label}", ["category"] + short,
                   [[c] + [float(v) for v in chance[i]] for i, c in enumerate(cats)], digits=4)
        # Fig. 4: Pearson between routing-frequency vectors (MoE).
        freq = data.routing_frequencies()
        if freq is not None:
            corr = pearson_matrix(freq)
            cmeans = category_means(corr, labels, cats, include_self=inc)
            clow, chigh = bootstrap_category_means(corr, labels, cats, include_self=inc, n_boot=cfg.n_boot,
                                                   level=cfg.ci_level, seed=cfg.seed)
            cperm = permutation_test(corr, labels, cats, include_self=inc, n_permutations=cfg.n_permutations,
                                     seed=cfg.seed)
            res["routing_pearson"] = {"categories": cats, "matrix": cmeans, "ci_low": clow, "ci_high": chigh,
                                      "permutation": cperm.as_dict()}
            self.figure(
                f"fig4_routing_pearson_{data.label}", figures.heatmap, cmeans, short, low=clow, high=chigh,
                title=(f"Fig. 4 — mean Pearson r of routing frequencies F(I) ({data.label})\n"
                       f"diag {cperm.diagonal:.3f} vs off {cperm.off_diagonal:.3f}, p={cperm.p_value:.4f}"),
                colorbar_label="mean Pearson r",
            )
            self.table(f"routing_pearson_{data.label}", ["category"] + short,
                       _matrix_rows(cmeans, clow, chigh, cats))
        # ISNs per layer per category (Fig. 5 data).
        per_layer = sets.per_layer_counts(data.neuron_layer, data.n_layers)
        res["isn_per_layer"] = {c: per_layer[labels == c].mean(axis=0) for c in cats}
        res["sweep"] = self.sweep(data, cats, sets)
        return res, sets

    def sweep(self, data: StoreData, cats: list[str], main: IsnSets) -> list[dict[str, Any]]:
        cfg = self.cfg
        labels = np.asarray(data.categories)
        out = []
        grid = [(tie, eps) for tie in cfg.sweep_tie_rules for eps in cfg.sweep_eps]
        if cfg.progress:
            from tqdm import tqdm

            grid = tqdm(grid, desc=f"eps sweep ({data.label})", unit="setting")
        for tie, eps in grid:
            entry: dict[str, Any] = {"eps": eps, "tie_rule": tie, "scope": cfg.scope}
            if tie == "exact-k" and not data.has_sums:
                entry["skipped"] = "the store has no activation sums (record with sums to break ties)"
                out.append(entry)
                continue
            if eps == cfg.eps and tie == cfg.tie_rule:
                sets = main
            else:
                sets = self.isn_sets(data, eps, tie)
            jac = jaccard_matrix(sets)
            means = category_means(jac, labels, cats, include_self=cfg.include_self_pairs)
            perm = permutation_test(jac, labels, cats, include_self=cfg.include_self_pairs,
                                    n_permutations=cfg.n_sweep_permutations, seed=cfg.seed)
            entry.update(
                target_k=int(sets.k[0]), mean_size=float(sets.sizes().mean()),
                min_size=int(sets.sizes().min()), max_size=int(sets.sizes().max()),
                diagonal=perm.diagonal, off_diagonal=perm.off_diagonal, difference=perm.difference,
                p_value=perm.p_value, n_permutations=perm.n_permutations,
                diagonal_per_category={c: float(means[i, i]) for i, c in enumerate(cats)},
            )
            out.append(entry)
        rows = []
        for e in out:
            if "skipped" in e:
                rows.append([e["tie_rule"], e["eps"], "skipped", "", "", "", "", e["skipped"]])
            else:
                rows.append([e["tie_rule"], e["eps"], e["target_k"], e["mean_size"], e["diagonal"],
                             e["off_diagonal"], e["difference"], e["p_value"]])
        self.table(f"sweep_{data.label}",
                   ["tie rule", "eps", "target k", "mean |S(I)|", "diagonal", "off-diagonal", "difference", "p"],
                   rows, digits=4)
        return out

    # -- two stores ----------------------------------------------------------------------------
    def alteration(self, base: StoreData, ft: StoreData, sb: IsnSets, sf: IsnSets, cats: list[str]) -> dict[str, Any]:
        cfg = self.cfg
        labels = np.asarray(base.categories)
        res: dict[str, Any] = {}
        pj = paired_jaccard(sb, sf)
        m = per_category_mean(pj, labels, cats)
        lo, hi = bootstrap_category_vector(pj, labels, cats, n_boot=cfg.n_boot, level=cfg.ci_level, seed=cfg.seed)
        res["table1_jaccard"] = {c: {"mean": m[i], "ci_low": lo[i], "ci_high": hi[i]} for i, c in enumerate(cats)}
        res["table1_overall"] = float(np.mean(pj))
        self.table("table1_jaccard_base_vs_ft", ["category", "mean Jaccard(S_base, S_ft)", "CI low", "CI high"],
                   [[c, m[i], lo[i], hi[i]] for i, c in enumerate(cats)] + [["all", float(np.mean(pj)), "", ""]])
        fb, ff = base.routing_frequencies(), ft.routing_frequencies()
        if fb is not None and ff is not None:
            pr = paired_pearson(fb, ff)
            m2 = per_category_mean(pr, labels, cats)
            lo2, hi2 = bootstrap_category_vector(pr, labels, cats, n_boot=cfg.n_boot, level=cfg.ci_level,
                                                 seed=cfg.seed)
            res["table2_pearson"] = {c: {"mean": m2[i], "ci_low": lo2[i], "ci_high": hi2[i]}
                                     for i, c in enumerate(cats)}
            self.table("table2_pearson_base_vs_ft", ["category", "mean Pearson r(F_base, F_ft)", "CI low", "CI high"],
                       [[c, m2[i], lo2[i], hi2[i]] for i, c in enumerate(cats)])
            res["table6"] = self.table6(base, ft, cats)
        # Fig. 6: Venn bars per layer for chosen instructions.
        chosen = list(cfg.venn_ids)
        if not chosen:
            seen: set[str] = set()
            for i, c in zip(base.ids, base.categories):
                if c not in seen:
                    seen.add(c)
                    chosen.append(i)
        pos = {i: k for k, i in enumerate(base.ids)}
        missing = [i for i in chosen if i not in pos]
        if missing:
            raise UserError(f"--venn-id not among the analysed instructions: {', '.join(missing)}")
        venn = {}
        for i in chosen:
            r = pos[i]
            venn[f"{i} ({_short(base.categories[r])})"] = venn_counts_per_layer(
                sb.row(r), sf.row(r), base.neuron_layer, base.n_layers)
        res["fig6_venn"] = venn
        self.figure("fig6_venn_per_layer", figures.venn_bars, venn,
                    title=f"Fig. 6 — ISNs per layer: base only / both / fine-tuned only (eps={cfg.eps:g})")
        return res

    def table6(self, base: StoreData, ft: StoreData, cats: list[str]) -> dict[str, Any]:
        """Expert selection counts per category, top five by expert id; stable ones marked."""
        labels = np.asarray(base.categories)

        def top5(counts: np.ndarray) -> list[int]:
            order = np.lexsort((np.arange(counts.size), -counts))
            return [int(e) for e in order[:5]]

        out: dict[str, Any] = {}
        rows, layer_rows = [], []
        for c in cats:
            rb = base.routing[labels == c].astype(np.int64)  # [n_c, L, E]
            rf = ft.routing[labels == c].astype(np.int64)
            tb, tf = rb.sum(axis=(0, 1)), rf.sum(axis=(0, 1))
            top_b, top_f = top5(tb), top5(tf)
            stable = sorted(set(top_b) & set(top_f))
            out[c] = {"base_top5": [[e, int(tb[e])] for e in top_b], "ft_top5": [[e, int(tf[e])] for e in top_f],
                      "stable": stable, "per_layer": []}
            fmt = lambda top, cnt: ", ".join(f"{e}{'*' if e in stable else ''} ({cnt[e]})" for e in top)  # noqa: E731
            rows.append([c, fmt(top_b, tb), fmt(top_f, tf), len(stable)])
            for layer in range(rb.shape[1]):
                lb, lf = top5(rb[:, layer].sum(axis=0)), top5(rf[:, layer].sum(axis=0))
                st = sorted(set(lb) & set(lf))
                out[c]["per_layer"].append({"layer": layer, "base_top5": lb, "ft_top5": lf, "stable": st})
                layer_rows.append([c, layer, " ".join(map(str, lb)), " ".join(map(str, lf)), len(st)])
        self.table("table6_expert_selection",
                   ["category", "base top-5 experts (tokens)", "fine-tuned top-5 experts (tokens)", "stable"], rows)
        self.table("table6_expert_selection_per_layer",
                   ["category", "layer", "base top-5", "fine-tuned top-5", "stable"], layer_rows)
        return out


@dataclass
class CausalSpec:
    """What the causal check needs: store A's model and tokenizer and the instruction texts."""

    model: Any
    tokenizer: Any
    texts: dict[str, str]
    per_category: int = 10
    model_name: str = ""
    max_predicted: int | None = 32
    exclude_shared: bool = False


def _causal(run: _Run, data: StoreData, sets: IsnSets, cats: list[str], spec: CausalSpec) -> dict[str, Any]:
    from hexainst.analysis.causal import CausalError, causal_check

    missing = [i for i in data.ids if i not in spec.texts]
    if missing:
        raise CausalError(f"no instruction text for {len(missing)} analysed ids (first: {missing[0]}); "
                          "pass the release the store was recorded from")
    pick = sample_per_category(data.categories, cats, spec.per_category, seed=run.cfg.seed + 1)
    eval_rows = [{"id": data.ids[r], "category": data.categories[r], "instruction": spec.texts[data.ids[r]]}
                 for r in pick]
    res = causal_check(
        spec.model, spec.tokenizer, sets=sets, set_categories=data.categories, eval_rows=eval_rows,
        categories=cats, neuron_layer=data.neuron_layer, neuron_index=data.neuron_index,
        neuron_expert=data.neuron_expert, input_policy=data.header.get("input_policy"), seed=run.cfg.seed,
        max_predicted=spec.max_predicted, exclude_shared=spec.exclude_shared, progress=run.cfg.progress,
    )
    res["model"] = spec.model_name or data.model_name
    short = [_short(c) for c in cats]
    run.figure("causal_delta_nll", figures.heatmap, res["effect"], short,
               title=("Causal check: ΔNLL(zero ISNs of row category) − ΔNLL(zero random, same layers)\n"
                      f"on column category's instructions; diag {res['diagonal_mean']:+.4f} vs off "
                      f"{res['off_diagonal_mean']:+.4f} nats/token"),
               colorbar_label="nats per token", fmt="{:+.3f}", xlabel="evaluated category",
               ylabel="zeroed category's ISNs")
    run.table("causal_delta_nll", ["zeroed (row) / evaluated (column)"] + short,
              [[c] + [float(v) for v in res["effect"][i]] for i, c in enumerate(cats)], digits=4)
    run.table("causal_detail", ["zeroed category", "|C(m)|", "ΔNLL own (ISNs)", "ΔNLL own (random)",
                                "baseline NLL own"],
              [[c, res["set_sizes"][c], float(res["delta_nll_isn"][i, i]), float(res["delta_nll_random"][i, i]),
                res["baseline_nll"][c]] for i, c in enumerate(cats)], digits=4)
    return res


def _lengths(data: StoreData, cats: list[str]) -> dict[str, dict[str, float]]:
    labels = np.asarray(data.categories)
    out = {}
    for c in cats:
        t = data.n_tokens[labels == c].astype(np.float64)
        out[c] = {"mean": float(t.mean()), "median": float(np.median(t)), "min": int(t.min()), "max": int(t.max())}
    return out


def analyze(
    store_a: str | os.PathLike[str] | Any,
    out_dir: str | os.PathLike[str],
    *,
    store_b: str | os.PathLike[str] | Any | None = None,
    config: AnalysisConfig = AnalysisConfig(),
    causal: CausalSpec | None = None,
) -> dict[str, Any]:
    """Analyse store A (and compare it with B, the fine-tuned model) into ``out_dir``; return results.

    ``causal``: run the causal check on store A's model (see :mod:`hexainst.analysis.causal`).
    """
    a = open_store(store_a) if isinstance(store_a, (str, os.PathLike)) else store_a
    b = None
    if store_b is not None:
        b = open_store(store_b) if isinstance(store_b, (str, os.PathLike)) else store_b
        b_rows_all = check_comparable(a, b)
    if config.tie_rule == "exact-k" and not a.header.get("layout", {}).get("with_sums"):
        from hexainst.analysis.isn import IsnError

        raise IsnError(f"tie rule 'exact-k' needs activation sums, but store {getattr(a, 'path', 'A')} has none; "
                       "record with sums or use --tie-rule paper")
    cats = _category_order(a.categories)
    rows = sample_per_category(a.categories, cats, config.sample, seed=config.seed)
    label_a, label_b = ("base", "fine-tuned") if b is not None else ("model", None)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        run = _Run(tmp, config)
        da = StoreData.load(a, label_a, rows)
        results: dict[str, Any] = {
            "parameters": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()
                           if k != "progress"},
            "stores": {label_a: {"path": str(getattr(a, "path", "")), "header": header_summary(a.header)}},
            "instructions": {"n": len(rows), "per_category": {c: int(sum(1 for x in da.categories if x == c))
                                                               for c in cats}},
            "lengths": {label_a: _lengths(da, cats)},
        }
        ra, sa = run.single(da, cats)
        results[label_a] = ra
        per_layer = {f"{label_a}: {da.model_name}": np.vstack([ra["isn_per_layer"][c] for c in cats])}
        if b is not None:
            db = StoreData.load(b, label_b, b_rows_all[rows])
            results["stores"][label_b] = {"path": str(getattr(b, "path", "")), "header": header_summary(b.header)}
            results["lengths"][label_b] = _lengths(db, cats)
            rb, sb = run.single(db, cats)
            results[label_b] = rb
            per_layer[f"{label_b}: {db.model_name}"] = np.vstack([rb["isn_per_layer"][c] for c in cats])
            results["alteration"] = run.alteration(da, db, sa, sb, cats)
        run.figure("fig5_isn_per_layer", figures.layer_profiles, per_layer, [_short(c) for c in cats],
                   title=f"Fig. 5 — ISNs per layer per category (eps={config.eps:g}, ties={config.tie_rule})")
        lengths = results["lengths"][label_a]
        run.table("instruction_lengths", ["category", "mean T", "median T", "min T", "max T"],
                  [[c, lengths[c]["mean"], lengths[c]["median"], lengths[c]["min"], lengths[c]["max"]] for c in cats],
                  digits=1)
        run.figure("instruction_lengths", figures.category_bars, np.array([lengths[c]["mean"] for c in cats]),
                   [_short(c) for c in cats], title="Instruction length T (tokens) per category, mean",
                   ylabel="mean T")
        if causal is not None:
            results["causal"] = _causal(run, da, sa, cats, causal)
        results["figures"] = run.figures
        results["tables"] = sorted(run.tables)
        results = _tolist(results)
        from hexainst.analysis.report import render_report

        tables.write_text(tmp / "results.json", json.dumps(results, indent=1, sort_keys=True) + "\n")
        tables.write_text(tmp / "report.md", render_report(results, run.tables))
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, old / "x")
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return results
