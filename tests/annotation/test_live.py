"""Against a real Label Studio server: juniors, senior, agreement, faults.

Every annotator is simulated through the API with their own account and token.
"""

from __future__ import annotations

import threading

import pytest

from hexainst.kernel import validation_file
from hexainst.annotation.outcomes import REASON_CATEGORY, REASON_DECISION
from hexainst.annotation.sync import SyncError, index_project
from annotation_helpers import nat, syn, verdict
from annotation_live import Annotators

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
    report = ls_session.sync_candidates(rows, progress=False)
    assert (report.n_imported, report.n_present_before) == (10, 0)
    juniors = Annotators(ls_session)
    for iid, (a, b) in zip(ids, PLAN):
        juniors.annotate("junior1", iid, _v("junior1", a))
    for iid, (a, b) in zip(ids, PLAN):
        juniors.annotate("junior2", iid, _v("junior2", b))

    senior_report, tri = ls_session.sync_senior(progress=False)
    assert tri.disagreements == {ids[4]: REASON_CATEGORY, ids[5]: REASON_DECISION, ids[7]: REASON_DECISION}
    assert tri.revision_conflicts == {}
    assert senior_report.n_imported == 3
    # Rerunning adds nothing.
    again, _ = ls_session.sync_senior(progress=False)
    assert (again.n_imported, again.n_present_before) == (0, 3)

    # The senior project holds exactly the disagreements, with both junior verdicts as data and predictions.
    senior_tasks = list(ls_session.client().tasks.list(project=ls_session.senior_project, fields="all"))
    assert sorted(t.data["hexainst_id"] for t in senior_tasks) == sorted([ids[4], ids[5], ids[7]])
    task5 = next(t for t in senior_tasks if t.data["hexainst_id"] == ids[5])
    assert "Decision: accept" in task5.data["junior_1"] and "Decision: revise" in task5.data["junior_2"]
    assert "Say it better." in task5.data["junior_2"]
    assert sorted(p.model_version for p in task5.predictions) == ["junior-1:junior1", "junior-2:junior2"]

    doc, result = ls_session.adjudicate()
    ag = doc["agreement"]
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
    seniors = Annotators(ls_session, "senior")
    seniors.annotate("senior", ids[4], verdict("senior", "reject", False, ["wrong_category"]))
    seniors.annotate("senior", ids[5], verdict("senior", "revise", True, ["unclear"], "Senior text."))
    seniors.annotate("senior", ids[7], verdict("senior", "accept", True))
    doc, result = ls_session.adjudicate()
    by_id = {o["id"]: o for o in doc["outcomes"]}
    assert len(by_id) == 10 and result.awaiting_senior == []
    assert by_id[ids[4]]["status"] == "rejected"
    assert (by_id[ids[5]]["status"], by_id[ids[5]]["corrected_instruction"]) == ("revised", "Senior text.")
    assert (by_id[ids[7]]["status"], by_id[ids[7]]["corrected_instruction"]) == ("accepted", None)
    assert by_id[ids[7]]["senior"]["annotator"] == "senior"
    assert by_id[ids[7]]["juniors"][0]["decision"] == "revise"
    assert doc["agreement"]["n_senior_decided"] == 3
    assert doc["agreement"]["kappa_decision"] == pytest.approx(2 / 3, abs=1e-9)  # junior agreement unchanged
    out = validation_file.write(tmp_path / "validation.json", doc)
    assert validation_file.read(out, ids)["outcomes"] == doc["outcomes"]
    assert doc["created_from"]["label_studio_version"] == "1.23.2"


def test_third_junior_annotation_is_ignored_and_reported(ls_session):
    rows = [syn("code", 1), syn("code", 2)]
    ids = [r["id"] for r in rows]
    ls_session.sync_candidates(rows, progress=False)
    juniors = Annotators(ls_session)
    for iid in ids:
        juniors.annotate("junior1", iid, verdict("junior1", "accept"))
        juniors.annotate("junior2", iid, verdict("junior2", "accept"))
    juniors.annotate("junior3", ids[0], verdict("junior3", "reject", False, ["unclear"]))
    # The community edition stores the third annotation (it does not enforce overlap).
    export = ls_session.junior_export()
    n_stored = {t["data"]["hexainst_id"]: len(t["annotations"]) for t in export}
    assert n_stored == {ids[0]: 3, ids[1]: 2}
    doc, result = ls_session.adjudicate()
    assert doc["agreement"]["extra_annotations_ignored"] == 1
    assert doc["agreement"]["n_disagreements"] == 0
    first = next(o for o in doc["outcomes"] if o["id"] == ids[0])
    assert first["status"] == "accepted"
    assert [v["annotator"] for v in first["juniors"]] == ["junior1", "junior2"]
    senior_report, tri = ls_session.sync_senior(progress=False)
    assert senior_report.n_imported == 0 and tri.extra_ignored == {ids[0]: 1}


def test_server_killed_mid_import_then_rerun_loses_nothing_duplicates_nothing(ls_session, ls_server):
    rows = [nat("generation", i) for i in range(230)]
    batches = []

    def crash_after_two_batches(done: int, total: int) -> None:
        batches.append(done)
        if len(batches) == 2:
            ls_server.kill()  # SIGKILL, as a crash would

    try:
        with pytest.raises(SyncError, match=r"import stopped after 100 of 230 new tasks.*rerun"):
            ls_session.sync_candidates(rows, batch_size=50, on_batch=crash_after_two_batches, progress=False)
    finally:
        ls_server.start(timeout=300)  # same data dir, same port
    assert batches == [50, 100]
    report = ls_session.sync_candidates(rows, batch_size=50, progress=False)
    assert (report.n_present_before, report.n_imported) == (100, 130)
    index = index_project(ls_session.client(), ls_session.junior_project)
    assert sorted(index.tasks) == sorted(r["id"] for r in rows)
    assert index.duplicates == {} and index.unkeyed == []
    assert sum(len(v) for v in index.tasks.values()) == 230
    again = ls_session.sync_candidates(rows, progress=False)
    assert (again.n_present_before, again.n_imported) == (230, 0)


def test_server_killed_during_one_large_request_then_rerun(ls_session, ls_server):
    # One 1,000-task request; the server is killed (SIGKILL) 0.5 s into the call. Whether the batch
    # had landed, had not, or the kill came during the final check, the rerun ends with each id once.
    rows = [syn("generalqa", i) for i in range(1000)]
    timer = threading.Timer(0.5, ls_server.kill)
    timer.start()
    try:
        ls_session.sync_candidates(rows, batch_size=1000, progress=False)
    except SyncError as exc:
        assert "rerun" in str(exc) or "cannot list tasks" in str(exc)
    finally:
        timer.join()
        ls_server.start(timeout=300)
    report = ls_session.sync_candidates(rows, batch_size=1000, progress=False)
    assert report.n_present_before + report.n_imported == 1000
    index = index_project(ls_session.client(), ls_session.junior_project)
    assert sorted(index.tasks) == sorted(r["id"] for r in rows)
    assert index.duplicates == {}


def test_duplicate_tasks_are_repaired_when_empty(ls_session):
    rows = [nat("summarization", i) for i in range(3)]
    ls_session.sync_candidates(rows, progress=False)
    # Someone imports the same file again through the UI: Label Studio accepts the duplicates.
    ls_session.client().projects.import_tasks(ls_session.junior_project, request=[{"data": {
        "hexainst_id": rows[0]["id"], "instruction": rows[0]["instruction"],
        "category": "summarization", "source": "natural"}}])  # fmt: skip
    assert index_project(ls_session.client(), ls_session.junior_project).duplicates.keys() == {rows[0]["id"]}
    report = ls_session.sync_candidates(rows, progress=False)
    assert report.duplicates_removed == 1 and report.n_imported == 0
    index = index_project(ls_session.client(), ls_session.junior_project)
    assert index.duplicates == {} and sorted(index.tasks) == sorted(r["id"] for r in rows)


def test_projects_are_set_up_for_independent_juniors(ls_session):
    admin = ls_session.client()
    junior = admin.projects.get(ls_session.junior_project)
    assert junior.maximum_annotations == 2
    assert junior.show_collab_predictions is False  # a junior does not see the other's verdict as a prediction
    assert "$junior_1" not in junior.label_config
    senior = admin.projects.get(ls_session.senior_project)
    assert senior.maximum_annotations == 1 and "$junior_1" in senior.label_config
    # Setup is idempotent: the same titles give the same projects.
    from hexainst.annotation import projects as pj

    assert pj.ensure_junior_project(admin, ls_session.junior_title) == ls_session.junior_project
    assert pj.ensure_senior_project(admin, ls_session.senior_title) == ls_session.senior_project
