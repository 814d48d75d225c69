"""The alteration design (issue #22): several seeds per arm, an instruction-following measure, and
the overlap of the ISN changes of the arms.

Arms (:data:`~.recipe.VARIANTS`): ``tuned`` (instruction -> response), ``control`` (responses
alone), ``shuffled`` (the tuned format with responses re-paired). A run is (arm, seed).

- :func:`evaluate_runs`: for the base model and every finished run, per held-out row, the NLL of
  the response given its own instruction, given another row's instruction (a fixed seeded
  derangement) and given nothing. ``mismatched - own`` is the **instruction-following gain**:
  both contexts have the same format, so format alone cannot produce it. Written after each model
  (an interrupted evaluation resumes; models already scored under the same fingerprint are kept).
- :func:`seed_test`: arm vs arm over runs (seeds as the units): an exact permutation test, refused
  (None, with the reason) when an arm has fewer than :data:`MIN_SEEDS` runs, and a Welch t interval
  of the difference; :func:`mean_interval`: one arm's mean over its runs with a t interval
  (n - 1 df), or its difference from one fixed model (the base); :func:`exact_p_text` writes an
  exact p, at its floor ``p = 1/(number of relabelings)``, the smallest possible.

  Why t intervals: the runs are the units, and with 3 runs there is nothing to resample (a
  bootstrap over 3 values has 10 distinct resamples and understates the spread). The t interval
  assumes run-to-run variation roughly normal and pays for n = 3 with t(0.975, 2 df) = 4.30, so it is
  wide by construction; the min and max of the runs are given beside it as a description (the range
  of 3 runs covers their median only 75% of the time: it is not an interval for the mean).
- :func:`isn_changes`: from stores of the base and of each run recorded on the same rows, the
  neurons that enter and leave each instruction's ISN set, and how much those changes overlap
  between runs (same arm, other seed; other arms), against the overlap of random changes.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from hexainst.analysis.causal import nll_of_last
from hexainst.analysis.data import open_store
from hexainst.analysis.isn import compute_isn_sets
from hexainst.analysis.recording.loading import load_model, resolve_model
from hexainst.kernel.atomic import write_text
from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import dumps_stable, read_json
from hexainst.kernel.log import STDOUT

from .data import load_split, prompt_text, response_text
from .recipe import VARIANTS, Recipe
from .train import finished, training_summary

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
#: Runs per arm below which no p-value over runs is printed: with 3 vs 3 the smallest exact
#: one-sided p is 1/20; with 2 vs 2 it is 1/6, which no result could pass.
MIN_SEEDS = 3
FORMAT = "hexainst-alteration-design"
#: Two-sided level of every interval over runs.
LEVEL = 0.95


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-s{seed}"


def finished_runs(recipe: Recipe, split: Any, seeds: Sequence[int], root: PathLike | None = None) -> dict[str, Any]:
    """name -> finished run (:class:`~.train.FineTuned`) of every arm and seed that has one."""
    out = {}
    for variant in VARIANTS:
        for seed in seeds:
            done = finished(recipe.with_seed(int(seed)), variant, split, root)
            if done is not None:
                out[run_name(variant, int(seed))] = done
    return out


def derangement(n: int, seed: int) -> list[int]:
    """partner[j] != j for every j (a cyclic shift along a seeded permutation); pure."""
    if n < 2:
        raise ValueError(f"a derangement needs n >= 2, got {n}")
    perm = list(range(n))
    random.Random(f"mismatched:{seed}").shuffle(perm)
    partner = [0] * n
    for j in range(n):
        partner[perm[j]] = perm[(j + 1) % n]
    return partner


def _encoded(recipe: Recipe, tokenizer: Any, context_row: Mapping[str, str] | None, row: Mapping[str, str]
             ) -> tuple[list[int], int]:
    """Token ids (context + response) and the response's token count; context None = BOS alone."""
    if context_row is None:
        prompt = list(tokenizer("", add_special_tokens=True)["input_ids"])
    else:
        prompt = list(tokenizer(prompt_text(recipe, dict(context_row)), add_special_tokens=True)["input_ids"])
    response = list(tokenizer(response_text(recipe, dict(row)), add_special_tokens=False)["input_ids"])
    return prompt + response, len(response)


def following_rows(recipe: Recipe, tokenizer: Any, rows: Sequence[Mapping[str, str]], seed: int
                   ) -> tuple[list[int], list[int], dict[str, list[tuple[list[int], int]]]]:
    """The rows scored by :func:`following_nll` and their sequences under the three contexts.

    A row is kept when its response fits whole after its own and after its partner's prompt
    (``max_length``), so both contexts score exactly the same response tokens.
    Returns (kept row indices, their partners, {context: [(ids, n_response)]}).
    """
    partner = derangement(len(rows), seed)
    max_length = int(recipe.data["max_length"])
    kept, partners = [], []
    seqs: dict[str, list[tuple[list[int], int]]] = {"own": [], "mismatched": [], "none": []}
    for j, row in enumerate(rows):
        own = _encoded(recipe, tokenizer, row, row)
        mis = _encoded(recipe, tokenizer, rows[partner[j]], row)
        if max(len(own[0]), len(mis[0])) > max_length or own[1] < 1:
            continue
        kept.append(j)
        partners.append(partner[j])
        seqs["own"].append(own)
        seqs["mismatched"].append(mis)
        seqs["none"].append(_encoded(recipe, tokenizer, None, row))
    return kept, partners, seqs


def _score(model: Any, seqs: list[tuple[list[int], int]], pad: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per sequence: NLL sum (float64) and count of its last ``n`` tokens (the response).

    Left-padded batches with only the scored positions through the LM head
    (:func:`hexainst.analysis.causal.nll_of_last`), so a 262k-vocabulary head costs what the
    responses need, not what the prompts would.
    """
    counts = np.asarray([n for _, n in seqs], dtype=np.int64)
    means = nll_of_last(model, [ids for ids, _ in seqs], counts.tolist(), batch_size=batch_size, pad_id=pad)
    return means * counts, counts


def following_nll(model: Any, tokenizer: Any, recipe: Recipe, rows: Sequence[Mapping[str, str]], *, seed: int,
                  batch_size: int | None = None) -> dict[str, Any]:
    """Per kept row: response NLL sums given own / mismatched / no instruction, and the token counts."""
    model.eval()
    kept, partners, seqs = following_rows(recipe, tokenizer, rows, seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    bs = batch_size or int(recipe.evaluation["batch_size"])
    out: dict[str, Any] = {"rows": kept, "partners": partners}
    counts = None
    for context, s in seqs.items():
        sums, n = _score(model, s, pad, bs)
        if counts is not None and not np.array_equal(n, counts):
            raise AssertionError("contexts scored different response tokens")  # pragma: no cover
        counts = n
        out[context] = sums.tolist()
    out["n_tokens"] = counts.tolist() if counts is not None else []
    out.update(following_summary(out))
    return out


def following_summary(entry: Mapping[str, Any], *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Pooled per-token NLLs, the instruction-following gain (mismatched - own) and the format benefit
    (none - own), each with a row-bootstrap interval (within one model: says nothing about seeds)."""
    n = np.asarray(entry["n_tokens"], dtype=np.float64)
    own, mis, none = (np.asarray(entry[k], dtype=np.float64) for k in ("own", "mismatched", "none"))
    total = n.sum()
    if total == 0:
        return {"nll_own": math.nan, "nll_mismatched": math.nan, "nll_none": math.nan, "gain": math.nan,
                "gain_ci": [math.nan, math.nan], "format_benefit": math.nan, "n_rows": 0}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n.size, size=(n_boot, n.size))
    boot_n = n[idx].sum(axis=1)
    gain_boot = (mis[idx].sum(axis=1) - own[idx].sum(axis=1)) / boot_n
    return {
        "nll_own": float(own.sum() / total), "nll_mismatched": float(mis.sum() / total),
        "nll_none": float(none.sum() / total),
        "gain": float((mis.sum() - own.sum()) / total),
        "gain_ci": [float(x) for x in np.quantile(gain_boot, [0.025, 0.975])],
        "format_benefit": float((none.sum() - own.sum()) / total),
        "n_rows": int(n.size), "n_tokens_total": int(total),
    }


def _finite(x: float) -> float | None:
    return float(x) if x == x and math.isfinite(x) else None


def mean_interval(values: Sequence[float], *, minus: float | None = None, level: float = LEVEL) -> dict[str, Any]:
    """Mean of ``values`` over runs (minus ``minus``, a fixed model's value, e.g. the base model's gain)
    with a two-sided t interval over the runs (n - 1 df; None below 2 runs or when every run is equal),
    and the runs' min and max (minus ``minus`` too). ``minus`` is one model scored once: it adds no
    run-to-run variation, so the interval is the runs' own."""
    v = np.asarray([float(x) for x in values], dtype=np.float64) - (0.0 if minus is None else float(minus))
    out: dict[str, Any] = {"n": int(v.size), "mean": float(v.mean()) if v.size else None, "ci": None,
                           "ci_method": f"t interval, {v.size - 1} df" if v.size >= 2 else None,
                           "t_quantile": float(scipy_stats.t.ppf(0.5 + level / 2, v.size - 1)) if v.size >= 2 else None,
                           "min": float(v.min()) if v.size else None, "max": float(v.max()) if v.size else None}
    if v.size >= 2 and float(np.std(v)) > 0:
        ci = scipy_stats.ttest_1samp(v, 0.0).confidence_interval(confidence_level=level)
        out["ci"] = [float(ci.low), float(ci.high)]
    return out


def welch_interval(a: Sequence[float], b: Sequence[float], *, level: float = LEVEL) -> dict[str, Any]:
    """mean(a) - mean(b) with a Welch t interval (Welch-Satterthwaite df; None below 2 runs a side or with
    no spread in either), and the range of the differences of every pair of runs (a_i - b_j)."""
    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out: dict[str, Any] = {"ci": None, "ci_method": None, "df": None, "range": None}
    if a_arr.size and b_arr.size:
        pairs = a_arr[:, None] - b_arr[None, :]
        out["range"] = [float(pairs.min()), float(pairs.max())]
    if min(a_arr.size, b_arr.size) >= 2 and float(np.std(a_arr)) + float(np.std(b_arr)) > 0:
        test = scipy_stats.ttest_ind(a_arr, b_arr, equal_var=False)
        ci = test.confidence_interval(confidence_level=level)
        out.update(ci=[float(ci.low), float(ci.high)], df=_finite(float(test.df)),
                   ci_method=f"Welch t interval, {float(test.df):.1f} df")
    return out


def row_bootstrap_difference(models: Mapping[str, Mapping[str, Any]], a: Sequence[str], b: Sequence[str], *,
                             n_boot: int = 2000, seed: int = 0, level: float = LEVEL) -> dict[str, Any] | None:
    """Mean gain of the models ``a`` minus mean gain of the models ``b`` (entries of an :func:`evaluate_runs`
    file), with a percentile interval from resampling the held-out rows, the same resample for every model
    (paired: they scored the same rows). The other half of the uncertainty from the seed intervals: which
    rows were held out, for these runs. None when a side is empty or the models scored different rows."""
    if not a or not b:
        return None
    entries = [models[name] for name in (*a, *b)]
    if any(e["rows"] != entries[0]["rows"] for e in entries):
        return None
    n = len(entries[0]["rows"])
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))

    def gains(entry: Mapping[str, Any], pick: np.ndarray | None) -> np.ndarray:
        own, mis, tok = (np.asarray(entry[k], dtype=np.float64) for k in ("own", "mismatched", "n_tokens"))
        if pick is None:
            return np.asarray((mis.sum() - own.sum()) / tok.sum())
        return (mis[pick].sum(axis=1) - own[pick].sum(axis=1)) / tok[pick].sum(axis=1)

    def diff(pick: np.ndarray | None) -> np.ndarray:
        return (np.mean([gains(models[x], pick) for x in a], axis=0)
                - np.mean([gains(models[x], pick) for x in b], axis=0))

    lo, hi = np.quantile(diff(idx), [0.5 - level / 2, 0.5 + level / 2])
    return {"difference": float(diff(None)), "ci": [float(lo), float(hi)], "n_rows": n, "n_boot": n_boot,
            "ci_method": f"rows resampled ({n_boot} times), paired across models"}


def exact_p_text(p: float | None, n_relabelings: int | None) -> str:
    """``p = 0.1500``, or at the floor of an exact test over all relabelings (the observed labelling the
    most extreme: p = 1/n_relabelings, the observed one counted among them)
    ``p = 0.0500 (1/20: the smallest possible in an exact test over all 20 relabelings of the runs)`` (exact:
    not a bound, and not below 1/n however large the effect)."""
    if p is None or p != p:
        return "p n/a"
    if n_relabelings and abs(p - 1 / n_relabelings) < 1e-12:
        return (f"p = {1 / n_relabelings:.4f} (1/{n_relabelings}: the smallest possible in an exact test over all "
                f"{n_relabelings} relabelings of the runs)")
    return f"p = {p:.4f}"


def seed_test(a: Sequence[float], b: Sequence[float], *, min_seeds: int = MIN_SEEDS) -> dict[str, Any]:
    """Mean of ``a`` minus mean of ``b`` over runs (seeds are the units), with an exact one-sided
    permutation p (is ``a`` larger?) over the relabelings of the runs; no p (and the reason) when
    either side has fewer than ``min_seeds`` runs. With 3 and 3 runs the smallest p is 1/20.
    Also the :func:`welch_interval` of the difference (``ci``, ``ci_method``, ``df``, ``range``)."""
    a, b = [float(x) for x in a], [float(x) for x in b]
    out: dict[str, Any] = {"n_a": len(a), "n_b": len(b),
                           "difference": (float(np.mean(a)) - float(np.mean(b))) if a and b else math.nan,
                           "p_value": None, "alternative": "greater", **welch_interval(a, b)}
    if min(len(a), len(b)) < min_seeds:
        out["no_p_because"] = f"{len(a)} and {len(b)} runs: a p-value over runs needs >= {min_seeds} seeds per arm"
        return out
    pooled = np.asarray(a + b)
    stats = []
    for pick in itertools.combinations(range(pooled.size), len(a)):
        mask = np.zeros(pooled.size, dtype=bool)
        mask[list(pick)] = True
        stats.append(pooled[mask].mean() - pooled[~mask].mean())
    stats_arr = np.asarray(stats)
    out["p_value"] = float(np.mean(stats_arr >= out["difference"] - 1e-12))
    out["n_relabelings"] = int(stats_arr.size)
    out["p_text"] = exact_p_text(out["p_value"], out["n_relabelings"])
    return out


# --- evaluation of every run ----------------------------------------------------------------------


def _previous(out: Path, recipe: Recipe, split: Any) -> dict[str, Any]:
    if not out.is_file():
        return {}
    try:
        doc = read_json(out, what="alteration evaluation")
    except UserError:
        return {}
    if doc.get("format") != FORMAT or doc.get("rows_fingerprint") != split.fingerprint \
            or doc.get("recipe_fingerprint") != recipe.fingerprint("tuned"):
        return {}
    return dict(doc.get("models", {}))


def evaluate_runs(recipe: Recipe, out: PathLike, *, seeds: Sequence[int] = (0, 1, 2), sources: PathLike | None = None,
                  release: PathLike | None = None, root: PathLike | None = None, progress: bool = True,
                  threads: int | None = None, resume_from: PathLike | None = None) -> dict[str, Any]:
    """Score the base model and every finished run of ``seeds`` on the held-out rows; write ``out`` (JSON).

    Resumes: a model already in ``out`` under the same fingerprint is kept, and the file is
    rewritten (atomically) after each model. ``resume_from``: an earlier evaluation (e.g. the copy a
    report keeps, made on another machine) whose models are kept too, under the same recipe and rows,
    so runs whose weights are gone still count; ``out``'s own entries win over it. ``threads``: torch
    threads (default: the recipe's; 1 is faster on a CPU that other jobs oversubscribe, where threads
    wait on each other).
    """
    import torch  # deferred: torch loads in seconds

    torch.set_num_threads(int(threads or recipe.training["threads"]))
    split = load_split(recipe, sources, release)
    runs = finished_runs(recipe, split, seeds, root)
    out = Path(out)
    models = _previous(Path(resume_from), recipe, split) if resume_from is not None else {}
    models.update(_previous(out, recipe, split))
    targets = {"base": (resolve_model(recipe.model), None)}
    targets.update({name: (str(run.path), run) for name, run in runs.items()})
    doc: dict[str, Any] = {
        "format": FORMAT, "recipe": recipe.doc, "recipe_fingerprint": recipe.fingerprint("tuned"),
        "rows": split.summary(), "rows_fingerprint": split.fingerprint, "seeds": [int(s) for s in seeds],
        "mismatch_seed": recipe.split_seed, "models": models,
    }
    for name, (path, run) in targets.items():
        fp = run.manifest["fingerprint"] if run is not None else "base"
        if name in models and models[name].get("fingerprint") == fp:
            continue
        started = time.perf_counter()
        loaded = load_model(path, dtype="float32", progress=progress)
        entry = following_nll(loaded.model, loaded.tokenizer, recipe, split.eval, seed=recipe.split_seed)
        entry.update({"path": path, "fingerprint": fp, "seconds": round(time.perf_counter() - started, 1)})
        if run is not None:
            entry["variant"] = run.manifest["variant"]
            entry["seed"] = int(run.manifest["recipe"]["training"]["seed"])
            entry["training"] = training_summary(run.manifest)
        models[name] = entry
        del loaded
        write_text(out, dumps_stable(doc))
        if progress:
            log.info("%s: gain %+.4f nats/token (mismatched - own), format benefit %+.4f", name, entry["gain"],
                     entry["format_benefit"], extra=STDOUT)
    write_text(out, dumps_stable(doc))
    return doc


def arms(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per arm: the seeds that have a scored run and their gains / NLLs (from an :func:`evaluate_runs` file)."""
    out: dict[str, dict[str, Any]] = {v: {"seeds": [], "gain": [], "nll_own": [], "format_benefit": []}
                                      for v in VARIANTS}
    for name in sorted(doc["models"]):
        m = doc["models"][name]
        if name == "base" or m.get("variant") not in out:
            continue
        arm = out[m["variant"]]
        arm["seeds"].append(int(m["seed"]))
        for key in ("gain", "nll_own", "format_benefit"):
            arm[key].append(float(m[key]))
    return out


# --- ISN changes ------------------------------------------------------------------------------------


def _sets_of(store_path: PathLike, eps: float) -> Any:
    store = open_store(store_path)
    return store, compute_isn_sets(store.counts(), eps=eps, tie_rule="paper", scope="global",
                                   neuron_layer=store.neuron_layer, ids=store.ids)


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.intersect1d(a, b, assume_unique=True).size
    union = a.size + b.size - inter
    return inter / union if union else math.nan


def change_overlap(base: Any, runs: Mapping[str, Any]) -> dict[str, Any]:
    """Pure: per run, mean J(base, run) and sizes of what enters / leaves; per pair of runs, the mean
    Jaccard of their entering and of their leaving neurons, and the same for random changes of the
    same sizes (the expected Jaccard of two random subsets of the candidates: a chance level).

    base, runs: :class:`~hexainst.analysis.isn.IsnSets` on the same rows in the same order.
    """
    n = base.n
    per_run: dict[str, Any] = {}
    enter: dict[str, list[np.ndarray]] = {}
    leave: dict[str, list[np.ndarray]] = {}
    for name, sets in runs.items():
        if sets.n != n or tuple(sets.ids) != tuple(base.ids):
            raise UserError(f"run {name}: its store holds other instructions than the base store")
        e = [np.setdiff1d(sets.row(i), base.row(i), assume_unique=True) for i in range(n)]
        lv = [np.setdiff1d(base.row(i), sets.row(i), assume_unique=True) for i in range(n)]
        enter[name], leave[name] = e, lv
        per_run[name] = {"jaccard_with_base": float(np.mean([_jaccard(base.row(i), sets.row(i)) for i in range(n)])),
                         "entering": float(np.mean([x.size for x in e])),
                         "leaving": float(np.mean([x.size for x in lv]))}
    pairs = {}
    for a, b in itertools.combinations(sorted(runs), 2):
        je = [_jaccard(enter[a][i], enter[b][i]) for i in range(n)]
        jl = [_jaccard(leave[a][i], leave[b][i]) for i in range(n)]
        # chance: entering neurons drawn from the n_cols - |S_base| outside, leaving from |S_base| inside
        ce, cl = [], []
        for i in range(n):
            inside = base.row(i).size
            outside = base.n_cols - inside
            ce.append(_chance_jaccard(enter[a][i].size, enter[b][i].size, outside))
            cl.append(_chance_jaccard(leave[a][i].size, leave[b][i].size, inside))
        pairs[f"{a} ~ {b}"] = {"runs": [a, b], "kind": _pair_kind(a, b),
                               "entering_jaccard": float(np.nanmean(je)), "leaving_jaccard": float(np.nanmean(jl)),
                               "entering_chance": float(np.nanmean(ce)), "leaving_chance": float(np.nanmean(cl))}
    kinds: dict[str, dict[str, Any]] = {}
    for p in pairs.values():
        k = kinds.setdefault(p["kind"], {"pairs": 0, "entering_jaccard": [], "leaving_jaccard": [],
                                         "entering_chance": [], "leaving_chance": []})
        k["pairs"] += 1
        for key in ("entering_jaccard", "leaving_jaccard", "entering_chance", "leaving_chance"):
            k[key].append(p[key])
    for k in kinds.values():
        for key in ("entering_jaccard", "leaving_jaccard", "entering_chance", "leaving_chance"):
            k[key] = float(np.mean(k[key]))
    return {"n_instructions": n, "runs": per_run, "pairs": pairs, "by_kind": kinds}


def overlap_ratio(changes: Mapping[str, Any], other: str, *, arm: str = "tuned", key: str = "entering_jaccard"
                  ) -> dict[str, Any] | None:
    """How much of what two runs of ``arm`` change alike a run of ``other`` changes too, from a
    :func:`change_overlap` result: ``ratio`` = mean J(arm ~ other) / mean J(arm ~ arm, other seed) of the
    ``key`` neurons (entering by default), and per run of ``arm`` the same ratio from its own pairs alone
    (``per_run``; their ``range`` is the spread over seeds), beside the range of the pair Jaccards on each
    side. None without pairs on both sides."""
    pairs = changes.get("pairs") or {}

    def arm_of(name: str) -> str:
        return name.rsplit("-s", 1)[0]

    runs = sorted({r for p in pairs.values() for r in p["runs"] if arm_of(r) == arm})
    within: dict[str, list[float]] = {r: [] for r in runs}
    across: dict[str, list[float]] = {r: [] for r in runs}
    for p in pairs.values():
        a, b = p["runs"]
        kinds = (arm_of(a), arm_of(b))
        if kinds == (arm, arm):
            within[a].append(p[key])
            within[b].append(p[key])
        elif set(kinds) == {arm, other}:
            across[a if kinds[0] == arm else b].append(p[key])
    all_within = [x for r in runs for x in within[r]]
    all_across = [x for r in runs for x in across[r]]
    if not all_within or not all_across:
        return None
    per_run = {r: float(np.mean(across[r]) / np.mean(within[r])) for r in runs if across[r] and within[r]}
    # every arm ~ arm pair is listed under both of its runs: its mean is the mean over pairs
    return {"other": other, "key": key, "across": float(np.mean(all_across)), "within": float(np.mean(all_within)),
            "ratio": float(np.mean(all_across) / np.mean(all_within)), "per_run": per_run,
            "range": [min(per_run.values()), max(per_run.values())] if per_run else None,
            "across_range": [float(min(all_across)), float(max(all_across))],
            "within_range": [float(min(all_within)), float(max(all_within))],
            "pairs_across": len(all_across), "pairs_within": len(all_within) // 2}


def _chance_jaccard(ka: int, kb: int, pool: int) -> float:
    """Expected |A ∩ B| / |A ∪ B| approximated by E|A ∩ B| / (ka + kb - E|A ∩ B|), A, B random of a pool."""
    if pool <= 0 or ka + kb == 0:
        return math.nan
    inter = ka * kb / pool
    return inter / (ka + kb - inter)


def _pair_kind(a: str, b: str) -> str:
    va, vb = a.rsplit("-s", 1)[0], b.rsplit("-s", 1)[0]
    if va == vb:
        return f"{va} ~ {va} (other seed)"
    first, second = sorted((va, vb), key=VARIANTS.index)
    return f"{first} ~ {second}"


def isn_changes(stores: Mapping[str, Mapping[str, PathLike]], *, eps: float = 0.01) -> dict[str, Any]:
    """{format: {"base": store, run name: store}} -> {format: :func:`change_overlap`} (ISN sets at ``eps``)."""
    out = {}
    for fmt, by_model in stores.items():
        if "base" not in by_model:
            raise UserError(f"format {fmt}: no base store")
        _, base = _sets_of(by_model["base"], eps)
        runs = {name: _sets_of(path, eps)[1] for name, path in by_model.items() if name != "base"}
        out[fmt] = change_overlap(base, runs) if runs else {"n_instructions": base.n, "runs": {}, "pairs": {},
                                                              "by_kind": {}}
        out[fmt]["eps"] = eps
    return out
