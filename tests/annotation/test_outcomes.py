"""Which juniors count, disagreement detection and the final status (pure logic)."""

from __future__ import annotations

from annotation_helpers import verdict

from hexainst.annotation.outcomes import (
    REASON_CATEGORY,
    REASON_CORRECTIONS_DIFFER,
    REASON_DECISION,
    REASON_NO_CORRECTION,
    Annotation,
    adjudicate,
    counted_juniors,
    triage,
)

JUNIORS = {"junior1", "junior2", "junior3"}
SENIORS = {"senior"}


def ann(aid: int, who: str, t: str, v: dict | None, cancelled: bool = False) -> Annotation:
    return Annotation(aid, who, (t, aid), cancelled, None if cancelled else {**v, "annotator": who})


def test_first_two_distinct_juniors_count_in_creation_order():
    anns = [
        ann(4, "junior3", "2026-01-01T00:00:04Z", verdict("", "reject")),
        ann(1, "junior1", "2026-01-01T00:00:01Z", verdict("", "accept")),
        ann(3, "junior1", "2026-01-01T00:00:03Z", verdict("", "reject")),  # same junior again
        ann(2, "junior2", "2026-01-01T00:00:02Z", verdict("", "accept")),
        ann(5, "admin", "2026-01-01T00:00:00Z", verdict("", "reject")),  # not a junior
        ann(6, "junior3", "2026-01-01T00:00:00Z", None, cancelled=True),  # a skip does not count
    ]
    counted, ignored = counted_juniors(anns, JUNIORS)
    assert [v["annotator"] for v in counted] == ["junior1", "junior2"]
    assert [v["decision"] for v in counted] == ["accept", "accept"]
    assert ignored == 3


def test_triage_detects_exactly_the_disagreements():
    t = "2026-01-01T00:00:0{}Z"
    cases = {
        "math-nat-000000000001": (verdict("", "accept"), verdict("", "accept")),
        "math-nat-000000000002": (verdict("", "accept"), verdict("", "reject")),
        "math-nat-000000000003": (verdict("", "accept", True), verdict("", "accept", False)),
        "math-nat-000000000004": (verdict("", "revise", corrected="Fixed."), verdict("", "revise", corrected="Fixed.")),
        "math-nat-000000000005": (verdict("", "revise", corrected="One."), verdict("", "revise", corrected="Two.")),
        "math-nat-000000000006": (verdict("", "revise"), verdict("", "revise")),
        "math-nat-000000000007": (verdict("", "revise", corrected="Only one."), verdict("", "revise")),
        # Same decision and category, different errors: agreement (errors only feed kappa).
        "math-nat-000000000008": (verdict("", "accept", errors=["grammar"]), verdict("", "accept")),
    }
    anns = {
        iid: [ann(1, "junior1", t.format(1), a), ann(2, "junior2", t.format(2), b)] for iid, (a, b) in cases.items()
    }
    anns["math-nat-000000000009"] = [ann(1, "junior1", t.format(1), verdict("", "accept"))]
    tri = triage(anns, JUNIORS)
    assert tri.disagreements == {
        "math-nat-000000000002": REASON_DECISION,
        "math-nat-000000000003": REASON_CATEGORY,
    }
    assert tri.revision_conflicts == {
        "math-nat-000000000005": REASON_CORRECTIONS_DIFFER,
        "math-nat-000000000006": REASON_NO_CORRECTION,
    }
    assert tri.agreed == [
        "math-nat-000000000001", "math-nat-000000000004", "math-nat-000000000007", "math-nat-000000000008",
    ]  # fmt: skip
    assert tri.awaiting_juniors == ["math-nat-000000000009"]


def test_adjudicate_senior_overrides_and_pending_left_out():
    t = "2026-01-01T00:00:0{}Z"
    j = {
        "code-syn-00000000000a": [ann(1, "junior1", t.format(1), verdict("", "accept")),
                                  ann(2, "junior2", t.format(2), verdict("", "accept"))],
        "code-syn-00000000000b": [ann(3, "junior1", t.format(1), verdict("", "accept")),
                                  ann(4, "junior2", t.format(2), verdict("", "reject"))],
        "code-syn-00000000000c": [ann(5, "junior1", t.format(1), verdict("", "accept")),
                                  ann(6, "junior2", t.format(2), verdict("", "revise", corrected="X."))],
        "code-syn-00000000000d": [ann(7, "junior1", t.format(1), verdict("", "reject")),
                                  ann(8, "junior2", t.format(2), verdict("", "accept", False))],
        "code-syn-00000000000e": [ann(9, "junior1", t.format(1), verdict("", "reject")),
                                  ann(10, "junior2", t.format(2), verdict("", "accept"))],
    }  # fmt: skip
    s = {
        # Juniors split accept/reject; the senior revises: the senior's verdict is final.
        "code-syn-00000000000b": [ann(11, "senior", t.format(3), verdict("", "revise", corrected="Better text."))],
        # The senior accepts: a junior wanted a revision, it is not applied.
        "code-syn-00000000000c": [ann(12, "senior", t.format(3), verdict("", "accept")),
                                  ann(13, "senior", t.format(4), verdict("", "reject"))],  # second one ignored
        # A senior "revise" with no text cannot be applied: still pending.
        "code-syn-00000000000e": [ann(14, "senior", t.format(3), verdict("", "revise"))],
        # The senior annotating a task the juniors agreed on: ignored and counted.
        "code-syn-00000000000a": [ann(15, "senior", t.format(3), verdict("", "reject"))],
    }  # fmt: skip
    out = adjudicate(j, s, JUNIORS, SENIORS)
    by_id = {o["id"]: o for o in out.outcomes}
    assert sorted(by_id) == ["code-syn-00000000000a", "code-syn-00000000000b", "code-syn-00000000000c"]
    assert by_id["code-syn-00000000000a"]["status"] == "accepted"
    assert by_id["code-syn-00000000000a"]["senior"] is None
    assert by_id["code-syn-00000000000b"]["status"] == "revised"
    assert by_id["code-syn-00000000000b"]["corrected_instruction"] == "Better text."
    assert by_id["code-syn-00000000000b"]["senior"]["annotator"] == "senior"
    assert by_id["code-syn-00000000000c"]["status"] == "accepted"
    assert by_id["code-syn-00000000000c"]["corrected_instruction"] is None
    assert [v["annotator"] for v in by_id["code-syn-00000000000c"]["juniors"]] == ["junior1", "junior2"]
    assert out.awaiting_senior == ["code-syn-00000000000d", "code-syn-00000000000e"]
    assert set(out.unusable_senior) == {"code-syn-00000000000e"}
    assert out.agreement["n_disagreements"] == 4
    assert out.agreement["n_senior_decided"] == 2
    assert out.agreement["extra_annotations_ignored"] == 2  # ann 13 and ann 15
    assert out.agreement["n_tasks"] == 5 and out.agreement["n_double_annotated"] == 5
