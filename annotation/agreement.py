"""Inter-annotator agreement between the two juniors: pure functions, no I/O.

Cohen's kappa: ``kappa = (p_o - p_e) / (1 - p_e)`` with ``p_o`` the observed agreement and
``p_e = sum_k p_a(k) * p_b(k)`` the agreement expected from each annotator's own label
frequencies. It is undefined (``None`` here; scikit-learn returns ``nan``) when there are no
items or when ``p_e == 1`` (both annotators used one and the same label throughout).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from hexainst.kernel.vocab import ERROR_TYPES


def cohen_kappa(labels_a: Sequence[Hashable], labels_b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two annotators' labels for the same items.

    Args:
        labels_a: shape ``[n_items]``, annotator A's label per item.
        labels_b: shape ``[n_items]``, annotator B's label per item, same order.

    Returns:
        kappa in ``[-1, 1]``, or ``None`` when undefined (no items, or ``p_e == 1``).
    """
    if len(labels_a) != len(labels_b):
        raise ValueError(f"label sequences differ in length: {len(labels_a)} vs {len(labels_b)}")
    n = len(labels_a)
    if n == 0:
        return None
    agree = sum(1 for a, b in zip(labels_a, labels_b) if a == b)
    count_a, count_b = Counter(labels_a), Counter(labels_b)
    # Integer numerators first, one division at the end: exact for equal inputs.
    expected_num = sum(count_a[k] * count_b[k] for k in count_a)
    denominator = n * n - expected_num
    if denominator == 0:
        return None
    return (agree * n - expected_num) / denominator


def percent_agreement(labels_a: Sequence[Hashable], labels_b: Sequence[Hashable]) -> float | None:
    """Share of items with equal labels, in percent (``[0, 100]``); ``None`` for no items."""
    if len(labels_a) != len(labels_b):
        raise ValueError(f"label sequences differ in length: {len(labels_a)} vs {len(labels_b)}")
    if not labels_a:
        return None
    agree = sum(1 for a, b in zip(labels_a, labels_b) if a == b)
    return 100.0 * agree / len(labels_a)


def junior_agreement(pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> dict[str, Any]:
    """Agreement of the juniors over double-annotated tasks.

    Args:
        pairs: one ``(first_junior_verdict, second_junior_verdict)`` per double-annotated task.
            Kappa treats "first" and "second" as the two raters, as is usual when the raters
            are interchangeable accounts.

    Returns:
        ``{"kappa_decision", "kappa_category_correct", "error_type_agreement"}`` where the last
        maps each error type to ``{"kappa", "percent"}`` on its presence (a yes/no label).
    """
    first = [p[0] for p in pairs]
    second = [p[1] for p in pairs]
    per_error: dict[str, dict[str, float | None]] = {}
    for error in ERROR_TYPES:
        a = [error in v["errors"] for v in first]
        b = [error in v["errors"] for v in second]
        per_error[error] = {"kappa": cohen_kappa(a, b), "percent": percent_agreement(a, b)}
    return {
        "kappa_decision": cohen_kappa([v["decision"] for v in first], [v["decision"] for v in second]),
        "kappa_category_correct": cohen_kappa(
            [v["category_correct"] for v in first], [v["category_correct"] for v in second]
        ),
        "error_type_agreement": per_error,
    }
