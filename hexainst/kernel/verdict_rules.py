"""What a validation outcome's recorded verdicts decide: the one rule the annotation round applies
(``hexainst.annotation.outcomes``) and the validation file checks (``hexainst.kernel.validation_file``).

Pure functions over verdict dicts (``decision``, ``category_correct``, ``corrected_instruction``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STATUS_OF_DECISION = {"accept": "accepted", "revise": "revised", "reject": "rejected"}

REASON_CORRECTIONS_DIFFER = "both juniors revise, with different corrected texts"
REASON_NO_CORRECTION = "both juniors revise, but neither typed a corrected text"


def common_correction(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(text, conflict reason) for two agreeing "revise" verdicts."""
    texts = {t for t in (a["corrected_instruction"], b["corrected_instruction"]) if t}
    if len(texts) == 1:
        return texts.pop(), None
    if not texts:
        return None, REASON_NO_CORRECTION
    return None, REASON_CORRECTIONS_DIFFER


def decided(juniors: list[Mapping[str, Any]], senior: Mapping[str, Any] | None) -> tuple[str | None, str | None, str]:
    """What an outcome's recorded verdicts decide, by the round's rules (annotation/outcomes.py): ``(status, corrected, by)``.

    The senior's verdict decides when present (a "revise" needs its corrected text); without it the
    two juniors decide when they agree (same decision, same category answer, one corrected text for
    "revise"). ``status`` is ``None`` when the verdicts decide nothing; ``by`` then says why,
    otherwise who decided ("the senior's verdict", "the agreeing juniors").
    """
    if senior is not None:
        status = STATUS_OF_DECISION[senior["decision"]]
        if status == "revised" and not senior["corrected_instruction"]:
            return None, None, "the senior chose revise without a corrected instruction"
        return status, senior["corrected_instruction"] if status == "revised" else None, "the senior's verdict"
    if len(juniors) != 2:
        return None, None, f"{len(juniors)} junior verdicts and no senior"
    a, b = juniors
    if a["decision"] != b["decision"] or a["category_correct"] != b["category_correct"]:
        return None, None, "the juniors disagree and there is no senior verdict"
    status = STATUS_OF_DECISION[a["decision"]]
    if status != "revised":
        return status, None, "the agreeing juniors"
    text, conflict = common_correction(a, b)
    if conflict:
        return None, None, f"{conflict} and there is no senior verdict"
    return status, text, "the agreeing juniors"

