"""Against a real round of Label Studio instances (one per annotator): juniors, senior, agreement, faults.

Every annotator is simulated through the API with their own account and token, on their own instance.
"""

from __future__ import annotations

import threading

import pytest
from annotation_helpers import nat, syn, verdict
from annotation_live import Annotators

from hexainst.annotation import labeling_config as lc
from hexainst.annotation import sync
from hexainst.annotation.guidelines import guidelines_html
from hexainst.annotation.outcomes import REASON_CATEGORY, REASON_DECISION
from hexainst.annotation.sync import SyncError, index_project
from hexainst.kernel import validation_file

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio]

# Ten instructions, two junior verdicts each: (decision, category_correct, errors, corrected).
PLAN = [
    (("accept", True, [], None), ("accept", True, [], None)),
    (("accept", True, [], None), ("accept", True, [], None)),
    (("accept", True, [], None), ("accept", True, [], None)),
    (("accept", True, [], None), ("accept", True, [], None)),
    (("accept", True, [], None), ("accept", False, [], None)),  # 4: category disagreement
    (("accept", True, [], None), ("revise", True, [], "Say it better.")),  # 5: decision disagreement
    (("revise", True, ["grammar"], "Fixed text."), ("revise", True, ["grammar"], "Fixed text.")),  # 6: agreed
    (("revise", False, ["grammar"], "Other text."), ("reject", False, [], None)),  # 7: decision disagreement
    (("reject", False, [], None), ("reject", False, [], None)),
    (("reject", True, [], None), ("reject", True, [], None)),
]


def _v(name, spec):
    decision, correct, errors, corrected = spec
    return verdict(name, decision, correct, errors, corrected)


def test_agreement_disagreements_kappa_and_senior_override(ls_session, tmp_path):
    rows = [nat("math", i) for i in range(10)]
    ids = [r["id"] for r in rows]
    reports = ls_session.sync_candidates(rows, progress=False)
    assert {n: (r.n_imported, r.n_present_before) for n, r in reports.items()} == {"junior1": (10, 0), "junior2": (10, 0)}
    people = Annotators(ls_session)
    for iid, (a, _b) in zip(ids, PLAN):
        people.annotate("junior1", iid, _v("junior1", a))
    for iid, (_a, b) in zip(ids, PLAN):
        people.annotate("junior2", iid, _v("junior2", b))

    senior_report, tri = ls_session.sync_senior(progress=False)
    assert tri.disagreements == {ids[4]: REASON_CATEGORY, ids[5]: REASON_DECISION, ids[7]: REASON_DECISION}
    assert tri.revision_conflicts == {}
    assert senior_report.n_imported == 3
    # Rerunning adds nothing.
    again, _ = ls_session.sync_senior(progress=False)
    assert (again.n_imported, again.n_present_before) == (0, 3)

    # The senior's project holds exactly the disagreements, with both junior verdicts as text and no prediction.
    senior = ls_session.senior
    senior_tasks = list(ls_session.client(senior).tasks.list(project=ls_session.project(senior), fields="all"))
    assert sorted(t.data["hexainst_id"] for t in senior_tasks) == sorted([ids[4], ids[5], ids[7]])
    task5 = next(t for t in senior_tasks if t.data["hexainst_id"] == ids[5])
    assert "Decision: Accept" in task5.data["junior_1"] and "Decision: Revise" in task5.data["junior_2"]
    assert "Say it better." in task5.data["junior_2"]
    assert all(not t.predictions and not t.total_predictions for t in senior_tasks)

    doc, result = ls_session.adjudicate()
    ag = doc["rounds"][0]["agreement"]
    assert (ag["n_tasks"], ag["n_double_annotated"], ag["n_disagreements"]) == (10, 10, 3)
    # Hand-computed (see test_agreement.py for the arithmetic):
    # decision pairs acc-acc x5, acc-rev, rev-rev, rev-rej, rej-rej x2 -> kappa = (0.8 - 0.4) / 0.6 = 2/3;
    # category pairs T-T x7, T-F x1, F-F x2 -> kappa = (0.9 - 0.62) / 0.38 = 14/19;
    # grammar: yes-yes (6), yes-no (7), 8 x no-no -> p_o 0.9, p_e 0.74 -> kappa = 0.16 / 0.26 = 8/13.
    assert ag["kappa_decision"] == pytest.approx(2 / 3, abs=1e-9)
    assert ag["kappa_category_correct"] == pytest.approx(14 / 19, abs=1e-9)
    assert ag["error_type_agreement"]["grammar"]["kappa"] == pytest.approx(8 / 13, abs=1e-9)
    assert ag["error_type_agreement"]["grammar"]["percent"] == pytest.approx(90.0)
    assert ag["error_type_agreement"]["unclear"] == {"kappa": None, "percent": 100.0}
    assert ag["n_senior_decided"] == 0 and ag["extra_annotations_ignored"] == 0
    statuses = {o["id"]: o["status"] for o in doc["outcomes"]}
    assert statuses == {
        ids[0]: "accepted", ids[1]: "accepted", ids[2]: "accepted", ids[3]: "accepted",
        ids[6]: "revised", ids[8]: "rejected", ids[9]: "rejected",
    }  # fmt: skip
    assert result.awaiting_senior == sorted([ids[4], ids[5], ids[7]])
    revised = next(o for o in doc["outcomes"] if o["id"] == ids[6])
    assert revised["corrected_instruction"] == "Fixed text."
    assert [v["annotator"] for v in revised["juniors"]] == ["junior1", "junior2"]

    # The senior decides; the senior's decision overrides the juniors'.
    people.annotate("senior", ids[4], verdict("senior", "reject", False, ["wrong_category"]))
    people.annotate("senior", ids[5], verdict("senior", "revise", True, ["unclear"], "Senior text."))
    people.annotate("senior", ids[7], verdict("senior", "accept", True))
    doc, result = ls_session.adjudicate()
    by_id = {o["id"]: o for o in doc["outcomes"]}
    assert len(by_id) == 10 and result.awaiting_senior == []
    assert by_id[ids[4]]["status"] == "rejected"
    assert (by_id[ids[5]]["status"], by_id[ids[5]]["corrected_instruction"]) == ("revised", "Senior text.")
    assert (by_id[ids[7]]["status"], by_id[ids[7]]["corrected_instruction"]) == ("accepted", None)
    assert by_id[ids[7]]["senior"]["annotator"] == "senior"
    assert by_id[ids[7]]["juniors"][0]["decision"] == "revise"
    assert doc["rounds"][0]["agreement"]["n_senior_decided"] == 3
    assert doc["rounds"][0]["agreement"]["kappa_decision"] == pytest.approx(2 / 3, abs=1e-9)  # junior agreement unchanged
    out = validation_file.write(tmp_path / "validation.json", doc)
    assert validation_file.read(out, ids)["outcomes"] == doc["outcomes"]
    assert doc["rounds"][0]["created_from"]["label_studio_version"] == "1.23.2"
    junior_project = doc["rounds"][0]["created_from"]["junior_project"]
    assert "junior1 #" in junior_project and "junior2 #" in junior_project


def test_extra_annotations_on_a_junior_instance_are_ignored_and_reported(ls_session):
    rows = [syn("code", 1), syn("code", 2)]
    ids = [r["id"] for r in rows]
    ls_session.sync_candidates(rows, progress=False)
    people = Annotators(ls_session)
    for iid in ids:
        people.annotate("junior1", iid, verdict("junior1", "accept"))
        people.annotate("junior2", iid, verdict("junior2", "accept"))
    # A second verdict by junior1 on the same task, and one by the toolkit's admin on junior2's instance.
    people.annotate("junior1", ids[0], verdict("junior1", "reject", False, ["unclear"]))
    j2 = ls_session.instance("junior2")
    ls_session.client(j2).annotations.create(
        id=people.task_id("junior2", ids[1]), result=lc.verdict_to_result(verdict("admin", "reject"))
    )
    doc, result = ls_session.adjudicate()
    assert doc["rounds"][0]["agreement"]["extra_annotations_ignored"] == 2
    assert doc["rounds"][0]["agreement"]["n_disagreements"] == 0
    assert {o["id"]: o["status"] for o in doc["outcomes"]} == {ids[0]: "accepted", ids[1]: "accepted"}
    first = next(o for o in doc["outcomes"] if o["id"] == ids[0])
    assert [v["annotator"] for v in first["juniors"]] == ["junior1", "junior2"]
    senior_report, tri = ls_session.sync_senior(progress=False)
    assert senior_report.n_imported == 0 and tri.extra_ignored == {ids[0]: 1, ids[1]: 1}


def test_top_up_sends_only_new_ids_and_leaves_annotated_tasks_alone(ls_session):
    first = [nat("math", i) for i in range(3)]
    ls_session.sync_candidates(first, progress=False)
    people = Annotators(ls_session)
    annotated = first[0]["id"]
    people.annotate("junior1", annotated, verdict("junior1", "revise", True, ["grammar"], "Kept text."))
    j1 = ls_session.instance("junior1")
    task_before = people.task_id("junior1", annotated)
    # A top-up batch: two new candidates, sent with the old ones (whose text changed meanwhile).
    new = [syn("math", 50), syn("math", 51)]
    changed = dict(first[0], instruction="A different text for an annotated candidate.")
    reports = ls_session.sync_candidates([changed, *first[1:], *new], progress=False)
    for name in ("junior1", "junior2"):
        assert (reports[name].n_present_before, reports[name].n_imported) == (3, 2)
        assert reports[name].changed_text == [annotated]
        index = index_project(ls_session.client(name), ls_session.project(ls_session.instance(name)))
        assert sorted(index.tasks) == sorted(r["id"] for r in first + new) and index.duplicates == {}
    # The annotated task is the same task, with its text and its verdict unchanged.
    assert people.task_id("junior1", annotated) == task_before
    task = ls_session.client(j1).tasks.get(task_before)
    assert task.data["instruction"] == first[0]["instruction"]
    anns = ls_session.client(j1).annotations.list(id=task_before)
    assert [a.result[-1]["value"]["text"] for a in anns] == [["Kept text."]]
    again = ls_session.sync_candidates([*first, *new], progress=False)
    assert {n: r.n_imported for n, r in again.items()} == {"junior1": 0, "junior2": 0}


def test_server_killed_mid_import_then_rerun_loses_nothing_duplicates_nothing(ls_session, ls_servers):
    rows = [nat("generation", i) for i in range(230)]
    batches = []

    def crash_junior1_after_two_batches(name: str, done: int, total: int) -> None:
        batches.append((name, done))
        if len(batches) == 2:
            ls_servers["junior1"].kill()  # SIGKILL, as a crash would

    try:
        with pytest.raises(SyncError, match=r"junior1's project: import stopped after 100 of 230 new tasks.*rerun"):
            ls_session.sync_candidates(rows, batch_size=50, on_batch=crash_junior1_after_two_batches, progress=False)
    finally:
        ls_servers["junior1"].start(timeout=300)  # same data dir, same port
    assert batches == [("junior1", 50), ("junior1", 100)]
    reports = ls_session.sync_candidates(rows, batch_size=50, progress=False)
    assert (reports["junior1"].n_present_before, reports["junior1"].n_imported) == (100, 130)
    assert (reports["junior2"].n_present_before, reports["junior2"].n_imported) == (0, 230)
    for name in ("junior1", "junior2"):
        index = index_project(ls_session.client(name), ls_session.project(ls_session.instance(name)))
        assert sorted(index.tasks) == sorted(r["id"] for r in rows)
        assert index.duplicates == {} and index.unkeyed == []
        assert sum(len(v) for v in index.tasks.values()) == 230
    again = ls_session.sync_candidates(rows, progress=False)
    assert {n: (r.n_present_before, r.n_imported) for n, r in again.items()} == {"junior1": (230, 0), "junior2": (230, 0)}


def test_server_killed_during_one_large_request_then_rerun(ls_session, ls_servers):
    # One 1,000-task request; the server is killed (SIGKILL) 0.5 s into the call. Whether the batch
    # had landed, had not, or the kill came during the final check, the rerun ends with each id once.
    j1 = ls_session.instance("junior1")
    tasks = sync.junior_tasks([syn("generalqa", i) for i in range(1000)])
    timer = threading.Timer(0.5, ls_servers["junior1"].kill)
    timer.start()
    try:
        sync.import_missing(ls_session.client(j1), ls_session.project(j1), tasks, batch_size=1000, progress=False)
    except SyncError as exc:
        assert "rerun" in str(exc) or "cannot list tasks" in str(exc)
    finally:
        timer.join()
        ls_servers["junior1"].start(timeout=300)
    report = sync.import_missing(ls_session.client(j1), ls_session.project(j1), tasks, batch_size=1000, progress=False)
    assert report.n_present_before + report.n_imported == 1000
    index = index_project(ls_session.client(j1), ls_session.project(j1))
    assert sorted(index.tasks) == sorted(t["data"]["hexainst_id"] for t in tasks)
    assert index.duplicates == {}


def test_duplicate_tasks_are_repaired_when_empty(ls_session):
    rows = [nat("summarization", i) for i in range(3)]
    ls_session.sync_candidates(rows, progress=False)
    j1 = ls_session.instance("junior1")
    # Someone imports the same file again through the UI: Label Studio accepts the duplicates.
    ls_session.client(j1).projects.import_tasks(ls_session.project(j1), request=[{"data": {
        "hexainst_id": rows[0]["id"], "instruction": rows[0]["instruction"],
        "category": "summarization", "origin": "natural"}}])  # fmt: skip
    assert index_project(ls_session.client(j1), ls_session.project(j1)).duplicates.keys() == {rows[0]["id"]}
    reports = ls_session.sync_candidates(rows, progress=False)
    assert reports["junior1"].duplicates_removed == 1 and reports["junior1"].n_imported == 0
    index = index_project(ls_session.client(j1), ls_session.project(j1))
    assert index.duplicates == {} and sorted(index.tasks) == sorted(r["id"] for r in rows)


def test_projects_are_set_up_per_instance_with_the_guidelines(ls_session):
    from hexainst.annotation import projects as pj

    for inst in ls_session.juniors:
        project = ls_session.client(inst).projects.get(ls_session.project(inst))
        assert project.maximum_annotations == 1 and project.show_collab_predictions is False
        assert "$junior_1" not in project.label_config
        assert project.expert_instruction == guidelines_html() and ">Worked examples</h2>" in project.expert_instruction
        # Setup is idempotent: the same title gives the same project.
        assert pj.ensure_junior_project(ls_session.client(inst), ls_session.junior_title) == ls_session.project(inst)
    senior = ls_session.senior
    project = ls_session.client(senior).projects.get(ls_session.project(senior))
    assert project.maximum_annotations == 1 and "$junior_1" in project.label_config
    assert project.expert_instruction == guidelines_html()
    assert pj.ensure_senior_project(ls_session.client(senior), ls_session.senior_title) == ls_session.project(senior)
    # Each instance has its own database: a junior project exists only on its junior's instance.
    titles = {inst.name: [p.title for p in ls_session.client(inst).projects.list()] for inst in ls_session.instances}
    assert ls_session.senior_title not in titles["junior1"] and ls_session.junior_title not in titles["senior"]
