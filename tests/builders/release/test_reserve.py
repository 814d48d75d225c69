"""Reserve sizes from expected rejection rates, checked against a direct binomial sum."""

from __future__ import annotations

import json
from math import comb

import pytest

from hexainst.builders.release.reserve import expected_rates, reserve_plan, reserve_size
from hexainst.kernel.errors import UserError


def _p_full(rows: int, reserve: int, rate: float) -> float:
    """P(at least `rows` of `rows + reserve` candidates accepted), summed term by term."""
    n = rows + reserve
    return sum(comb(n, k) * (1 - rate) ** k * rate ** (n - k) for k in range(rows, n + 1))


@pytest.mark.parametrize("rate", [0.02, 0.05, 0.1, 0.25, 0.4])
def test_reserve_is_the_smallest_that_keeps_the_cell_full(rate):
    r = reserve_size(rate, rows=100, alpha=0.025)
    assert _p_full(100, r, rate) >= 0.975
    assert _p_full(100, r - 1, rate) < 0.975


@pytest.mark.parametrize("rate", [0.6, 0.9])
def test_high_rates_give_the_smallest_reserve_too(rate):
    # the search grows geometrically and bisects: it must land on the same smallest reserve as a scan
    from scipy.stats import binom

    r = reserve_size(rate, rows=100, alpha=0.025)
    assert binom.sf(99, 100 + r, 1 - rate) >= 0.975 > binom.sf(99, 100 + r - 1, 1 - rate)


def test_a_rate_near_one_answers_at_once():
    import time

    start = time.monotonic()
    r = reserve_size(0.9999999)
    assert r > 10**9
    assert time.monotonic() - start < 5  # the step-by-step scan never finished (a probe's 90 s timeout)


def test_no_rejections_need_no_reserve_and_bad_rates_are_refused():
    assert reserve_size(0.0) == 0
    with pytest.raises(UserError, match=r"in \[0, 1\)"):
        reserve_size(1.0)


def test_rates_from_a_file_or_a_pilot_validation_file(tmp_path):
    bundled = expected_rates()
    assert set(bundled["cells"]) == {f"{c}/{s}" for c in ("classification", "code", "generalqa", "generation", "math",
                                                          "summarization") for s in ("natural", "synthetic")}
    (tmp_path / "rates.json").write_text(json.dumps({"source": "pilot of 2026-11", "cells": {"math/synthetic": 0.1}}))
    rates = expected_rates(tmp_path / "rates.json")
    assert rates["cells"]["math/synthetic"] == {"rate": 0.1, "source": "pilot of 2026-11"}
    assert rates["cells"]["code/synthetic"] == bundled["cells"]["code/synthetic"]
    plan = reserve_plan(rates)
    assert plan["math/synthetic"]["reserve"] == reserve_size(0.1)
    (tmp_path / "bad.json").write_text(json.dumps({"cells": {"maths/synthetic": 0.1}}))
    with pytest.raises(UserError, match="unknown cell 'maths/synthetic'"):
        expected_rates(tmp_path / "bad.json")


def test_a_cap_keeps_reserves_annotatable_and_says_so():
    rates = {"cells": {"math/synthetic": {"rate": 0.9, "source": "pilot"}, "math/natural": {"rate": 0.05, "source": "x"}}}
    plan = reserve_plan(rates, cap=50)
    assert plan["math/synthetic"]["reserve"] == 50 and plan["math/synthetic"]["capped"]
    assert plan["math/synthetic"]["reserve_wanted"] == reserve_size(0.9) > 50
    assert plan["math/natural"] == {"rate": 0.05, "source": "x", "reserve_wanted": reserve_size(0.05),
                                    "reserve": reserve_size(0.05), "capped": False}
