"""Reading a Label Studio JSON export (shape checks, errors that name the task and annotation)."""

from __future__ import annotations

import copy

import pytest
from annotation_helpers import verdict

from hexainst.annotation import labeling_config as lc
from hexainst.annotation.export import build_validation, parse_export
from hexainst.annotation.verdicts import ExportError

USERS = {1: "admin", 2: "junior1", 3: "junior2", 4: "senior"}
A, B = "math-nat-00000000000a", "math-nat-00000000000b"


def task(tid: int, iid: str, *anns: dict) -> dict:
    return {"id": tid, "data": {"hexainst_id": iid, "instruction": "x", "category": "math", "origin": "natural"},
            "annotations": list(anns)}  # fmt: skip


def annotation(aid: int, user: int, t: str, v: dict | None = None, cancelled: bool = False) -> dict:
    return {"id": aid, "completed_by": user, "created_at": t, "was_cancelled": cancelled,
            "result": [] if cancelled else lc.verdict_to_result(v)}  # fmt: skip


def export() -> list[dict]:
    return [
        task(1, A, annotation(10, 2, "2026-01-01T00:00:01Z", verdict("", "accept")),
             annotation(11, 3, "2026-01-01T00:00:02Z", verdict("", "reject"))),
        task(2, B, annotation(12, 2, "2026-01-01T00:00:03Z", verdict("", "accept"))),
        # The same instruction imported twice: its annotations are merged.
        task(3, B, annotation(13, 3, "2026-01-01T00:00:04Z", verdict("", "accept")),
             annotation(14, 3, "2026-01-01T00:00:05Z", None, cancelled=True)),
    ]  # fmt: skip


def test_parse_merges_tasks_of_one_instruction_and_names_annotators():
    anns, data = parse_export(export(), USERS, "junior export")
    assert sorted(anns) == [A, B] and data[B]["category"] == "math"
    assert [(a.annotation_id, a.annotator, a.cancelled) for a in anns[B]] == [
        (12, "junior1", False), (13, "junior2", False), (14, "junior2", True),
    ]  # fmt: skip
    assert anns[A][1].verdict["decision"] == "reject" and anns[A][1].verdict["annotator"] == "junior2"


CREATED = {"label_studio_version": "1.23.2", "junior_project": "J", "senior_project": "S"}


def test_build_validation_from_exports():
    senior = [task(7, A, annotation(20, 4, "2026-01-02T00:00:00Z", verdict("", "accept")))]
    juniors, _ = parse_export(export(), USERS, "junior export")
    seniors, _ = parse_export(senior, USERS, "senior export")
    doc, result = build_validation(juniors, seniors, CREATED, {"junior1", "junior2"}, {"senior"})
    assert [(o["id"], o["status"]) for o in doc["outcomes"]] == [(A, "accepted"), (B, "accepted")]
    assert doc["outcomes"][0]["senior"]["annotator"] == "senior"
    assert doc["rounds"][0]["agreement"]["n_disagreements"] == 1 and doc["rounds"][0]["agreement"]["n_senior_decided"] == 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.__setitem__(slice(None), [{"tasks": e}]), r"junior export task 0: not a task object"),
        (lambda e: e[1]["data"].pop("hexainst_id"), r"junior export task 1 \(Label Studio id 2\): data.hexainst_id is None"),
        (lambda e: e[0]["data"].update(hexainst_id="17"), r"task 0 .*'17', not an instruction id"),
        (lambda e: e[0].update(annotations={}), rf"instruction {A}: 'annotations' is dict"),
        (lambda e: e[0]["annotations"][1].update(completed_by="bob"), rf"instruction {A} annotation 11: 'completed_by'"),
        (lambda e: e[0]["annotations"][0].pop("created_at"), rf"instruction {A} annotation 10: 'created_at'"),
        (lambda e: e[0]["annotations"][0].update(result=[]), rf"instruction {A} annotation 10: the annotation has no decision"),
        (lambda e: e[0]["annotations"][0].pop("id"), rf"instruction {A}: an annotation without an integer 'id'"),
    ],
)
def test_malformed_export_is_named(mutate, message):
    e = copy.deepcopy(export())
    mutate(e)
    with pytest.raises(ExportError, match=message):
        parse_export(e, USERS, "junior export")


def test_export_not_a_list_and_senior_task_unknown():
    with pytest.raises(ExportError, match="expected a list of tasks, got dict"):
        parse_export({"tasks": []}, USERS, "junior export")
    senior = [task(7, "code-nat-00000000000c", annotation(20, 4, "2026-01-02T00:00:00Z", verdict("", "accept")))]
    juniors, _ = parse_export(export(), USERS, "junior export")
    seniors, _ = parse_export(senior, USERS, "senior export")
    with pytest.raises(ExportError, match="instruction code-nat-00000000000c is not in the junior projects"):
        build_validation(juniors, seniors, CREATED)


def test_verdicts_of_two_instances_merge_by_instruction_id():
    # Each junior's instance numbers its tasks, users and annotations from 1: ids collide, names do not.
    one = [task(1, A, annotation(1, 2, "2026-01-01T00:00:01Z", verdict("", "accept")))]
    two = [task(1, A, annotation(1, 2, "2026-01-01T00:00:02Z", verdict("", "accept")))]
    a, _ = parse_export(one, {2: "junior1"}, "junior1's export")
    b, _ = parse_export(two, {2: "junior2"}, "junior2's export")
    merged = {A: a[A] + b[A]}
    doc, _ = build_validation(merged, {}, CREATED, {"junior1", "junior2"}, {"senior"})
    assert [(o["id"], o["status"], [v["annotator"] for v in o["juniors"]]) for o in doc["outcomes"]] == [
        (A, "accepted", ["junior1", "junior2"])
    ]


def test_build_validation_lists_the_tasks_awaiting_the_senior_and_numbers_its_round():
    juniors, _ = parse_export(export(), USERS, "junior export")
    doc, result = build_validation(juniors, {}, CREATED, {"junior1", "junior2"}, {"senior"}, round_number=2)
    [only] = doc["rounds"]
    assert only["awaiting_senior"] == [A] == result.awaiting_senior  # A: the juniors disagree, no senior yet
    assert (only["round"], only["n_outcomes"]) == (2, 1)
    assert [(o["id"], o["round"], o["status"]) for o in doc["outcomes"]] == [(B, 2, "accepted")]
    assert only["created_from"] == CREATED
