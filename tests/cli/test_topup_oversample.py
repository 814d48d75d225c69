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
