"""The single-run alteration report (one tuned and one control run; superseded by :mod:`.design_report`).

Kept for the analyses it renders beside Table 1 (Fig. 5, length-matched comparisons, a second
model); it reads one run per arm, so its sign-flip tests say nothing about the fine-tuning
procedure (issue #22): the multi-seed design is :mod:`.design`.

:func:`evaluate_pair` scores the base model and both finished fine-tunes of a recipe on its
held-out rows and writes one JSON file. :func:`write_alteration_report` reads that file, the
two base vs fine-tuned ``hexainst analyze`` folders (setting ``compare``) (base vs tuned, base vs control) and the three stores,
and writes ``report.md``, ``results.json``, ``figures/`` and ``tables/`` into one folder.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from hexainst.analysis.causal import heldout_p_text
from hexainst.analysis.data import open_store
from hexainst.analysis.figures import layer_profiles, pyplot, save_figure
from hexainst.analysis.isn import IsnSets
from hexainst.analysis.metrics import paired_jaccard
from hexainst.analysis.recording.loading import load_model, resolve_model
from hexainst.analysis.tables import to_markdown, write_table
from hexainst.kernel.atomic import staged_dir, write_text
from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import dumps_stable, read_json
from hexainst.kernel.log import STDOUT
from hexainst.kernel.outputs import claim_output_dir, write_marker
from hexainst.kernel.templating import environment
from hexainst.kernel.vocab import DEFAULT_SEED, SHORT_NAMES

from .contrast import category_heterogeneity, paired_sign_flip
from .data import load_split
from .evaluate import greedy_answers, paired_difference, response_nll
from .recipe import Recipe
from .train import finished, training_summary

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
#: The single-run pair this report reads (seed 0 of two arms); the multi-seed design with the
#: shuffled arm is :mod:`.design` / :mod:`.design_report`.
VARIANTS = ("tuned", "control")
MODELS = ("base", *VARIANTS)
#: The report templates (package data of hexainst.analysis).
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


# --- evaluation ---------------------------------------------------------------------------------


#: What a file written by ``hexainst finetune evaluate`` holds at its top level.
EVALUATION_KEYS = ("recipe", "rows", "nll", "differences", "greedy", "training")


def _read_evaluation(path: PathLike) -> dict[str, Any]:
    doc = read_json(path, what="fine-tune evaluation")
    missing = [k for k in EVALUATION_KEYS if not isinstance(doc, dict) or k not in doc]
    if missing:
        raise UserError(f"{path}: not a file written by 'hexainst finetune evaluate' (no {', '.join(map(repr, missing))})")
    return doc


def _previous_evaluation(out: PathLike, recipe: Recipe, done: dict[str, Any], split: Any) -> dict[str, Any] | None:
    """An earlier evaluation in ``out`` of exactly this recipe, these fine-tunes and these rows, or None."""
    path = Path(out)
    if not path.is_file():
        return None
    try:
        doc = read_json(path, what="fine-tune evaluation")
    except UserError:
        return None
    same = (doc.get("recipe") == recipe.doc and doc.get("rows") == split.summary()
            and all(doc.get("training", {}).get(v, {}).get(key) == done[v].manifest[key]
                    for v in VARIANTS for key in ("fingerprint", "rows_fingerprint")))
    return doc if same else None


def evaluate_pair(recipe: Recipe, out: PathLike, *, sources: PathLike | None = None, release: PathLike | None = None,
                  root: PathLike | None = None, progress: bool = True) -> dict[str, Any]:
    """NLL per response token (given the instruction, given nothing) of base, tuned and control; greedy answers."""
    import torch  # deferred: torch is heavy, and only the evaluation needs it

    torch.set_num_threads(int(recipe.training["threads"]))
    split = load_split(recipe, sources, release)
    done = {v: finished(recipe, v, split, root) for v in VARIANTS}
    missing = [v for v, d in done.items() if d is None]
    if missing:
        raise UserError(f"{recipe.name}: fine-tune {', '.join(missing)} first (one 'hexainst finetune run' per arm, the "
                        "setting variant naming it), "
                        "with the same mirror and release: the held-out rows must be the ones the fine-tunes left out")
    previous = _previous_evaluation(out, recipe, done, split)
    if previous is not None:
        if progress:
            log.info("%s: already evaluated (same recipe, fine-tunes and rows); kept", out, extra=STDOUT)
        return previous
    paths = {"base": resolve_model(recipe.model), **{v: str(done[v].path) for v in VARIANTS}}
    greedy_rows = split.eval[: int(recipe.evaluation["greedy"])]
    nll: dict[str, dict[str, Any]] = {}
    raw: dict[tuple[str, str], Any] = {}
    answers: dict[str, list[str]] = {}
    seconds: dict[str, float] = {}
    for name in MODELS:
        started = time.perf_counter()
        loaded = load_model(paths[name], dtype="float32", progress=progress)
        nll[name] = {}
        for context in ("instruction", "none"):
            res = response_nll(loaded.model, loaded.tokenizer, recipe, split.eval, context, progress=progress)
            raw[name, context] = res
            nll[name][context] = res.as_dict()
        nll[name]["instruction_benefit"] = nll[name]["none"]["nll_per_token"] - nll[name]["instruction"]["nll_per_token"]
        answers[name] = greedy_answers(loaded.model, loaded.tokenizer, recipe, greedy_rows)
        seconds[name] = round(time.perf_counter() - started, 1)
        del loaded
    seed = int(recipe.training["seed"])
    differences = {
        f"{b} - {a} ({ctx})": paired_difference(raw[a, ctx], raw[b, ctx], seed=seed)
        for ctx in ("instruction", "none") for a, b in (("base", "tuned"), ("base", "control"), ("control", "tuned"))
    }
    doc = {
        "recipe": recipe.doc,
        "models": paths,
        "rows": split.summary(),
        "rows_fingerprint": split.fingerprint,
        "nll": nll,
        "differences": differences,
        "greedy": [
            {"instruction": r["instruction"], "input": r["input"], "reference": r["output"],
             **{name: answers[name][i] for name in MODELS}}
            for i, r in enumerate(greedy_rows)
        ],
        "training": {v: training_summary(done[v].manifest) for v in VARIANTS},
        "evaluation_seconds": seconds,
    }
    write_text(out, dumps_stable(doc))
    return doc


# --- the report -----------------------------------------------------------------------------------

PAIRS = ("tuned", "control")
#: The marker kind of an alteration report folder (see hexainst.kernel.outputs).
OUTPUT_KIND = "alteration report"
PAIR_TITLES = {"tuned": "base vs tuned", "control": "base vs control"}


def _short(category: str) -> str:
    return SHORT_NAMES.get(category, category)


def _f(v: Any, spec: str = ".4f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return format(v, spec)


def _p(p: Any) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def _read_analysis(folder: PathLike, *, pair: bool) -> dict[str, Any]:
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise UserError(f"{folder}: no results.json (run 'hexainst analyze' first"
                        + (", with the setting compare naming the fine-tuned store)" if pair else ")"))
    doc = read_json(path, what="analysis results")
    if pair and "alteration" not in doc:
        raise UserError(f"{path}: not a base vs fine-tuned analysis (no 'alteration'; run 'hexainst analyze' with the "
                        "setting compare naming the fine-tuned store)")
    if not pair and "model" not in doc:
        raise UserError(f"{path}: not a single-model analysis (no 'model' section)")
    return doc


def _load_sets(folder: PathLike, label: str, params: dict[str, Any]):
    sub = Path(folder) / "isn_sets" / label
    found = []
    for file in sorted(sub.glob("isn_sets.*.npz")):
        sets = IsnSets.load(file)
        if math.isclose(sets.eps, params["eps"]) and sets.tie_rule == params["tie_rule"] and sets.scope == params["scope"]:
            found.append(sets)
    if not found:
        raise UserError(f"{sub}: no ISN sets of eps {params['eps']}, tie rule {params['tie_rule']} (the analysis "
                        "must keep its sets: the setting save_sets on)")
    return found[0]


def _aligned(sets, ids: list[str]):
    pos = {i: k for k, i in enumerate(sets.ids)}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise UserError(f"ISN sets lack instructions {missing[:3]}")
    return sets.subset([pos[i] for i in ids])


def _ids_sha(doc: dict[str, Any], label: str) -> str | None:
    """sha256 of the instruction ids of the store an analysis read (its header summary)."""
    return doc["stores"][label]["header"].get("instructions", {}).get("ids_sha256")


def _store_rows(doc: dict[str, Any], label: str) -> tuple[dict[str, str], dict[str, int]]:
    """id -> category and id -> T of the store an analysis read."""
    store = open_store(doc["stores"][label]["path"])
    rows = store.header["instructions"]
    lengths = store.n_tokens
    return ({str(r["id"]): str(r["category"]) for r in rows},
            {str(r["id"]): int(t) for r, t in zip(rows, lengths)})


def pair_contrast(tuned_dir: PathLike, control_dir: PathLike, tuned_doc: dict[str, Any], control_doc: dict[str, Any],
                  *, n_permutations: int, seed: int) -> dict[str, Any]:
    """Per-instruction J(base, tuned) and J(base, control) from the analyses' saved ISN sets, and their tests."""
    params = tuned_doc["parameters"]
    for key in ("eps", "tie_rule", "scope", "sample"):
        if params.get(key) != control_doc["parameters"].get(key):
            raise UserError(f"the two analyses differ in {key!r} ({params.get(key)} vs {control_doc['parameters'].get(key)})")
    base_t = _load_sets(tuned_dir, "base", params)
    base_c = _load_sets(control_dir, "base", control_doc["parameters"])
    ids = list(base_t.ids)
    if sorted(ids) != sorted(base_c.ids):
        raise UserError("the two analyses cover different instructions")
    base_c = _aligned(base_c, ids)
    if not (np.array_equal(base_t.indptr, base_c.indptr) and np.array_equal(base_t.indices, base_c.indices)):
        raise UserError("the two analyses' base models have different ISN sets: they must analyse the same base store")
    tuned = _aligned(_load_sets(tuned_dir, "fine-tuned", params), ids)
    control = _aligned(_load_sets(control_dir, "fine-tuned", params), ids)
    cats_of, t_of = _store_rows(tuned_doc, "base")
    labels = [cats_of[i] for i in ids]
    lengths = np.array([t_of[i] for i in ids], dtype=np.float64)
    cats = [c for c in tuned_doc["base"]["jaccard"]["categories"]]
    j_tuned = paired_jaccard(base_t, tuned)
    j_control = paired_jaccard(base_t, control)
    test = paired_sign_flip(j_tuned, j_control, labels, cats, n_permutations=n_permutations, seed=seed)
    het = category_heterogeneity(j_control - j_tuned, labels, cats, n_permutations=n_permutations, seed=seed)
    het_tuned = category_heterogeneity(1 - j_tuned, labels, cats, n_permutations=n_permutations, seed=seed)
    sizes = {name: {c: float(np.mean(s.sizes()[np.asarray(labels) == c])) for c in cats}
             for name, s in (("base", base_t), ("tuned", tuned), ("control", control))}
    def rho(x: np.ndarray) -> float:
        if np.ptp(x) == 0 or np.ptp(lengths) == 0:
            return math.nan  # a constant has no rank correlation
        return float(spearmanr(x, lengths)[0])

    d = j_control - j_tuned
    by_length = {"difference_vs_T": rho(d), "tuned_alteration_vs_T": rho(1 - j_tuned),
                 "control_alteration_vs_T": rho(1 - j_control)}
    return {"paired": test.as_dict(), "heterogeneity_of_difference": het.as_dict(), "spearman_with_length": by_length,
            "heterogeneity_of_tuned_alteration": het_tuned.as_dict(), "mean_set_size": sizes,
            "n_instructions": len(ids)}


def _layer_shape(per_layer: dict[str, list[float]]) -> dict[str, Any]:
    """Mean ISNs per instruction in the first, middle and last third of the layers (mean over categories)."""
    values = np.mean(np.asarray(list(per_layer.values()), dtype=np.float64), axis=0)
    thirds = np.array_split(values, 3)
    early, middle, late = (float(t.mean()) for t in thirds)
    if middle < early and middle < late:
        shape = "U (low in the middle)"
    elif middle > early and middle > late:
        shape = "inverted U (high in the middle)"
    elif early >= middle >= late:
        shape = "falling"
    else:
        shape = "rising"
    return {"early": early, "middle": middle, "late": late, "u_shape": bool(middle < early and middle < late),
            "shape": shape, "peak_layer": int(np.argmax(values)), "per_layer": values.tolist()}


def _category_contrast(jac: dict[str, Any]) -> dict[str, float]:
    """Per category: diagonal cell minus the mean of its row's off-diagonal cells (Fig. 3)."""
    m = np.asarray(jac["matrix"], dtype=np.float64)
    out = {}
    for i, c in enumerate(jac["categories"]):
        off = np.delete(m[i], i)
        out[c] = float(m[i, i] - np.nanmean(off))
    return out


PAPER_STRONGEST = ("classification", "summarization", "code", "math")
#: The held-out causal check "holds" for a model when its assignment test gives p below this and its interval is above 0.
CAUSAL_ALPHA = 0.05


def model_findings(doc: dict[str, Any], label: str) -> dict[str, Any]:
    """The SPEC §2.6 findings of one model of an analysis, as numbers and booleans."""
    res = doc[label]
    jac = res["jaccard"]
    perm = jac["permutation"]
    contrast = _category_contrast(jac)
    ranked = sorted(contrast, key=lambda c: -contrast[c])
    adj = jac.get("length_adjusted") or {}
    matched = jac.get("length_matched")
    out = {
        "model": res["model"],
        "diagonal": perm["diagonal"], "off_diagonal": perm["off_diagonal"], "difference": perm["difference"],
        "p_value": perm["p_value"],
        "category_contrast": contrast, "ranking": ranked,
        "paper_strongest_on_top": sorted(ranked[: len(PAPER_STRONGEST)]) == sorted(PAPER_STRONGEST),
        "length_adjusted": adj,
        "length_matched": matched,
        "layers": _layer_shape(res["isn_per_layer"]),
        "mean_set_size": res["isn_sizes"]["overall"]["mean"],
        "target_k": res["isn_sizes"]["target_k"],
    }
    if "causal" in doc and label in ("model", "base"):
        keys = ("specificity", "ci_low", "ci_high", "p_value", "n_assignments")
        out["causal"] = {k: doc["causal"][k] for k in keys if k in doc["causal"]}
    return out


def _copy_analysis(src: PathLike, dst: Path) -> None:
    """report.md, results.json, figures/ and tables/ of an analysis folder (not its ISN sets)."""
    src = Path(src)
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "results.json"):
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    for sub in ("figures", "tables"):
        if (src / sub).is_dir():
            shutil.copytree(src / sub, dst / sub)


# --- figures --------------------------------------------------------------------------------------


def _loss_figure(training: dict[str, Any], stem: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for variant in VARIANTS:
        hist = training[variant]["loss_history"]
        steps = np.array([e["step"] for e in hist])
        loss = np.array([e["loss"] for e in hist])
        ax.plot(steps, loss, alpha=0.3, linewidth=1)
        window = min(8, len(loss))
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, linewidth=2, label=f"{variant} (mean of {window} steps)",
                color=ax.lines[-1].get_color())
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats per response token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Fine-tuning loss: tuned (instruction -> response) and control (responses alone)", fontsize=10)
    save_figure(fig, stem)


def _alteration_figure(tables1: dict[str, dict[str, Any]], contrast: dict[str, Any], stem: Path) -> None:
    plt = pyplot()
    cats = contrast["paired"]["categories"]
    x = np.arange(len(cats))
    fig, ax = plt.subplots(figsize=(8, 4))
    for k, variant in enumerate(PAIRS):
        t1 = tables1[variant]
        mean = np.array([t1[c]["mean"] for c in cats])
        low = np.array([t1[c]["ci_low"] for c in cats])
        high = np.array([t1[c]["ci_high"] for c in cats])
        ax.bar(x + (k - 0.5) * 0.38, mean, width=0.36, yerr=[mean - low, high - mean], capsize=3,
               label=PAIR_TITLES[variant])
    for i, p in enumerate(contrast["paired"]["p_holm"]):
        if p < 0.05:
            top = max(tables1[v][cats[i]]["ci_high"] for v in PAIRS)
            ax.text(x[i], top + 0.01, "*", ha="center", fontsize=14)
    ax.set_xticks(x, [_short(c) for c in cats])
    ax.set_ylabel("mean Jaccard of ISN sets, base vs fine-tuned")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Table 1 per category (95% bootstrap CIs; * = paired test tuned vs control, Holm p < 0.05)",
                 fontsize=9)
    save_figure(fig, stem)


def _length_matched_figure(findings: dict[str, dict[str, Any]], stem: Path) -> bool:
    rows = [(name, f["length_matched"]) for name, f in findings.items() if f.get("length_matched")]
    if not rows:
        return False
    plt = pyplot()
    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.8), squeeze=False, sharey=True)
    for ax, (name, lm) in zip(axes[0], rows):
        cats = lm["categories"]
        x = np.arange(len(cats))
        ax.bar(x - 0.2, lm["unmatched"], width=0.38, label="unmatched")
        ax.bar(x + 0.2, [np.nan if v is None else v for v in lm["matched"]], width=0.38,
               label=f"length-matched ({lm['n_strata']} strata)")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x, [_short(c) for c in cats], fontsize=8)
        ax.set_title(f"{name}: {_f(lm['unmatched_difference'], '+.3f')} -> {_f(lm['difference'], '+.3f')} "
                     f"(p {_p(lm['p_value'])})", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("same-category minus cross-category Jaccard")
    axes[0][-1].legend(fontsize=7)
    save_figure(fig, stem)
    return True


# --- markdown -------------------------------------------------------------------------------------


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    return to_markdown(header, rows, digits=4)


def _cell_text(text: str, limit: int = 400) -> str:
    text = text.strip()
    if len(text) > limit:
        text = text[:limit] + " ..."
    return text.replace("|", "\\|").replace("\n", "<br>") or "(empty)"


def _write_tables(folder: Path, name: str, header: list[str], rows: list[list[Any]]) -> str:
    return write_table(folder / "tables" / name, header, rows, digits=4)


# --- the report writer ----------------------------------------------------------------------------


def _findings_rows(findings: dict[str, dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for name, f in findings.items():
        adj = f.get("length_adjusted") or {}
        lm = f.get("length_matched") or {}
        lay = f["layers"]
        rows.append([
            name, f["model"], f["diagonal"], f["off_diagonal"], f["difference"], _p(f["p_value"]),
            adj.get("same_category_coef", math.nan), _p(adj.get("p_value")),
            lm.get("difference", math.nan), _p(lm.get("p_value")),
            f"{lay['early']:.0f} / {lay['middle']:.0f} / {lay['late']:.0f} ({lay['shape']})",
            " > ".join(_short(c) for c in f["ranking"]),
        ])
    return rows


FINDINGS_HEADER = ["model", "name", "same-category J", "cross-category J", "difference", "p (labels shuffled)",
                   "length-adjusted coef.", "p", "length-matched difference", "p",
                   "ISNs per layer: early / middle / late third", "categories by own-minus-cross J"]


def _claims(findings: dict[str, dict[str, Any]], overall: dict[str, float]) -> list[list[str]]:
    """SPEC §2.6 claim by claim: what each model shows."""

    def yes(b: bool) -> str:
        return "yes" if b else "**no**"

    rows = []
    for name, f in findings.items():
        lm = f.get("length_matched") or {}
        holds = f["p_value"] is not None and f["p_value"] < 0.05 and f["difference"] > 0
        after = (f" ; length-matched {_f(lm.get('difference'), '+.4f')} (p {_p(lm.get('p_value'))})" if lm else "")
        rows.append([f"same-category ISN overlap above cross-category ({name})",
                     f"{_f(f['difference'], '+.4f')} (p {_p(f['p_value'])}){after}", yes(holds)])
        rows.append([f"strongest for CLS, SUM, CODE, MATH ({name})",
                     "top four: " + ", ".join(_short(c) for c in f["ranking"][:4]), yes(f["paper_strongest_on_top"])])
        lay = f["layers"]
        rows.append([f"dense: many ISNs early, few in the middle, many late ({name})",
                     f"thirds {lay['early']:.0f} / {lay['middle']:.0f} / {lay['late']:.0f}: {lay['shape']}, "
                     f"peak at layer {lay['peak_layer']}", yes(lay["u_shape"])])
    for variant, j in overall.items():
        rows.append([f"fine-tuning changes ISNs substantially (low J, {PAIR_TITLES[variant]})",
                     f"mean J = {j:.4f} (counted as low below 0.5)", yes(j < 0.5)])
    rows.append(["routing (ISEs) stays highly correlated", "dense models: no experts, not testable here", "n/a"])
    return rows


def _base_findings(docs: dict[str, dict[str, Any]], first: PathLike | None, first_doc: dict[str, Any] | None,
                   second: PathLike | None, second_doc: dict[str, Any] | None,
                   second_name: str) -> tuple[dict[str, dict[str, Any]], dict[str, str], str | None]:
    """The findings of each model, the analyses skipped (and why), and the instruction ids' sha256 of the pairs.

    Refuses analyses of other instructions than the pairs', except ``first`` (the base model's own
    single-model analysis), which is skipped with a note."""
    findings = {"base": model_findings(docs["tuned"], "base"),
                "tuned": model_findings(docs["tuned"], "fine-tuned"),
                "control": model_findings(docs["control"], "fine-tuned")}
    release_of = {name: _ids_sha(doc, label) for name, doc, label in
                  (("pairs", docs["tuned"], "base"), ("control", docs["control"], "base"),
                   ("first", first_doc, "model"), ("second", second_doc, "model")) if doc is not None}
    if release_of["control"] != release_of["pairs"]:
        raise UserError("the two base vs fine-tuned analyses (setting compare) read different instructions "
                        "(instruction ids differ)")
    skipped: dict[str, str] = {}
    if first_doc is not None and release_of["first"] != release_of["pairs"]:
        skipped["first"] = (f"{first} analysed other instructions (ids sha256 {str(release_of['first'])[:12]} vs "
                            f"{str(release_of['pairs'])[:12]}: another release); not used")
        first_doc = None
    if second_doc is not None and release_of["second"] != release_of["pairs"]:
        raise UserError(f"{second} analysed other instructions than the pairs (another release): record it again")
    if first_doc is not None:
        # The base model's own single-model analysis (e.g. docs/demo): its causal check, and a consistency check.
        one = model_findings(first_doc, "model")
        if "causal" in one:
            findings["base"]["causal"] = one["causal"]
        findings["base"]["single_model_analysis"] = {
            "path": str(first), "model": one["model"], "diagonal": one["diagonal"], "off_diagonal": one["off_diagonal"],
            "max_abs_difference": max(abs(one["diagonal"] - findings["base"]["diagonal"]),
                                      abs(one["off_diagonal"] - findings["base"]["off_diagonal"])),
        }
    if second_doc is not None:
        findings[second_name] = model_findings(second_doc, "model")
    return findings, skipped, release_of["pairs"]


def _draw_figures(figs: Path, training: dict[str, Any], tables1: dict[str, Any], contrast: dict[str, Any],
                  docs: dict[str, dict[str, Any]], findings: dict[str, dict[str, Any]]) -> bool:
    """The report's own figures; True when the length-matched one was drawn (some model has the comparison)."""
    cats = contrast["paired"]["categories"]
    _loss_figure(training, figs / "training_loss")
    _alteration_figure(tables1, contrast, figs / "table1_tuned_vs_control")
    per_layer = {}
    for name, doc, label in (("base", docs["tuned"], "base"), ("tuned", docs["tuned"], "fine-tuned"),
                             ("control", docs["control"], "fine-tuned")):
        per_layer[name] = np.array([doc[label]["isn_per_layer"][c] for c in cats], dtype=np.float64)
    layer_profiles(per_layer, cats, title="Fig. 5: mean ISNs per layer per category: base, tuned, control",
                   stem=figs / "fig5_base_tuned_control")
    return _length_matched_figure(findings, figs / "length_matched")


def _write_report_tables(folder: Path, ev: dict[str, Any], contrast: dict[str, Any], tables1: dict[str, Any],
                         overall: dict[str, float], findings: dict[str, dict[str, Any]]) -> dict[str, str]:
    """tables/*.csv and .md; returns each table's Markdown under the name the report template uses."""
    training, nll, diffs = ev["training"], ev["nll"], ev["differences"]
    pc = contrast["paired"]
    cats = pc["categories"]
    out = {}
    out["training"] = _write_tables(
        folder, "training", ["variant", "steps", "seconds", "input tokens seen", "examples available",
                             "loss, first 8 steps", "loss, last 8 steps"],
        [[v, training[v]["steps"], f"{training[v]['seconds']:.0f}", training[v]["input_tokens_seen"],
          training[v]["examples"], training[v]["loss_first8_mean"], training[v]["loss_last8_mean"]] for v in VARIANTS])
    out["nll"] = _write_tables(
        folder, "nll", ["model", "NLL/token given the instruction", "NLL/token without it",
                        "instruction benefit (without - with)"],
        [[m, nll[m]["instruction"]["nll_per_token"], nll[m]["none"]["nll_per_token"], nll[m]["instruction_benefit"]]
         for m in MODELS])
    out["nll_differences"] = _write_tables(
        folder, "nll_differences", ["difference (same rows)", "per token", "95% CI", "rows lower"],
        [[k, d["difference"], f"[{d['ci_low']:.4f}, {d['ci_high']:.4f}]", f"{d['rows_lower']}/{d['rows']}"]
         for k, d in diffs.items()])
    t1_rows = []
    for i, c in enumerate(cats):
        a, b = tables1["tuned"][c], tables1["control"][c]
        t1_rows.append([c, f"{a['mean']:.4f} [{a['ci_low']:.4f}, {a['ci_high']:.4f}]",
                        f"{b['mean']:.4f} [{b['ci_low']:.4f}, {b['ci_high']:.4f}]",
                        pc["difference"][i], _p(pc["p_values"][i]), _p(pc["p_holm"][i])])
    t1_rows.append(["all (mean of categories)", f"{overall['tuned']:.4f}", f"{overall['control']:.4f}",
                    pc["overall_difference"], _p(pc["overall_p"]), ""])
    out["table1"] = _write_tables(folder, "table1_side_by_side",
                                  ["category", "J(base, tuned) [95% CI]", "J(base, control) [95% CI]",
                                   "control - tuned (paired)", "p (sign flips)", "p (Holm)"], t1_rows)
    sizes = contrast["mean_set_size"]
    out["sizes"] = _write_tables(folder, "isn_set_sizes", ["category", "base", "tuned", "control"],
                                 [[c, sizes["base"][c], sizes["tuned"][c], sizes["control"][c]] for c in cats])
    out["findings"] = _write_tables(folder, "findings", FINDINGS_HEADER, _findings_rows(findings))
    lm_rows = []
    for name, f in findings.items():
        lm = f.get("length_matched")
        if not lm:
            continue
        for i, c in enumerate(lm["categories"]):
            lm_rows.append([name, c, lm["unmatched"][i], lm["matched"][i], _p(lm["p_values"][i]),
                            lm["matched_same"][i], lm["matched_cross"][i], lm["coverage"][i]])
    out["length_matched"] = _write_tables(
        folder, "length_matched_per_category", ["model", "category", "unmatched own - cross", "matched own - cross", "p",
                                                "matched own J", "matched cross J", "coverage of own pairs"],
        lm_rows) if lm_rows else ""
    out["claims"] = _write_tables(folder, "paper_claims", ["claim (SPEC §2.6)", "measured", "holds"],
                                  _claims(findings, overall))
    return out


def write_alteration_report(
    out: PathLike,
    *,
    evaluation: PathLike,
    tuned: PathLike,
    control: PathLike,
    second: PathLike | None = None,
    second_name: str = "second model",
    first: PathLike | None = None,
    n_permutations: int = 2000,
    seed: int | None = None,
    note: str = "",
) -> dict[str, Any]:
    """Write the alteration demo (report.md, results.json, figures/, tables/, the two analyses) into ``out``."""
    seed = DEFAULT_SEED if seed is None else seed
    out = claim_output_dir(out, OUTPUT_KIND, inputs=[evaluation, tuned, control, second, first])
    ev = _read_evaluation(evaluation)
    docs = {"tuned": _read_analysis(tuned, pair=True), "control": _read_analysis(control, pair=True)}
    second_doc = _read_analysis(second, pair=False) if second else None
    first_doc = _read_analysis(first, pair=False) if first else None
    contrast = pair_contrast(tuned, control, docs["tuned"], docs["control"], n_permutations=n_permutations, seed=seed)
    findings, skipped, ids_sha = _base_findings(docs, first, first_doc, second, second_doc, second_name)
    tables1 = {v: docs[v]["alteration"]["table1_jaccard"] for v in PAIRS}
    overall = {v: float(docs[v]["alteration"]["table1_overall"]) for v in PAIRS}
    data = {
        "note": note,
        "recipe": ev["recipe"],
        "evaluation": {k: ev[k] for k in ("models", "rows", "nll", "differences", "greedy", "evaluation_seconds")},
        "training": ev["training"],
        "table1": {"tuned": tables1["tuned"], "control": tables1["control"], "overall": overall},
        "contrast": contrast,
        "findings": findings,
        "analyses": {"tuned": str(tuned), "control": str(control), "second": str(second) if second else None,
                     "first": str(first) if first else None, "skipped": skipped, "instruction_ids_sha256": ids_sha},
        "parameters": {"n_permutations": n_permutations, "seed": seed, "analysis": docs["tuned"]["parameters"]},
    }
    with staged_dir(out) as folder:
        has_lm = _draw_figures(folder / "figures", ev["training"], tables1, contrast, docs, findings)
        _copy_analysis(tuned, folder / "base-vs-tuned")
        _copy_analysis(control, folder / "base-vs-control")
        tables = _write_report_tables(folder, ev, contrast, tables1, overall, findings)
        write_text(folder / "results.json", dumps_stable(_json_safe(data)))
        md = render_markdown(data, tables, n_instructions=docs["tuned"]["instructions"]["n"],
                             is_moe=docs["tuned"]["base"]["is_moe"], has_lm=has_lm,
                             second_name=second_name if second_doc else None,
                             second_link=os.path.relpath(Path(second).resolve(), out.resolve()) if second else "")
        write_text(folder / "report.md", md)
        write_marker(folder, OUTPUT_KIND, {"analyses": [str(tuned), str(control)] + ([str(second)] if second else [])})
    return data


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


_ENV = environment(TEMPLATES, filters={"na": _f, "p": _p, "cell": _cell_text})


def render_markdown(data: dict[str, Any], tables: dict[str, str], *, n_instructions: int, is_moe: bool, has_lm: bool,
                    second_name: str | None, second_link: str = "") -> str:
    """report.md from results.json's content ``data``, the tables' Markdown (names as
    :func:`_write_report_tables` gives them) and facts of the analyses (instructions, MoE or dense),
    laid out by ``templates/alteration_single.md.j2``."""
    pc = data["contrast"]["paired"]
    cats = pc["categories"]

    def altered_more(sign: int) -> str:
        """Categories where the paired test (Holm p < 0.05) finds one fine-tune altering the sets more."""
        picked = [c for c, p, d in zip(cats, pc["p_holm"], pc["difference"]) if p < 0.05 and d * sign > 0]
        return ", ".join(f"{_short(c)} ({pc['difference'][cats.index(c)]:+.4f})" for c in picked) or "none"

    replication = ""
    if second_name:
        replication = "\n".join(_replication(data["findings"]["base"], data["findings"][second_name], second_name))
    return _ENV.get_template("alteration_single.md.j2").render(
        data=data, tables=tables, n_instructions=n_instructions, is_moe=is_moe, has_lm=has_lm,
        second_name=second_name, second_link=second_link, replication=replication,
        altered_more={"tuned": altered_more(+1), "control": altered_more(-1)}, answer_models=("reference", *MODELS),
    )


def _replication(g: dict[str, Any], s: dict[str, Any], name: str) -> list[str]:
    def same_sign(a: Any, b: Any) -> bool:
        return a is not None and b is not None and (a > 0) == (b > 0)

    cats = list(g["category_contrast"])
    rho = float(spearmanr([g["category_contrast"][c] for c in cats], [s["category_contrast"][c] for c in cats])[0])
    gl, sl = g.get("length_matched") or {}, s.get("length_matched") or {}
    ga, sa = g.get("length_adjusted") or {}, s.get("length_adjusted") or {}
    rows = [
        ["same-category J above cross-category", f"{g['difference']:+.4f} (p {_p(g['p_value'])})",
         f"{s['difference']:+.4f} (p {_p(s['p_value'])})",
         "yes" if g["p_value"] < 0.05 and s["p_value"] < 0.05 and same_sign(g["difference"], s["difference"]) else "no"],
        ["... after the length regression", f"{_f(ga.get('same_category_coef'), '+.4f')} (p {_p(ga.get('p_value'))})",
         f"{_f(sa.get('same_category_coef'), '+.4f')} (p {_p(sa.get('p_value'))})",
         "yes" if (ga.get("p_value") or 1) < 0.05 and (sa.get("p_value") or 1) < 0.05 else "no"],
        ["... on length-matched pairs", f"{_f(gl.get('difference'), '+.4f')} (p {_p(gl.get('p_value'))})",
         f"{_f(sl.get('difference'), '+.4f')} (p {_p(sl.get('p_value'))})",
         "yes" if (gl.get("p_value") or 1) < 0.05 and (sl.get("p_value") or 1) < 0.05 else "no"],
        ["order of categories by own-minus-cross J", " > ".join(_short(c) for c in g["ranking"]),
         " > ".join(_short(c) for c in s["ranking"]), f"Spearman rho {rho:+.2f}"],
        ["ISNs per layer, thirds early / middle / late (shape; peak layer)",
         "{early:.0f} / {middle:.0f} / {late:.0f} ({shape}; {peak_layer})".format(**g["layers"]),
         "{early:.0f} / {middle:.0f} / {late:.0f} ({shape}; {peak_layer})".format(**s["layers"]),
         "yes" if g["layers"]["shape"] == s["layers"]["shape"] else "no"],
        ["mean |S(I)| / target k", f"{g['mean_set_size']:.0f} / {g['target_k']}", f"{s['mean_set_size']:.0f} / {s['target_k']}", ""],
    ]
    gc, sc = g.get("causal") or {}, s.get("causal") or {}
    if "specificity" in gc and "specificity" in sc:  # the held-out check in both analyses (an older one had no test)
        def holds(c: dict[str, float]) -> bool:
            return c["p_value"] < CAUSAL_ALPHA and c["ci_low"] > 0

        def text(c: dict[str, float]) -> str:
            return (f"{c['specificity']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}], "
                    f"{heldout_p_text(c['p_value'], int(c['n_assignments']))}")

        rows.append(["held-out causal check: specificity (own set's ΔNLL minus the other sets', nats/token), test",
                     text(gc), text(sc),
                     ("yes" if holds(gc) == holds(sc) else "no")
                     + f" (holds when p < {CAUSAL_ALPHA:g} and the interval is above 0)"])
    return [_md_table(["finding", f"base ({g['model']})", name, "replicates"], rows), ""]
