"""Null distributions and resampling that test what a sentence of the report says (pure functions).

- :func:`stratified_permutation`: shuffle labels only among rows of the same stratum (e.g. the
  same length stratum: the null of "beyond length" keeps each stratum's category mix, so a
  category effect that is only a length effect is not counted as one).
- :func:`cluster_bootstrap_weights`: a two-stage bootstrap. Within each category its clusters
  (source task / template / generator, :func:`provenance_cluster`) are drawn with replacement,
  then the rows of every drawn cluster with replacement. Rows of one FLAN task, one HumanEval
  template or one generator are not independent; this interval says how much a conclusion hangs
  on which clusters happened to be in the release.
- :func:`p_value` / :func:`format_p`: p = (1 + #{null >= observed}) / (1 + n); at the floor
  (no null value reached the observed one) it is written "p <= 1/(n+1)", never a bare number.

Every function takes a ``numpy.random.Generator`` or a seed: same inputs and seed, same numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def stratified_permutation(strata: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation of 0..n-1 that maps every row to a row of its own stratum: int64 [n].

    strata: int [n]. ``labels[perm]`` is then a shuffle of the labels within each stratum.
    """
    strata = np.asarray(strata)
    perm = np.arange(strata.size, dtype=np.int64)
    order = np.argsort(strata, kind="stable")
    bounds = np.flatnonzero(np.diff(strata[order])) + 1
    for group in np.split(order, bounds):
        perm[group] = group[rng.permutation(group.size)]
    return perm


def combine_strata(*keys: np.ndarray) -> np.ndarray:
    """One stratum id per row from several integer keys (e.g. source x length stratum): int64 [n]."""
    stacked = np.column_stack([np.asarray(k, dtype=np.int64) for k in keys])
    return np.unique(stacked, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def cluster_bootstrap_weights(codes: np.ndarray, clusters: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row multiplicities of one two-stage cluster bootstrap draw: float64 [n].

    codes: int [n] category of each row (clusters are resampled within their category, so every
    category keeps its number of clusters); clusters: int [n] cluster of each row. Stage 1 draws
    the category's clusters with replacement; stage 2 draws, for every drawn cluster, as many rows
    as it has, with replacement. With one row per cluster this is the ordinary bootstrap of rows
    within categories; with one cluster per category it is the bootstrap of rows.
    """
    codes = np.asarray(codes)
    clusters = np.asarray(clusters)
    out = np.zeros(codes.size, dtype=np.float64)
    for c in np.unique(codes):
        in_c = np.flatnonzero(codes == c)
        ids = np.unique(clusters[in_c])
        members = [in_c[clusters[in_c] == k] for k in ids]
        for pick in rng.integers(0, ids.size, size=ids.size):
            rows = members[int(pick)]
            out += np.bincount(rows[rng.integers(0, rows.size, size=rows.size)], minlength=codes.size)
    return out


def p_value(exceed: int, n: int) -> float:
    """(1 + exceed) / (1 + n): the permutation p-value with the observed value counted once."""
    return (1 + int(exceed)) / (1 + int(n))


def format_p(p: float | None, n: int | None) -> str:
    """``p = 0.0123``, or ``p <= 1/(n+1)`` (e.g. ``p <= 0.0020 (floor of 500 shuffles)``) at the floor."""
    if p is None or p != p:
        return "p n/a"
    if n and abs(p - 1 / (n + 1)) < 1e-12:
        return f"p <= {1 / (n + 1):.4f} (the floor of {n} shuffles)"
    return f"p = {p:.4f}"


def provenance_cluster(row: Mapping[str, Any]) -> str:
    """The resampling cluster of a release row, from its provenance.

    Natural rows: ``natural:<source_name>:<task_name>`` where the source names a task (FLAN's
    ag_news, sst2, trec, xsum, samsum), else ``natural:<source_name>:<pattern_id>`` (the template:
    HumanEval's one prompt, TriviaQA's question, Alpaca's generation verbs, MATH-500's problem).
    Synthetic rows: ``synthetic:<generator_model>:<prompt_id>`` (one meta-prompt of one
    generator per category). A row without provenance is its own cluster (its id).
    """
    prov = row.get("provenance") or {}
    if isinstance(prov, str):
        prov = json.loads(prov)
    nat, syn = prov.get("natural"), prov.get("synthetic")
    if nat:
        task = nat.get("task_name") or nat.get("pattern_id")
        return f"natural:{nat.get('source_name')}:{task}"
    if syn:
        gen = syn.get("generator_model") or syn.get("generator")
        return f"synthetic:{gen}:{syn.get('prompt_id')}"
    return f"row:{row.get('id')}"


def cluster_codes(ids: Sequence[str], clusters_by_id: Mapping[str, str] | None) -> tuple[np.ndarray, int]:
    """Integer cluster code per id (int64 [n]) and the number of clusters; no map: every row its own."""
    if not clusters_by_id:
        return np.arange(len(ids), dtype=np.int64), len(ids)
    keys = [clusters_by_id.get(i, f"row:{i}") for i in ids]
    uniq, inv = np.unique(np.array(keys, dtype=str), return_inverse=True)
    return inv.astype(np.int64), int(uniq.size)
