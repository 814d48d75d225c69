"""``report.md`` of a SPARCOM run, rendered from its results and tables (no computation here)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hexainst.analysis.nulls import format_p
from hexainst.kernel.vocab import SHORT_NAMES


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _p(p: float | None) -> str:
    return "n/a" if p is None else (f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}")


def _fig(results: dict[str, Any], key: str, caption: str) -> list[str]:
    path = results.get("figures", {}).get(key)
    if not path:
        return []
    svg = path[: -len(".png")] + ".svg"
    return [f"![{caption}]({path})", "", f"*{caption}* ([SVG]({svg}))", ""]


def _tab(tables: dict[str, str], key: str) -> list[str]:
    md = tables.get(key)
    return [md, f"(CSV: `tables/{key}.csv`)", ""] if md else []


def _num(v: Any, spec: str = ".4f") -> str:
    """A number of results.json formatted, or "n/a" when it is null (e.g. no test with one category)."""
    return "n/a" if v is None else format(v, spec)


def _summary(results: dict[str, Any], label: str) -> list[str]:
    res = results[label]
    perm = res["jaccard"]["permutation"]
    lengths = results["lengths"][label]
    cats = res["jaccard"]["categories"]
    diag = res["jaccard"]["matrix"]
    if perm["difference"] is None and len(cats) == 1:
        lines = [
            f"**{label} ({res['model']})**: mean Jaccard of ISN sets within the one category analysed "
            f"({', '.join(cats)}): **{_num(perm['diagonal'])}**. With a single category there is nothing to "
            "compare across categories: no permutation test, no length-adjusted test.",
            "",
        ]
    elif perm["difference"] is None:
        lines = [
            f"**{label} ({res['model']})**: no pair of different instructions within a category (one "
            "instruction per category?), so the same-category mean is not defined and there is no test; "
            f"mean Jaccard across categories {_num(perm['off_diagonal'])}.",
            "",
        ]
    else:
        verdict = "higher" if perm["difference"] > 0 else "not higher"
        lines = [
            f"**{label} ({res['model']})**: same-category Jaccard of ISN sets (mean of the diagonal of Fig. 3) is "
            f"**{perm['diagonal']:.4f}** vs **{perm['off_diagonal']:.4f}** across categories "
            f"(difference {perm['difference']:+.4f}; {verdict}); permutation test of diagonal > off-diagonal, "
            f"labels shuffled over all rows (any category structure, not beyond length): "
            f"**{format_p(perm['p_value'], perm['n_permutations'])}**. "
            f"Random sets of the same sizes overlap {_num(res['jaccard']['chance_overall'])}: a floor, not a "
            "baseline for specialisation (the untrained model is that baseline, above).",
            "",
        ]
    lines += [
        "Per category, next to the instruction length T (tokens), which also differs between categories and "
        "changes how many neurons tie at the threshold (a likely confound):",
        "",
        "| category | same-category Jaccard | mean \\|S(I)\\| | mean T | median T |",
        "|---|---|---|---|---|",
    ]
    for i, c in enumerate(cats):
        size = res["isn_sizes"]["per_category"][c]["mean"]
        lines.append(
            f"| {c} ({SHORT_NAMES.get(c, c)}) | {_fmt(diag[i][i], 4)} | {size:.0f} | "
            f"{lengths[c]['mean']:.1f} | {lengths[c]['median']:.0f} |"
        )
    lines.append("")
    adj = res["jaccard"].get("length_adjusted")
    if adj and adj["same_category_coef"] is not None:
        lines += [
            "Length-adjusted: least squares over all pairs of J ~ same category + |log T_i − log T_j| + "
            f"(log T_i + log T_j) gives a same-category coefficient of **{adj['same_category_coef']:+.4f}** "
            f"(label-shuffle p = {_p(adj['p_value'])}, {adj['n_permutations']} shuffles; length-difference "
            f"coefficient {_num(adj['length_diff_coef'], '+.4f')}, length-sum coefficient "
            f"{_num(adj['length_sum_coef'], '+.4f')}).",
            "",
        ]
    lm = res["jaccard"].get("length_matched")
    if lm:
        bounds = ", ".join(f"{a}-{b}" for a, b in lm["strata_bounds"])
        lines += [
            f"Length-matched: instructions cut into {lm['n_strata']} quantile strata of T ({bounds} tokens); a pair "
            "is compared only with pairs of the same two strata. Same-category minus cross-category Jaccard, mean "
            f"over categories: **{_num(lm['unmatched_difference'], '+.4f')}** unmatched, "
            f"**{_num(lm['difference'], '+.4f')}** length-matched ({format_p(lm['p_value'], lm['n_permutations'])}, "
            f"{lm.get('null', 'label shuffles')}); per category in `tables/length_matched_{label}.md`.",
            "",
        ]
    return lines


def _section_header(results: dict[str, Any], tables: dict[str, str], labels: list[str]) -> list[str]:
    params = results["parameters"]
    out = ["# SPARCOM analysis report", ""]
    if params.get("note"):
        out += [f"> {params['note']}", ""]
    out += [
        f"{results['instructions']['n']} instructions "
        f"({', '.join(f'{c}: {n}' for c, n in results['instructions']['per_category'].items())}); "
        f"ISN sets: top eps = {params['eps']:g} per instruction, tie rule `{params['tie_rule']}`, "
        f"scope `{params['scope']}`; category means {'include' if params['include_self_pairs'] else 'exclude'} "
        f"self-pairs; seed {params['seed']}.",
        "",
    ]
    return out


def _h(ctl: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((h for h in ctl.get("headlines", []) if h["name"] == name), None)


def _ci(h: dict[str, Any], col: str) -> str:
    v = h["values"].get(col)
    lo, hi = h["ci_low"].get(col), h["ci_high"].get(col)
    if v is None:
        return "n/a"
    return f"{v:+.4f}" if lo is None or hi is None else f"{v:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def _plain_excess(ctl: dict[str, Any]) -> str:
    """What the excess means, in plain words: its share of the model's effect per statistic, and
    which intervals reach zero (plainly when it is small)."""
    parts, zero, shares = [], [], []
    for name, text in (("unmatched", "unmatched"), ("length_matched", "length-matched"),
                       ("length_adjusted", "by the length regression"), ("cross_source", "across the source halves")):
        h = _h(ctl, name)
        if h is None or h["values"].get("excess") is None or not h["values"].get("model"):
            continue
        share = h["values"]["excess"] / h["values"]["model"]
        shares.append(share)
        parts.append(f"{share:.0%} {text}")
        lo = h["ci_low"].get("excess")
        if lo is None or lo <= 0:
            zero.append(text)
    if not shares:
        return ""
    out = f"The excess is {', '.join(parts)} of the model's own effect."
    if zero:
        out += f" Its interval reaches zero {', '.join(zero)}: there the effect is not distinguishable from an untrained model's."
    if min(shares) < 0.5:
        out += (" It is small: much of what Fig. 3 shows is input structure (length, token overlap) that the same "
                "architecture with random weights turns into overlapping ISN sets too; only the excess is evidence "
                "of learned, category-specific function.")
    else:
        out += " Most of the effect is beyond the untrained model."
    return out


def _section_controls(results: dict[str, Any], tables: dict[str, str], labels: list[str]) -> list[str]:
    """The first section: the excess over the controls, and what it means."""
    ctl = results.get("controls")
    out = ["## Learned function or input structure? (read this first)", ""]
    if not ctl:
        return out + ["No controls were computed (one category).", ""]
    un, lm = _h(ctl, "unmatched"), _h(ctl, "length_matched")
    n_u = len(ctl.get("untrained", []))
    if n_u and un is not None and lm is not None:
        out += [
            f"Same-category minus cross-category ISN Jaccard: model **{un['values']['model']:+.4f}**, the same "
            f"architecture with random weights (mean of {n_u} seeds) **{un['values']['untrained mean']:+.4f}**, "
            f"excess **{_ci(un, 'excess')}** (95% cluster-bootstrap CI); on length-matched pairs the model "
            f"{lm['values']['model']:+.4f}, untrained {lm['values']['untrained mean']:+.4f}, excess "
            f"**{_ci(lm, 'excess')}**"
            + (f"; the instructions' own token overlap (lexical baseline) {un['values']['lexical']:+.4f} unmatched, "
               f"{lm['values']['lexical']:+.4f} length-matched" if "lexical" in un["values"] else "")
            + ". " + _plain_excess(ctl),
            "",
        ]
    else:
        out += ["**No untrained baseline was given** (`--untrained STORE...`, recorded with `hexainst record "
                "--random-init SEED`), so this report cannot say how much of the effect below is learned: an "
                "untrained model shows part of it (issue 22). Treat every number below as an upper bound.", ""]
    if ctl.get("lexical") is None:
        out += [f"Lexical baseline: not computed ({ctl.get('lexical_skipped')}).", ""]
    out += [
        "Every headline statistic for the model, each baseline and the excess (model − untrained mean; the "
        "statistics are linear in the pair values, so the excess is the statistic of the difference matrix and "
        "is tested and bootstrapped on the same draws). Intervals: "
        f"{int(ctl['ci_level'] * 100)}% percentile, {ctl['n_boot']} draws of the {ctl['cluster_rule']} "
        f"(clusters per category: {', '.join(f'{SHORT_NAMES.get(c, c)} {n}' for c, n in ctl['clusters_per_category'].items())}). "
        f"p: one-sided, under the null named in each row; {ctl['n_strata']} length strata.",
        "",
    ]
    out += _tab(tables, "controls_headline")
    out += ["Per category, length-matched own − cross:", ""] + _tab(tables, "controls_length_matched_per_category")
    out += _tab(tables, "controls_baselines")
    out += _fig(results, "fig3_beside_untrained", "Fig. 3 beside the untrained model and the lexical baseline")
    return out


def _section_claims(results: dict[str, Any], tables: dict[str, str], labels: list[str]) -> list[str]:
    if "claims" not in tables:
        return []
    return ["## The paper's claims, restated", "",
            "Verdicts: holds; holds on the paper's reading but confounded (by what); does not hold; not "
            "comparable here (why). The rules are in `hexainst.analysis.claims`.", ""] + _tab(tables, "claims")


def _section_summary(results: dict[str, Any], tables: dict[str, str], labels: list[str]) -> list[str]:
    out = ["## Summary", ""]
    for label in labels:
        out += _summary(results, label)
    if "alteration" in results:
        alt = results["alteration"]
        out += [f"Base vs fine-tuned: mean Jaccard of an instruction's ISN sets is "
                f"{_num(alt['table1_overall'])} (Table 1).", ""]
    if "causal" in results:
        c = results["causal"]
        out += [f"Causal check (held out): on held-out instructions, a category's own ISN set minus the other "
                f"categories' sets (each net of rate-matched random neurons): "
                f"{_num(c['specificity'], '+.4f')} nats/token ({c['config']['ci_level']:.0%} CI "
                f"[{_num(c['ci_low'], '+.4f')}, {_num(c['ci_high'], '+.4f')}]; assignment test {c['p_text']}).", ""]
    return out


def _section_parameters(results: dict[str, Any], tables: dict[str, str], labels: list[str]) -> list[str]:
    out = ["## Parameters", "", "| parameter | value |", "|---|---|"]
    for k, v in sorted(results["parameters"].items()):
        out.append(f"| `{k}` | `{json.dumps(v)}` |")
    out += ["", "## Stores", ""]
    for label, store in results["stores"].items():
        out += [f"### {label}: `{store['path']}`", "", "```json",
                json.dumps(store["header"], indent=1, sort_keys=True), "```", ""]
    return out


def _section_sizes(results: dict[str, Any], tables: dict[str, str], labels: list[str]) -> list[str]:
    out = ["## ISN set sizes", "",
           "The paper's rule keeps every neuron tied at the threshold, so |S(I)| can exceed the target "
           "k = ceil(eps x neurons) several times; sizes are reported, never assumed.", ""]
    for label in labels:
        out += [f"### {label}", ""] + _tab(tables, f"isn_sizes_{label}")
    return out


def _section_generality(results: dict[str, Any], tables: dict[str, str], labels: list[str]) -> list[str]:
    params = results["parameters"]
    out = ["## Generality and uniqueness (Fig. 3)", "",
           "Cells: mean Jaccard between the ISN sets of instructions of the row and column categories, with "
           f"{int(params['ci_level'] * 100)}% percentile bootstrap intervals ({params['n_boot']} resamples of "
           "instructions within categories).", ""]
    for label in labels:
        out += _fig(results, f"fig3_jaccard_{label}", f"Fig. 3, {label}")
        out += _tab(tables, f"jaccard_{label}")
        out += ["Chance level (random sets of the same sizes):", ""] + _tab(tables, f"jaccard_chance_{label}")
        if f"length_matched_{label}" in tables:
            out += ["Length-matched (own = same-category pairs, cross = pairs with one member in the category; "
                    "cells of equal length strata only; p: label shuffles, one-sided):", ""]
            out += _tab(tables, f"length_matched_{label}")
    if any(f"routing_pearson_{label}" in tables for label in labels):
        out += ["## Routing correlation (Fig. 4)", ""]
        for label in labels:
            out += _fig(results, f"fig4_routing_pearson_{label}", f"Fig. 4, {label}")
            out += _tab(tables, f"routing_pearson_{label}")
            if "routing_pearson" in results[label]:
                perm = results[label]["routing_pearson"]["permutation"]
                out += [f"Diagonal {_num(perm['diagonal'])} vs off-diagonal {_num(perm['off_diagonal'])}, "
                        f"p = {_p(perm['p_value'])}.", ""]
    return out


def _section_layers(results: dict[str, Any], tables: dict[str, str], labels: list[str]) -> list[str]:
    return ["## ISNs per layer (Fig. 5)", ""] + _fig(results, "fig5_isn_per_layer", "Fig. 5")


def _section_alteration(results: dict[str, Any], tables: dict[str, str], labels: list[str]) -> list[str]:
    if "alteration" not in results:
        return []
    out = ["## Alteration: base vs fine-tuned", "", "### Table 1: Jaccard of S_base(I) and S_ft(I)", ""]
    out += _tab(tables, "table1_jaccard_base_vs_ft")
    if "table2_pearson_base_vs_ft" in tables:
        out += ["### Table 2: Pearson r of F_base(I) and F_ft(I)", ""] + _tab(tables, "table2_pearson_base_vs_ft")
    out += ["### Fig. 6", ""] + _fig(results, "fig6_venn_per_layer", "Fig. 6")
    if "table6_expert_selection" in tables:
        out += ["### Table 6: expert selection counts per category", "",
                "Top five experts by token-level selection count (expert id, count); `*` marks experts in "
                "the top five of both models. Per-layer detail: `tables/table6_expert_selection_per_layer.csv`.",
                ""] + _tab(tables, "table6_expert_selection")
    return out


def _section_sweep(results: dict[str, Any], tables: dict[str, str], labels: list[str]) -> list[str]:
    params = results["parameters"]
    out = ["## Epsilon sweep and tie rules", "",
           "Diagonal vs off-diagonal mean Jaccard for each eps and tie rule, with a permutation p-value "
           f"({params['n_sweep_permutations']} shuffles).", ""]
    for label in labels:
        out += [f"### {label}", ""] + _tab(tables, f"sweep_{label}")
    return out


def _section_causal(results: dict[str, Any], tables: dict[str, str], labels: list[str]) -> list[str]:
    if "causal" not in results:
        return []
    from hexainst.analysis.causal import heldout_markdown

    out = ["## Causal check (beyond the paper)", "",
           "For each category, its ISNs (the median-|S(I)| neurons most often in its instructions' sets) are "
           "zeroed on the act_fn output of every dense MLP, and the NLL of held-out instructions of every "
           "category is measured against zeroing random neurons of the same layers with the same firing rates. "
           "The sets are built only from instructions that are not evaluated (the earlier check built them "
           "from the evaluated ones too, which is circular; see docs/sparcom-metrics.md).", ""]
    out += heldout_markdown(results["causal"]) + [""]
    out += _fig(results, "causal_delta_nll", "Causal check (held out): effect matrix with the test, and the rate "
                                             "match of the random sets")
    out += _tab(tables, "causal_detail")
    return out


def _section_lengths(results: dict[str, Any], tables: dict[str, str], labels: list[str]) -> list[str]:
    out = ["## Instruction length", ""] + _fig(results, "instruction_lengths", "Instruction length")
    return out + _tab(tables, "instruction_lengths")


def _section_method(results: dict[str, Any], tables: dict[str, str], labels: list[str]) -> list[str]:
    return ["## Method notes", "",
            "- p(I) = counts / T with T the real tokens of the model input; the threshold is the k-th largest "
            "p with k = ceil(eps x neurons in scope), compared on integer counts (exact).",
            "- Tie rule `paper`: every neuron with p >= threshold; `exact-k`: exactly k, ties broken by the "
            "larger activation sum, then the lower column. A neuron that never fires is never in a set.",
            "- Jaccard is exact (integer intersection counts); category means exclude the pair of an "
            "instruction with itself unless `include_self_pairs` (the paper's rule).",
            "- Permutation test: category labels shuffled over instructions; statistic = mean diagonal − mean "
            "off-diagonal of the category-mean matrix; p = (1 + #null ≥ observed) / (1 + shuffles), written "
            "p <= 1/(n+1) at the floor. The length tests shuffle labels within length strata (beyond length); the "
            "cross-source test within source half x length stratum.",
            "- Every interval is a cluster bootstrap over provenance (source task / template / generator), then "
            "rows; baselines and nulls: `docs/sparcom-metrics.md`.",
            ""]


#: The report's sections in order: each takes (results.json content, table key -> Markdown, model
#: labels) and returns lines. A new analysis adds its section here (it renders from results.json,
#: so that :func:`rerender` works from the folder alone).
SECTIONS = [
    _section_header, _section_controls, _section_claims, _section_summary, _section_parameters, _section_sizes, _section_generality,
    _section_layers, _section_alteration, _section_sweep, _section_causal, _section_lengths, _section_method,
]


def render_report(results: dict[str, Any], tables: dict[str, str]) -> str:
    """The Markdown report. ``tables``: table key -> Markdown text (as written under tables/)."""
    labels = [k for k in ("model", "base", "fine-tuned") if k in results]
    out: list[str] = []
    for section in SECTIONS:
        out += section(results, tables, labels)
    return "\n".join(out)


def rerender(folder: str | os.PathLike[str], note: str | None = None) -> Path:
    """Render ``folder/report.md`` again from its ``results.json`` and ``tables/*.md`` (optionally a new note)."""
    from hexainst.analysis.render import dumps
    from hexainst.analysis.tables import write_text
    from hexainst.kernel.jsonfiles import read_json, read_text

    folder = Path(folder)
    results = read_json(folder / "results.json", what="analysis results")
    if note is not None:
        results["parameters"]["note"] = note
        write_text(folder / "results.json", dumps(results))
    tables = {p.name[: -len(".md")]: read_text(p, what="table") for p in sorted((folder / "tables").glob("*.md"))}
    write_text(folder / "report.md", render_report(results, tables))
    return folder / "report.md"
