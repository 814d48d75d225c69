"""to_json: the one place results become JSON values."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from hexainst.analysis.results import NOT_IN_JSON, OMIT_IF_NONE, SweepEntry, to_json
from hexainst.analysis.stats import PermutationResult


@dataclass
class _Example:
    matrix: np.ndarray
    values: dict
    hidden: object = field(default=None, metadata=NOT_IN_JSON)
    optional: object = field(default=None, metadata=OMIT_IF_NONE)
    kept_none: object = None


def test_numpy_nan_and_nested_dataclasses() -> None:
    ex = _Example(matrix=np.array([[1.0, np.nan], [np.float32(0.5), 2]]),
                  values={1: np.int64(3), "p": PermutationResult(0.5, math.nan, math.nan, math.nan, 10, 0.0, 1.0),
                          "flag": np.bool_(True)}, hidden="secret")
    out = to_json(ex)
    assert out == {
        "matrix": [[1.0, None], [0.5, 2.0]],
        "values": {"1": 3, "p": {"diagonal": 0.5, "off_diagonal": None, "difference": None, "p_value": None,
                                 "n_permutations": 10, "null_mean": 0.0, "null_sd": 1.0},
                   "flag": True},
        "kept_none": None,
    }
    json.dumps(out, allow_nan=False)  # strictly valid JSON: no NaN left
    assert type(out["values"]["1"]) is int and type(out["matrix"][1][0]) is float


def test_skipped_sweep_cells_keep_only_why() -> None:
    assert to_json(SweepEntry(eps=0.01, tie_rule="exact-k", scope="global", skipped="no sums")) == {
        "eps": 0.01, "tie_rule": "exact-k", "scope": "global", "skipped": "no sums"}
    full = to_json(SweepEntry(eps=0.01, tie_rule="paper", scope="global", target_k=3, mean_size=3.5, min_size=3,
                              max_size=4, diagonal=0.2, off_diagonal=0.1, difference=0.1, p_value=0.01,
                              n_permutations=9, diagonal_per_category={"code": np.float64(0.2)}))
    assert "skipped" not in full and full["diagonal_per_category"] == {"code": 0.2} and full["target_k"] == 3
