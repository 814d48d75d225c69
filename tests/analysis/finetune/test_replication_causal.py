"""The replication table of the alteration report compares the held-out causal check by its test, not by a ratio."""

from __future__ import annotations

from hexainst.analysis.finetune.report import _replication

CATS = ("classification", "code", "generalqa", "generation", "math", "summarization")


def _findings(causal: dict | None) -> dict:
    out = {
        "model": "m", "difference": 0.05, "p_value": 0.001, "length_adjusted": {}, "length_matched": {},
        "category_contrast": {c: float(i) for i, c in enumerate(CATS)}, "ranking": list(CATS)[::-1],
        "layers": {"early": 1, "middle": 2, "late": 3, "shape": "rising", "peak_layer": 3},
        "mean_set_size": 10, "target_k": 12,
    }
    if causal is not None:
        out["causal"] = causal
    return out


def _row(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("| held-out causal check"))


def test_the_causal_row_shows_each_models_test_and_says_whether_the_verdicts_agree() -> None:
    holds = {"specificity": 0.2, "ci_low": 0.05, "ci_high": 0.4, "p_value": 1 / 720, "n_assignments": 720}
    fails = {"specificity": 0.1, "ci_low": -0.2, "ci_high": 0.3, "p_value": 0.31, "n_assignments": 720}
    row = _row("\n".join(_replication(_findings(holds), _findings(holds), "tuned")))
    assert "+0.200 [+0.050, +0.400], p <= 0.0014 (the floor: 1/720)" in row and "| yes (holds when p < 0.05" in row
    row = _row("\n".join(_replication(_findings(holds), _findings(fails), "tuned")))
    assert "+0.100 [-0.200, +0.300], p = 0.3100" in row and "| no (holds when" in row
    # an analysis from before the held-out check (no test): no causal row at all, never a ratio of means
    text = "\n".join(_replication(_findings({"diagonal_mean": 1.0, "off_diagonal_mean": 0.5}), _findings(holds), "t"))
    assert "causal" not in text
