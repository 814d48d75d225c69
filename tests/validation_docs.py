"""Validation files for tests: a ``hexainst-validation`` document built from outcomes, as the annotation stage writes it."""

from __future__ import annotations

from typing import Any

_DECISION = {"accepted": "accept", "revised": "revise", "rejected": "reject"}


PERSON = {"kind": "person", "model": None, "prompt": None, "how": None}


def verdict(annotator: str, decision: str, corrected: str | None = None) -> dict[str, Any]:
    return {"annotator": annotator, "identity": dict(PERSON), "decision": decision, "category_correct": decision != "reject",
            "errors": [] if decision == "accept" else ["unclear"], "corrected_instruction": corrected}


def outcome(row_id: str, status: str, corrected: str | None = None) -> dict[str, Any]:
    """Both juniors agree on ``status`` (accepted / revised / rejected); no senior needed."""
    decision = _DECISION[status]
    return {"id": row_id, "status": status, "corrected_instruction": corrected,
            "juniors": [verdict("junior1", decision, corrected), verdict("junior2", decision, corrected)],
            "senior": None}


def validation_doc(outcomes: list[dict[str, Any]], version: int = 3) -> dict[str, Any]:
    """One round over ``outcomes`` in format ``version``: 3 (what 'annotate export' writes) or 2 (an older file)."""
    none = {"kappa": None, "percent": None}
    doc = {
        "format": "hexainst-validation", "format_version": 2,
        "created_from": {"label_studio_version": "test", "junior_project": "j", "senior_project": "s"},
        "annotators": [{"annotator": n, "role": r, "identity": dict(PERSON)}
                       for n, r in (("junior1", "junior"), ("junior2", "junior"), ("senior", "senior"))],
        "agreement": {"n_tasks": len(outcomes), "n_double_annotated": len(outcomes), "kappa_decision": 0.5,
                      "kappa_category_correct": 0.25,
                      "error_type_agreement": {k: none for k in ("grammar", "redundancy", "wrong_category", "unclear", "unsound")},
                      "n_disagreements": 0, "n_senior_decided": 0, "extra_annotations_ignored": 0},
        "outcomes": outcomes,
    }
    if version == 2:
        return doc
    from hexainst.kernel.validation_file import upgrade

    current = upgrade(doc)
    current["rounds"][0]["awaiting_senior"] = []  # format 3 lists them: none here
    return current


def rejections(ids: list[str]) -> dict[str, Any]:
    """A validation document that rejects ``ids`` (both juniors agree)."""
    return validation_doc([outcome(i, "rejected") for i in ids])
