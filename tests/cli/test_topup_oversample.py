"""`build topup --oversample`: how many new candidates a short cell asks for, from the acceptance validation measured."""

from __future__ import annotations

import math

from hexainst.cli.build_all import MIN_ACCEPTANCE, oversampled


def test_oversampled_asks_for_enough_to_fill_at_the_measured_acceptance() -> None:
    assert oversampled(10, 0.5) == 20
    assert oversampled(87, 0.09) == math.ceil(87 / 0.09)  # 967: a cell where 9 of 100 pass
    assert oversampled(3, 1.0) == 3
    # nothing decided in the cell: exactly the shortfall
    assert oversampled(7, None) == 7
    # no row accepted: bounded by the floor, never a division by zero
    assert oversampled(4, 0.0) == math.ceil(4 / MIN_ACCEPTANCE)
    # at the measured acceptance, the expected number of accepted new rows covers the shortfall
    for short in (1, 5, 50, 99):
        for acceptance in (0.07, 0.23, 0.6):
            assert oversampled(short, acceptance) * acceptance >= short


def test_pending_rows_count_at_the_cells_acceptance() -> None:
    from hexainst.cli.build_all import expected_short

    # 13 kept, 87 pending in a cell where 1 in 10 passes: about 8.7 of them will be kept, so 79 rows are missing
    cell = {"usable": 100, "pending": 87, "short": 0}
    assert expected_short(cell, 0.1) == 79
    assert oversampled(expected_short(cell, 0.1), 0.1) == 790
    # nothing measured in the cell: the plain shortfall (pending rows counted as usable)
    assert expected_short(cell, None) == 0
    # every pending row expected to pass: nothing missing; a cell already full stays full
    assert expected_short(cell, 1.0) == 0
    assert expected_short({"usable": 120, "pending": 0, "short": 0}, 0.3) == 0
    # rejected rows are not usable: 40 kept, 10 pending at one half leaves 55 missing
    assert expected_short({"usable": 50, "pending": 10, "short": 50}, 0.5) == 55


def test_acceptance_counts_rejected_candidates_that_left_the_release() -> None:
    from hexainst.cli.build_all import cell_acceptance

    cell_of = {"a": "math/synthetic", "b": "math/synthetic", "c": "math/synthetic", "d": "math/synthetic",
               "n": "math/natural"}
    outcomes = {"a": {"status": "accepted"}, "b": {"status": "rejected"}, "c": {"status": "rejected"},
                "d": {"status": "revised"}, "n": {"status": "pending"}, "gone": {"status": "accepted"}}
    # 2 kept of 4 decided; a pending row and an id of no pool are not counted
    assert cell_acceptance(cell_of, outcomes) == {"math/synthetic": 0.5}
