"""Rendering an analysis: results objects in, files out (figures, tables, ISN sets, results.json, report.md).

Nothing is computed here beyond formatting: every number comes from an
:class:`~hexainst.analysis.results.AnalysisResults`. :func:`write_outputs` writes one run's whole
folder (the caller gives it an empty staging folder; see :mod:`~hexainst.analysis.pipeline`).

What is read off results.json alone (the claims table, Fig. 3 beside its controls, report.md) is
drawn from results.json's content, so :func:`rerender` can draw it again from a finished folder
when a rule or a figure changes, without recording or analysing again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hexainst.analysis import figures, tables
from hexainst.analysis.claims import cross_level, first_label, json_matrix, restate_claims
from hexainst.analysis.compute import short_name
from hexainst.analysis.nulls import format_p
from hexainst.analysis.report import dumps, render_report
from hexainst.analysis.results import (
    AlterationResult,
    AnalysisResults,
    CategoryMatrix,
    ClaimRow,
    ControlsResult,
    ModelResult,
    to_json,
)
from hexainst.kernel.jsonfiles import read_json, read_text


class Canvas:
    """Where one run's figures and tables go, and which were written (for results.json and the report)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.figures: dict[str, str] = {}
        self.tables: dict[str, str] = {}

    def figure(self, key: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        """Draw ``fn(*args, **kwargs)`` into ``figures/<key>.png`` and ``.svg``."""
        fn(*args, stem=self.folder / "figures" / key, **kwargs)
        self.figures[key] = f"figures/{key}.png"

    def table(self, key: str, header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 3) -> None:
        """Write ``tables/<key>.csv`` and ``.md``."""
        self.tables[key] = tables.write_table(self.folder / "tables" / key, header, rows, digits)


def _ci_cells(matrix: np.ndarray, low: np.ndarray, high: np.ndarray, cats: Sequence[str]) -> list[list[Any]]:
    return [[a] + [f"{matrix[i, j]:.3f} [{low[i, j]:.3f}, {high[i, j]:.3f}]" for j in range(len(cats))]
            for i, a in enumerate(cats)]


def _p_text(p: float) -> str:
    return "n/a" if p != p else f"{p:.4f}"  # NaN: one category, no test


def _stat(v: float) -> str:
    return "n/a" if v != v else f"{v:.3f}"


def render_matrix_table(canvas: Canvas, key: str, result: CategoryMatrix) -> None:
    cats = result.categories
    canvas.table(key, ["category"] + [short_name(c) for c in cats],
                 _ci_cells(result.matrix, result.ci_low, result.ci_high, cats))


def render_model(canvas: Canvas, m: ModelResult, config: Any, untrained_level: float | None = None) -> None:
    """Tables and figures of one store: ISN sizes, Fig. 3, chance level, Fig. 4 (MoE), the sweep."""
    label = m.label
    cats = m.jaccard.categories
    short = [short_name(c) for c in cats]
    sizes = m.isn_sizes
    canvas.table(
        f"isn_sizes_{label}",
        ["category", "instructions", "target k", "mean |S(I)|", "min", "max"],
        [[c, sizes.n_per_category[c], sizes.target_k, sizes.per_category[c].mean, sizes.per_category[c].min,
          sizes.per_category[c].max] for c in cats],
        digits=1,
    )
    jac, perm = m.jaccard, m.jaccard.permutation
    inc = config.include_self_pairs
    untrained = "" if untrained_level is None else f"; untrained model {untrained_level:.3f}"
    canvas.figure(
        f"fig3_jaccard_{label}", figures.heatmap, jac.matrix, short, low=jac.ci_low, high=jac.ci_high,
        title=(f"Fig. 3 — mean Jaccard of ISN sets ({label}: {m.model}), scale from 0\n"
               f"eps={config.eps:g}, ties={config.tie_rule}, {'with' if inc else 'without'} self-pairs; "
               f"diag {_stat(perm.diagonal)} vs off {_stat(perm.off_diagonal)}, p={_p_text(perm.p_value)}\n"
               f"random sets of the same sizes {_stat(jac.chance_overall)}{untrained}"),
        colorbar_label="mean Jaccard", vmin=0.0,
    )
    render_matrix_table(canvas, f"jaccard_{label}", jac)
    if jac.length_matched is not None:
        lm = jac.length_matched
        canvas.table(f"length_matched_{label}",
                     ["category", "unmatched own - cross", "length-matched own - cross", "p", "matched own J",
                      "matched cross J", "own pairs matched"],
                     [[c, lm.unmatched[i], lm.matched[i], lm.p_values[i], lm.matched_same[i], lm.matched_cross[i],
                       lm.coverage[i]] for i, c in enumerate(lm.categories)], digits=4)
    canvas.table(f"jaccard_chance_{label}", ["category"] + short,
                 [[c] + [float(v) for v in jac.chance_matrix[i]] for i, c in enumerate(cats)], digits=4)
    if m.routing_pearson is not None:
        r, rperm = m.routing_pearson, m.routing_pearson.permutation
        canvas.figure(
            f"fig4_routing_pearson_{label}", figures.heatmap, r.matrix, short, low=r.ci_low, high=r.ci_high,
            title=(f"Fig. 4 — mean Pearson r of routing frequencies F(I) ({label})\n"
                   f"diag {_stat(rperm.diagonal)} vs off {_stat(rperm.off_diagonal)}, p={_p_text(rperm.p_value)}"),
            colorbar_label="mean Pearson r",
        )
        render_matrix_table(canvas, f"routing_pearson_{label}", r)
    rows = []
    for e in m.sweep:
        if e.skipped is not None:
            rows.append([e.tie_rule, e.eps, "skipped", "", "", "", "", e.skipped])
        else:
            rows.append([e.tie_rule, e.eps, e.target_k, e.mean_size, e.diagonal, e.off_diagonal, e.difference,
                         e.p_value])
    canvas.table(f"sweep_{label}",
                 ["tie rule", "eps", "target k", "mean |S(I)|", "diagonal", "off-diagonal", "difference", "p"],
                 rows, digits=4)


def render_alteration(canvas: Canvas, alt: AlterationResult, cats: Sequence[str], config: Any) -> None:
    """Tables 1, 2, 6 and Fig. 6."""
    t1 = alt.table1_jaccard
    canvas.table("table1_jaccard_base_vs_ft", ["category", "mean Jaccard(S_base, S_ft)", "CI low", "CI high"],
                 [[c, t1[c].mean, t1[c].ci_low, t1[c].ci_high] for c in cats] + [["all", alt.table1_overall, "", ""]])
    if alt.table2_pearson is not None:
        t2 = alt.table2_pearson
        canvas.table("table2_pearson_base_vs_ft", ["category", "mean Pearson r(F_base, F_ft)", "CI low", "CI high"],
                     [[c, t2[c].mean, t2[c].ci_low, t2[c].ci_high] for c in cats])
    if alt.table6 is not None:
        rows, layer_rows = [], []

        def fmt(top: list[list[int]], mark: set[int]) -> str:
            return ", ".join(f"{e}{'*' if e in mark else ''} ({n})" for e, n in top)

        for c in cats:
            sel = alt.table6[c]
            mark = set(sel.stable)
            rows.append([c, fmt(sel.base_top5, mark), fmt(sel.ft_top5, mark), len(sel.stable)])
            for lay in sel.per_layer:
                layer_rows.append([c, lay.layer, " ".join(map(str, lay.base_top5)), " ".join(map(str, lay.ft_top5)),
                                   len(lay.stable)])
        canvas.table("table6_expert_selection",
                     ["category", "base top-5 experts (tokens)", "fine-tuned top-5 experts (tokens)", "stable"], rows)
        canvas.table("table6_expert_selection_per_layer",
                     ["category", "layer", "base top-5", "fine-tuned top-5", "stable"], layer_rows)
    canvas.figure("fig6_venn_per_layer", figures.venn_bars, alt.fig6_venn,
                  title=f"Fig. 6 — ISNs per layer: base only / both / fine-tuned only (eps={config.eps:g})")


def render_causal(canvas: Canvas, c: Any) -> None:
    """The held-out causal check: its figure (effect matrix with the test and interval, rate match) and tables."""
    cats = c.categories
    short = [short_name(x) for x in cats]
    set_rates = [c.rate_match[x][0]["mean_rate_set"] if c.rate_match[x] else float("nan") for x in cats]
    random_rates = [[m["mean_rate_random"] for m in c.rate_match[x]] for x in cats]
    n_eval = sum(len(v) for v in c.eval_ids.values())
    test = (f"specificity {c.specificity:+.4f} nats/token, {c.config['ci_level']:.0%} CI "
            f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]\nassignment test over {c.n_assignments} assignments: {c.p_text()}\n"
            f"{c.config['per_category']} held-out instructions per category; "
            f"{sum(t['response'] for t in c.targets.values())} of {n_eval} scored on a response\n"
            f"{c.config['n_random']} rate-matched random draws per set (largest quantile gap "
            f"{c.max_rate_gap():.3f})")
    canvas.figure("causal_delta_nll", figures.causal_effect, c.effect, short, set_rates, random_rates,
                  title=f"Causal check (held out) on {Path(c.model).name if c.model else 'the model'}: zeroing a "
                        "category's ISNs vs rate-matched random neurons",
                  test_text=test)
    canvas.table("causal_delta_nll", ["zeroed set (row) / evaluated (column)"] + short,
                 [[x] + [float(v) for v in c.effect[i]] for i, x in enumerate(cats)], digits=4)
    canvas.table("causal_detail", ["zeroed category", "|C(m)| (set)", "built from", "evaluated",
                                   "ΔNLL own (ISNs)", "ΔNLL own (random, mean of draws)", "baseline NLL own",
                                   "own set's rank", "mean rate: set", "mean rate: random draws"],
                 [[x, c.set_sizes[x], c.n_build[x], len(c.eval_ids[x]), float(c.delta_nll_isn[i, i]),
                   float(c.delta_nll_random[i, i]), c.baseline_nll[x], c.own_set_rank[i], set_rates[i],
                   " ".join(f"{r:.4f}" for r in random_rates[i])] for i, x in enumerate(cats)], digits=4)


def render_lengths(canvas: Canvas, results: AnalysisResults) -> None:
    cats = results.categories
    lengths = results.lengths[next(iter(results.models))]
    canvas.table("instruction_lengths", ["category", "mean T", "5%", "25%", "median T", "75%", "95%", "min T", "max T"],
                 [[c, lengths[c].mean, lengths[c].q05, lengths[c].q25, lengths[c].median, lengths[c].q75,
                   lengths[c].q95, lengths[c].min, lengths[c].max] for c in cats], digits=1)
    if results.n_tokens:
        canvas.figure("instruction_lengths", figures.length_quantiles,
                      {short_name(c): results.n_tokens[c] for c in cats},
                      title="Instruction length T per category: quartiles (box), median, mean (triangle), 5-95% whiskers")
    else:
        canvas.figure("instruction_lengths", figures.category_bars, np.array([lengths[c].mean for c in cats]),
                      [short_name(c) for c in cats], title="Instruction length T (tokens) per category, mean",
                      ylabel="mean T")


def _ci_text(v: float | None, lo: float | None, hi: float | None) -> str:
    if v is None or v != v:
        return "n/a"
    if lo is None or hi is None or lo != lo:
        return f"{v:+.4f}"
    return f"{v:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def render_controls(canvas: Canvas, ctl: ControlsResult) -> None:
    """The headline table (model, baselines, excess), per-category excess, the baselines (Fig. 3 beside its
    controls is drawn from results.json: :func:`draw_fig3_beside`)."""
    cats = ctl.categories
    first = ctl.headlines[0]
    columns = list(first.values)
    header = ["statistic", "null of p"] + columns
    rows = []
    for h in ctl.headlines:
        row: list[Any] = [h.description, h.null]
        for c in columns:
            cell = _ci_text(h.values[c], h.ci_low.get(c), h.ci_high.get(c))
            if c in h.p_values:
                cell += f"; {format_p(h.p_values[c], h.n_permutations)}"
            row.append(cell)
        rows.append(row)
    canvas.table("controls_headline", header, rows)
    for h in ctl.headlines:
        if h.per_category is None:
            continue
        cols = [c for c in ("model", "untrained mean", "lexical", "excess") if c in h.per_category]
        rows = []
        for i, cat in enumerate(cats):
            row = [cat]
            for c in cols:
                lo = (h.per_category_low or {}).get(c)
                hi = (h.per_category_high or {}).get(c)
                row.append(_ci_text(h.per_category[c][i], None if lo is None else lo[i], None if hi is None else hi[i]))
            rows.append(row)
        canvas.table(f"controls_{h.name}_per_category", ["category"] + cols, rows)
    base_rows: list[list[Any]] = [[u.label, u.path, f"{u.mean_set_size:.0f}", "-"] for u in ctl.untrained]
    if ctl.lexical is not None:
        lx = ctl.lexical
        base_rows.append(["lexical", f"{lx.vocab_size} token types, target k {lx.target_k}",
                          f"{lx.mean_set_size:.1f} (min {lx.min_set_size}, max {lx.max_set_size})", lx.rule])
    if base_rows:
        canvas.table("controls_baselines", ["baseline", "store / units", "mean |S(I)|", "rule"], base_rows)


def _centred(matrix: np.ndarray) -> np.ndarray:
    """A category matrix minus its own cross-category level (a one-category matrix stays as it is)."""
    return matrix - (cross_level(matrix) if matrix.shape[0] > 1 else 0.0)


def draw_fig3_beside(canvas: Canvas, ctl: dict[str, Any], model_name: str) -> None:
    """Fig. 3 beside its controls, from results.json's ``controls`` section: the model, the untrained mean
    and the lexical baseline on one scale from 0, and the excess *of the category contrast*: each matrix
    minus its own cross-category level, model minus untrained. (The raw difference of the matrices would
    mostly show the models' different overall overlap, not the contrast the excess measures; its
    diagonal mean is the unmatched excess of the headline table.)"""
    if ctl.get("untrained_mean_matrix") is None:
        return
    model, untrained = json_matrix(ctl["model_matrix"]), json_matrix(ctl["untrained_mean_matrix"])
    panels = [(f"model: {model_name}", model),
              (f"untrained, mean of {len(ctl['untrained'])} seeds", untrained)]
    if ctl.get("lexical"):
        panels.append(("lexical (token types)", json_matrix(ctl["lexical"]["matrix"])))
    panels.append(("excess of the contrast:\n(model - its cross mean) - (untrained - its cross mean)",
                   _centred(model) - _centred(untrained)))
    canvas.figure("fig3_beside_untrained", figures.heatmap_panels, panels, [short_name(c) for c in ctl["categories"]],
                  title="Fig. 3 beside its controls: mean Jaccard of sets (shared scale from 0); last panel the "
                        "excess of the category contrast (diverging, centred at 0)")


def render_claims(canvas: Canvas, claims: Sequence[ClaimRow]) -> None:
    canvas.table("claims", ["claim (SPEC §2.6)", "paper's reading", "paper's reading, here", "our reading",
                            "our reading, here", "verdict"],
                 [[c.claim, c.paper_reading, c.paper_value, c.our_reading, c.our_value, c.verdict] for c in claims])


def results_json(results: AnalysisResults, canvas: Canvas) -> dict[str, Any]:
    """What results.json holds: the results, the claims read off them, and the figures and tables written."""
    out = to_json(results)
    _render_from_json(canvas, out)
    return out


def _render_from_json(canvas: Canvas, data: dict[str, Any]) -> None:
    """Draw what results.json's content alone determines (Fig. 3 beside its controls, the claims table) and
    record it, with every figure and table written, in ``data``."""
    if data.get("controls"):
        draw_fig3_beside(canvas, data["controls"], data[first_label(data)]["model"])
    claims = restate_claims(data)
    if claims:
        render_claims(canvas, claims)
    data["claims"] = to_json(claims)
    data["figures"] = dict(canvas.figures)
    data["tables"] = sorted(canvas.tables)


def write_outputs(results: AnalysisResults, folder: Path) -> dict[str, Any]:
    """Write every output of ``results`` into ``folder``; return results.json's content."""
    config = results.config
    canvas = Canvas(folder)
    ctl = results.controls
    level = None
    if ctl is not None and ctl.untrained_mean_matrix is not None:
        um = np.asarray(ctl.untrained_mean_matrix)
        level = float(np.nanmean(np.diagonal(um)))
    first = next(iter(results.models))
    for label, m in results.models.items():
        if config.save_sets and m.sets is not None:
            m.sets.save(folder / "isn_sets" / label)
        render_model(canvas, m, config, untrained_level=level if label == first else None)
    if results.alteration is not None:
        render_alteration(canvas, results.alteration, results.categories, config)
    cats = results.categories
    per_layer = {f"{label}: {m.model}": np.vstack([m.isn_per_layer[c] for c in cats])
                 for label, m in results.models.items()}
    low = {f"{label}: {m.model}": np.vstack([m.isn_per_layer_low[c] for c in cats])
           for label, m in results.models.items() if m.isn_per_layer_low}
    high = {f"{label}: {m.model}": np.vstack([m.isn_per_layer_high[c] for c in cats])
            for label, m in results.models.items() if m.isn_per_layer_high}
    reference = None
    if ctl is not None and ctl.untrained_per_layer:
        m0 = results.models[first]
        reference = {f"{first}: {m0.model}": np.vstack([ctl.untrained_per_layer[c] for c in cats])}
    canvas.figure("fig5_isn_per_layer", figures.layer_profiles, per_layer, [short_name(c) for c in cats],
                  low=low or None, high=high or None, reference=reference,
                  title=(f"Fig. 5 — ISNs per layer per category (eps={config.eps:g}, ties={config.tie_rule}); "
                         f"bands: {int(config.ci_level * 100)}% cluster-bootstrap CI"
                         + ("; dashed: untrained model (mean of seeds)" if reference else "")))
    if ctl is not None:
        render_controls(canvas, ctl)
    render_lengths(canvas, results)
    if results.causal is not None:
        render_causal(canvas, results.causal)
    data = results_json(results, canvas)
    tables.write_text(folder / "results.json", dumps(data))
    tables.write_text(folder / "report.md", render_report(data, canvas.tables))
    return data


def rerender(folder: str | os.PathLike[str], note: str | None = None) -> Path:
    """Draw a finished folder's results.json-derived outputs again with this code: the claims table
    (``tables/claims.*`` and results.json's ``claims``), Fig. 3 beside its controls, and ``report.md``;
    optionally with a new note. Measurements are never recomputed: results.json's other content stays."""
    folder = Path(folder)
    data = read_json(folder / "results.json", what="analysis results")
    if note is not None:
        data["parameters"]["note"] = note
    canvas = Canvas(folder)
    canvas.figures = dict(data.get("figures") or {})
    canvas.tables = {p.name[: -len(".md")]: read_text(p, what="table") for p in sorted((folder / "tables").glob("*.md"))}
    _render_from_json(canvas, data)
    tables.write_text(folder / "results.json", dumps(data))
    tables.write_text(folder / "report.md", render_report(data, canvas.tables))
    return folder / "report.md"
