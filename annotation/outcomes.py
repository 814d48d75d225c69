"""From annotations to outcomes: which juniors count, who disagrees, what the final status is.

Pure logic over :class:`Annotation` lists keyed by instruction id (never by Label Studio's
task id). The rules:

* Juniors: annotations are taken in creation order; skipped (cancelled) ones do not count;
  the first annotation of each of the first two distinct junior accounts counts. Every other
  annotation (a third junior, a second one by the same junior, a non-junior account) is
  ignored and counted in ``extra_annotations_ignored``.
* A task with two junior verdicts is *agreed* when both have the same decision and the same
  category-correctness; otherwise it is a *disagreement* and goes to the senior. Two juniors
  who both say "revise" but typed different corrections (or none) also go to the senior: the
  release needs one corrected text. These are counted apart from disagreements.
* The senior's first (non-skipped) annotation by a senior account decides; it overrides the
  juniors. A senior "revise" without a corrected text is not usable: the task stays pending.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hexainst.annotation.agreement import junior_agreement
from hexainst.kernel.verdict_rules import (  # noqa: F401  (re-exported: the round's rules)
    REASON_CORRECTIONS_DIFFER,
    REASON_NO_CORRECTION,
    STATUS_OF_DECISION,
    decided,
)
from hexainst.kernel.verdict_rules import common_correction as _common_correction

REASON_DECISION = "the juniors' decisions differ"
REASON_CATEGORY = "the juniors disagree on whether the category is correct"
REASON_BOTH = "the juniors differ on the decision and on the category"


@dataclass(frozen=True)
class Annotation:
    """One Label Studio annotation, already read into a verdict.

    ``order`` sorts annotations by creation: ``(created_at ISO string, annotation id)``.
    """

    annotation_id: int
    annotator: str
    order: tuple[str, int]
    cancelled: bool
    verdict: dict[str, Any] | None  # None when cancelled (a skip has no answers)


@dataclass
class Triage:
    """What the juniors' annotations say about each instruction."""

    juniors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # id -> the 2 counted verdicts
    awaiting_juniors: list[str] = field(default_factory=list)
    agreed: list[str] = field(default_factory=list)
    disagreements: dict[str, str] = field(default_factory=dict)  # id -> reason
    revision_conflicts: dict[str, str] = field(default_factory=dict)  # id -> reason
    extra_ignored: dict[str, int] = field(default_factory=dict)  # id -> count

    @property
    def needs_senior(self) -> dict[str, str]:
        """Instruction id -> why the senior must decide (disagreements and revision conflicts)."""
        return {**self.disagreements, **self.revision_conflicts}


def counted_juniors(
    annotations: Iterable[Annotation], junior_accounts: set[str] | None
) -> tuple[list[dict[str, Any]], int]:
    """The verdicts of the first two distinct juniors, and how many annotations were ignored.

    ``junior_accounts``: the names that count as juniors; ``None`` accepts every account.
    """
    counted: list[dict[str, Any]] = []
    seen: set[str] = set()
    ignored = 0
    for ann in sorted(annotations, key=lambda a: a.order):
        if ann.cancelled:
            continue
        if (junior_accounts is not None and ann.annotator not in junior_accounts) or ann.annotator in seen:
            ignored += 1
            continue
        if len(counted) == 2:
            ignored += 1
            continue
        seen.add(ann.annotator)
        assert ann.verdict is not None
        counted.append(ann.verdict)
    return counted, ignored


def triage(
    junior_annotations: Mapping[str, Iterable[Annotation]], junior_accounts: set[str] | None = None
) -> Triage:
    """Sort every instruction of the junior project into awaiting / agreed / needs-senior."""
    out = Triage()
    for iid in sorted(junior_annotations):
        verdicts, ignored = counted_juniors(junior_annotations[iid], junior_accounts)
        if ignored:
            out.extra_ignored[iid] = ignored
        if len(verdicts) < 2:
            out.awaiting_juniors.append(iid)
            continue
        out.juniors[iid] = verdicts
        a, b = verdicts
        same_decision = a["decision"] == b["decision"]
        same_category = a["category_correct"] == b["category_correct"]
        if not same_decision or not same_category:
            out.disagreements[iid] = (
                REASON_BOTH if not (same_decision or same_category)
                else REASON_DECISION if not same_decision else REASON_CATEGORY
            )
            continue
        if a["decision"] == "revise":
            _, conflict = _common_correction(a, b)
            if conflict:
                out.revision_conflicts[iid] = conflict
                continue
        out.agreed.append(iid)
    return out


@dataclass
class Adjudication:
    """The outcomes and the figures that go into the validation file and the CLI report."""

    outcomes: list[dict[str, Any]]
    agreement: dict[str, Any]
    awaiting_juniors: list[str]
    awaiting_senior: list[str]
    revision_conflicts: dict[str, str]
    unusable_senior: dict[str, str]  # id -> why the senior's annotation could not be used


def adjudicate(
    junior_annotations: Mapping[str, Iterable[Annotation]],
    senior_annotations: Mapping[str, Iterable[Annotation]],
    junior_accounts: set[str] | None = None,
    senior_accounts: set[str] | None = None,
) -> Adjudication:
    """Final statuses: the juniors' common decision where they agree, else the senior's.

    Outcomes are sorted by instruction id; instructions still awaiting a junior or the senior
    are left out and listed in ``awaiting_juniors`` / ``awaiting_senior``.
    """
    junior_annotations = {k: list(v) for k, v in junior_annotations.items()}
    tri = triage(junior_annotations, junior_accounts)
    outcomes: list[dict[str, Any]] = []
    awaiting_senior: list[str] = []
    unusable: dict[str, str] = {}
    n_senior_decided = 0
    extra = sum(tri.extra_ignored.values())
    needs_senior = tri.needs_senior
    for iid in sorted(tri.juniors):
        juniors = tri.juniors[iid]
        if iid not in needs_senior:
            a, b = juniors
            status = STATUS_OF_DECISION[a["decision"]]
            corrected = _common_correction(a, b)[0] if status == "revised" else None
            outcomes.append(_outcome(iid, status, corrected, juniors, None))
            continue
        seniors, ignored = counted_juniors(senior_annotations.get(iid, ()), senior_accounts)
        extra += ignored + max(0, len(seniors) - 1)
        if not seniors:
            awaiting_senior.append(iid)
            continue
        senior = seniors[0]
        status = STATUS_OF_DECISION[senior["decision"]]
        if status == "revised" and not senior["corrected_instruction"]:
            unusable[iid] = "the senior chose revise without typing a corrected instruction"
            awaiting_senior.append(iid)
            continue
        n_senior_decided += 1
        corrected = senior["corrected_instruction"] if status == "revised" else None
        outcomes.append(_outcome(iid, status, corrected, juniors, senior))
    # Senior annotations on instructions that never needed the senior are extra too.
    for iid, anns in senior_annotations.items():
        if iid not in needs_senior:
            extra += sum(1 for a in anns if not a.cancelled)
    agreement = {
        "n_tasks": len(junior_annotations),
        "n_double_annotated": len(tri.juniors),
        **junior_agreement([(v[0], v[1]) for _, v in sorted(tri.juniors.items())]),
        "n_disagreements": len(tri.disagreements),
        "n_senior_decided": n_senior_decided,
        "extra_annotations_ignored": extra,
    }
    return Adjudication(
        outcomes=outcomes,
        agreement=agreement,
        awaiting_juniors=tri.awaiting_juniors,
        awaiting_senior=awaiting_senior,
        revision_conflicts=tri.revision_conflicts,
        unusable_senior=unusable,
    )


def _outcome(
    iid: str, status: str, corrected: str | None, juniors: list[dict[str, Any]], senior: dict[str, Any] | None
) -> dict[str, Any]:
    return {"id": iid, "status": status, "corrected_instruction": corrected, "juniors": juniors, "senior": senior}
