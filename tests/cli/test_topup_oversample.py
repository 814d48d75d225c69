"""`build topup --oversample`: how many new candidates a short cell asks for, from the acceptance validation measured."""

from __future__ import annotations

import math
import random

from hexainst.builders.whole_build import FILL_PROBABILITY, MIN_ACCEPTANCE, candidates_to_fill, cell_acceptance


def _fill_rate(kept: int, trials: int, p: float, rows: int = 100, runs: int = 4000, seed: int = 0) -> float:
    """How often ``kept`` plus the passes of ``trials`` candidates (each passing with ``p``) reach ``rows``, simulated."""
    rng = random.Random(seed)
    return sum(kept + sum(rng.random() < p for _ in range(trials)) >= rows for _ in range(runs)) / runs


def test_asks_for_the_fewest_candidates_that_fill_the_cell_with_the_set_probability() -> None:
    # 13 kept, 87 pending, 1 in 10 passes (math in round 1): one more round must bring 87 rows
    cell = {"usable": 100, "pending": 87, "short": 0}
    n = candidates_to_fill(cell, 0.1)
    assert n > math.ceil(87 / 0.1) - 87  # more than the mean alone asks for (that fills half the time)
    # checked by simulation, not by the formula the code uses: n fills at the set probability, n - 20 does not
    assert _fill_rate(13, 87 + n, 0.1, runs=2000) >= FILL_PROBABILITY - 0.02
    assert _fill_rate(13, 87 + n - 20, 0.1, runs=2000) < FILL_PROBABILITY - 0.02


def test_edges() -> None:
    cell = {"usable": 100, "pending": 87, "short": 0}
    # nothing measured in the cell: the plain shortfall (pending rows counted as usable)
    assert candidates_to_fill(cell, None) == 0
    assert candidates_to_fill({"usable": 93, "pending": 0, "short": 7}, None) == 7
    # every row passes: exactly what is missing; a full cell asks for nothing
    assert candidates_to_fill({"usable": 50, "pending": 0, "short": 50}, 1.0) == 50
    assert candidates_to_fill(cell, 1.0) == 0
    assert candidates_to_fill({"usable": 120, "pending": 0, "short": 0}, 0.3) == 0
    # no row passed so far: the floor bounds the request, never a division by zero
    bounded = candidates_to_fill({"usable": 96, "pending": 0, "short": 4}, 0.0)
    assert math.ceil(4 / MIN_ACCEPTANCE) <= bounded < 4 * math.ceil(4 / MIN_ACCEPTANCE)
    # pending rows count: the more of them, the fewer new candidates
    fewer = candidates_to_fill({"usable": 60, "pending": 40, "short": 40}, 0.3)
    more = candidates_to_fill({"usable": 20, "pending": 0, "short": 80}, 0.3)
    assert 0 < fewer < more


def test_acceptance_counts_rejected_candidates_that_left_the_release() -> None:
    cell_of = {"a": "math/synthetic", "b": "math/synthetic", "c": "math/synthetic", "d": "math/synthetic",
               "n": "math/natural"}
    outcomes = {"a": {"status": "accepted"}, "b": {"status": "rejected"}, "c": {"status": "rejected"},
                "d": {"status": "revised"}, "n": {"status": "pending"}, "gone": {"status": "accepted"}}
    # 2 kept of 4 decided; a pending row and an id of no pool are not counted
    assert cell_acceptance(cell_of, outcomes) == {"math/synthetic": 0.5}


def test_a_topup_adds_to_the_rounds_before_it_on_a_fresh_clone(tmp_path) -> None:
    import json

    from hexainst.builders.whole_build import topup_so_far

    work, release = tmp_path / "work", tmp_path / "release"
    (work / "stages").mkdir(parents=True)
    release.mkdir()
    # a fresh clone: the release ships its record, the work folder has none (the rebuild does not write one)
    (release / "topup.json").write_text(json.dumps({"extra": {"math/synthetic": 87}}))
    assert topup_so_far(work, release) == {"math/synthetic": 87}
    # the work folder's own record (written by a top-up there) is the newer one
    (work / "stages" / "topup.json").write_text(json.dumps({"extra": {"math/synthetic": 90, "code/synthetic": 3}}))
    assert topup_so_far(work, release) == {"math/synthetic": 90, "code/synthetic": 3}
    # neither: no earlier round
    assert topup_so_far(tmp_path / "other", tmp_path / "none") == {}
