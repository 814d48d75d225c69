"""Annotating as a person does: a real headless Chromium on the real Label Studio instances of a round.

* The labelling screen renders for juniors and the senior, with no console error; a broken config
  (the old boolean-looking aliases) is caught by the same check.
* A junior annotates through the screen (clicks, typed text, Submit) and the verdict reaches
  validation.json through ``hexainst annotate export``.
* Junior A finds no trace of junior B's verdict: not on the labelling screen, not in the Data
  Manager with every column shown, not in the task view, not through the API with A's own token,
  and A's login and token do not work on B's or the senior's instance.
* The senior sees both verdicts side by side, with nothing pre-selected.

Screenshots of the junior's and the senior's screens are saved under the test's folder, or under
``$HEXAINST_SCREENSHOTS`` when set (``docs/annotation`` to refresh the ones in the docs).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import httpx
import pytest
from annotation_browser import Person, launch
from annotation_helpers import nat, verdict
from annotation_live import Annotators

from hexainst.annotation import labeling_config as lc
from hexainst.annotation.session import Session
from hexainst.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio, pytest.mark.browser]

LABELS = {group: {token: entry["label"] for token, entry in table.items()} for group, table in lc.labels().items()}
#: What only junior B types: if it shows up anywhere junior A can look, A is not blind.
B_SECRET = "Text typed by junior2 alone: zebra-7f3a."
A_TEXT = "Which planet in the solar system has the most moons?"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    return Path(os.environ.get("HEXAINST_SCREENSHOTS") or tmp_path / "screenshots")


def _wait_for_annotations(session, name: str, task_id: int, n: int, timeout: float = 30.0) -> list:
    client = session.client(name)
    deadline = time.monotonic() + timeout
    while True:
        anns = list(client.annotations.list(id=task_id))
        if len(anns) >= n or time.monotonic() > deadline:
            return anns
        time.sleep(0.5)


def test_editor_renders_and_a_broken_config_is_caught(ls_session, browser, shots):
    row = nat("math", 1, "Solve for x: 3x - 5 = 16.")
    ls_session.sync_candidates([row], progress=False)
    a = ls_session.instance("junior1")
    # A project with the old config (alias="true"/"false", read as booleans by the editor), beside ours.
    broken_config = lc.junior_config().replace('alias="yes"', 'alias="true"').replace('alias="no"', 'alias="false"')
    admin = ls_session.client(a)
    broken = admin.projects.create(title=f"broken {ls_session.junior_title}", label_config=broken_config)
    admin.projects.import_tasks(broken.id, request=[{"data": {
        "hexainst_id": row["id"], "instruction": row["instruction"], "category": "math", "origin": "natural"}}])  # fmt: skip

    person = Person(browser, a)
    try:
        assert person.login()
        person.open(f"/projects/{ls_session.project(a)}/data?labeling=1")
        # The guidelines open first, rendered from annotation/guidelines.md.
        person.page.get_by_text("Worked examples", exact=True).first.wait_for()
        # Its lists keep their numbers (Label Studio's style sheet removes them; guidelines.py puts them back).
        numbered = person.page.locator(".hexainst-guidelines ol").first
        assert numbered.evaluate("e => getComputedStyle(e).listStyleType") == "decimal"
        person.screenshot(shots / "guidelines-panel.png")
        person.close_instructions()
        person.wait_for_editor(row["instruction"])
        for label in (*LABELS["category_correct"].values(), *LABELS["errors"].values(), *LABELS["decision"].values()):
            assert person.choice(label).is_visible(), label
        body = person.page.inner_text("body")
        # a junior sees the claimed category, never the origin (natural or synthetic): it biases the verdict
        assert "Claimed category: math" in body
        assert "natural" not in body.lower() and "synthetic" not in body.lower()

        person.open(f"/projects/{broken.id}/data?labeling=1")
        person.close_instructions()
        deadline = time.monotonic() + 20
        while not person.problems and time.monotonic() < deadline:
            person.page.wait_for_timeout(500)
        # The editor fails on the boolean alias (a mobx-state-tree type error or ERR_BAD_TYPE) and shows nothing.
        assert any("mobx-state-tree" in p or "ERR_BAD_TYPE" in p for p in person.problems), person.problems
        assert not person.page.get_by_text(row["instruction"], exact=True).is_visible()
        with pytest.raises(AssertionError, match="the browser reported"):
            person.assert_no_problems()
    finally:
        person.close()


CODE = (
    "Complete the function:\n\n"
    "def add(a, b):\n"
    '    """Return the sum of a and b.\n\n'
    "    >>> add(2, 3)\n"
    "    5\n"
    '    """\n'
)

#: The computed style and the text as drawn, of the innermost element that holds the whole code.
_DRAWN = """() => {
  const all = [...document.querySelectorAll('body *')].filter(e => (e.textContent || '').includes('def add(a, b):')
      && (e.textContent || '').includes('>>> add(2, 3)'));
  const e = all[all.length - 1];
  const s = getComputedStyle(e);
  return {font: s.fontFamily, space: s.whiteSpace, text: e.innerText};
}"""


def test_code_is_drawn_monospace_with_its_indentation(ls_session, browser, shots):
    row = nat("code", 1, CODE)
    ls_session.sync_candidates([row], progress=False)
    a = ls_session.instance("junior1")
    person = Person(browser, a)
    try:
        assert person.login()
        person.open(f"/projects/{ls_session.project(a)}/data?labeling=1")
        person.close_instructions()
        person.page.get_by_text("Is the claimed category correct?", exact=True).first.wait_for()
        person.page.get_by_text("def add(a, b):").first.wait_for()
        drawn = person.page.evaluate(_DRAWN)
        assert "monospace" in drawn["font"], drawn
        assert drawn["space"] in ("pre-wrap", "pre", "break-spaces"), drawn
        # What the annotator sees keeps every leading space and line break of the docstring.
        assert '    """Return the sum of a and b.\n\n    >>> add(2, 3)\n    5\n' in drawn["text"], drawn
        person.screenshot(shots / "code-screen.png")
        person.assert_no_problems()
    finally:
        person.close()


def test_junior_annotates_blind_and_the_senior_sees_both_with_nothing_preselected(ls_session, browser, tmp_path, shots):
    x = nat("generalqa", 10, "Wich planet in the solar system have the most moons.")
    y = nat("summarization", 11, "Write a poem about the sea at night.")
    ls_session.sync_candidates([x, y], progress=False)
    a, b = ls_session.instance("junior1"), ls_session.instance("junior2")
    people = Annotators(ls_session)
    # Junior B has already given their verdicts (through the API, with B's own token).
    b_x = people.annotate("junior2", x["id"], verdict("junior2", "revise", True, ["unclear"], B_SECRET))
    people.annotate("junior2", y["id"], verdict("junior2", "reject", False, ["wrong_category"]))
    x_task, y_task = people.task_id("junior1", x["id"]), people.task_id("junior1", y["id"])

    person = Person(browser, a)
    try:
        assert person.login()
        # ---- the labelling screen (the "Label All Tasks" stream) ----------------------------------
        person.open(f"/projects/{ls_session.project(a)}/data?labeling=1")
        person.close_instructions()
        person.wait_for_editor(x["instruction"])
        assert B_SECRET not in person.html() and "junior2" not in person.html()
        assert person.checked_choices() == []  # nothing pre-ticked: no one's verdict is shown as a default
        person.tick(LABELS["category_correct"]["yes"])
        person.tick(LABELS["errors"]["grammar"])
        person.type_correction(A_TEXT)
        person.tick(LABELS["decision"]["revise"])
        person.screenshot(shots / "junior-screen.png")
        person.submit()
        (mine,) = _wait_for_annotations(ls_session, "junior1", x_task, 1)
        # The stream moves on to the next task.
        person.wait_for_editor(y["instruction"])
        assert person.checked_choices() == []
        person.tick(LABELS["category_correct"]["no"])
        person.tick(LABELS["errors"]["wrong_category"])
        person.tick(LABELS["decision"]["reject"])
        person.submit()
        assert len(_wait_for_annotations(ls_session, "junior1", y_task, 1)) == 1
        person.assert_no_problems()

        # ---- the Data Manager, every column shown ------------------------------------------------
        person.open(f"/projects/{ls_session.project(a)}/data")
        page = person.page
        page.get_by_role("button", name="Columns").click()
        toggles = page.locator('input[type=checkbox]:not([aria-label^="Select"])')
        for _ in range(60):
            unchecked = [t for t in toggles.all() if not t.is_checked()]
            if not unchecked:
                break
            unchecked[0].click()
        assert toggles.count() >= 15 and all(t.is_checked() for t in toggles.all())
        # Reload with every column on, keeping what the Data Manager fetched for them: its cells cut long
        # values short on the screen, so the data behind them is checked as well as the page.
        fetched: list[str] = []

        def keep(response) -> None:
            if "/api/tasks" in response.url or "/api/dm/" in response.url:
                # any error: a response of the page we navigated away from
                with contextlib.suppress(Exception):
                    fetched.append(response.text())

        page.on("response", keep)
        person.open(f"/projects/{ls_session.project(a)}/data")
        page.get_by_text("Annotation results").first.wait_for()
        page.get_by_text("choices: [yes]").first.wait_for()  # A's own verdict, in the results column
        person.screenshot(shots / "data-manager-all-columns.png")
        table, data = person.html(), "\n".join(fetched)
        assert A_TEXT in data and x["instruction"] in data  # the full results of A's own verdicts
        assert B_SECRET not in table + data and "junior2" not in table + data

        # ---- the task view (a task opened from the Data Manager) ---------------------------------
        person.open(f"/projects/{ls_session.project(a)}/data?task={x_task}")
        person.page.get_by_text(x["instruction"], exact=True).first.wait_for()
        view = person.html()
        assert B_SECRET not in view and "junior2" not in view
        # The only verdict on the task is A's own, as A gave it on the screen.
        assert [a.id for a in ls_session.client(a).annotations.list(id=x_task)] == [mine.id]
        person.assert_no_problems()

        # ---- B's and the senior's instances refuse A's login -------------------------------------
        for other in (b, ls_session.senior):
            assert not person.login(url=other.url), f"junior1 logged in on {other.name}'s instance"
    finally:
        person.close()

    # ---- the API with A's own token ---------------------------------------------------------------
    with httpx.Client(base_url=a.url, headers={"Authorization": f"Token {a.token}"}, timeout=60) as api:
        emails = sorted(u["email"] for u in api.get("/api/users/").json())
        assert emails == sorted([a.admin.email, a.account.email])
        seen = [json.dumps(api.get("/api/users/").json())]
        for project in api.get("/api/projects/", params={"page_size": 1000}).json()["results"]:
            pid = project["id"]
            tasks = api.get("/api/tasks/", params={"project": pid, "fields": "all", "page_size": 1000}).json()["tasks"]
            seen.append(json.dumps(tasks))
            for task in tasks:
                anns = api.get(f"/api/tasks/{task['id']}/annotations/").json()
                seen.append(json.dumps(anns))
                seen += [json.dumps(api.get(f"/api/annotations/{ann['id']}/").json()) for ann in anns]
            seen.append(api.get(f"/api/projects/{pid}/export", params={"exportType": "JSON"}).text)
        everything = "\n".join(seen)
        assert x["instruction"] in everything and A_TEXT in everything  # A does see A's own work
        assert B_SECRET not in everything and "junior2" not in everything
        # B's annotation id exists on B's instance only; on A's it is A's own annotation or nothing.
        got = api.get(f"/api/annotations/{b_x}/")
        assert got.status_code == 404 or B_SECRET not in got.text
    for other in (b, ls_session.senior):
        assert httpx.get(f"{other.url}/api/projects/", headers={"Authorization": f"Token {a.token}"}).status_code == 401

    # ---- the verdict typed on the screen reaches validation.json (the toolkit's export) ----------
    state = tmp_path / "state"
    Session(data_dir=state, instances=ls_session.instances, junior_title=ls_session.junior_title,
            senior_title=ls_session.senior_title, projects=dict(ls_session.projects)).save()  # fmt: skip
    assert main(["annotate", "senior", "--data-dir", str(state)]) == 0
    out = tmp_path / "validation.json"
    assert main(["annotate", "export", "--data-dir", str(state), "--out", str(out)]) == 0
    outcomes = {o["id"]: o for o in json.loads(out.read_text())["outcomes"]}
    assert list(outcomes) == [y["id"]]  # x waits for the senior (both revise, different texts)
    assert outcomes[y["id"]]["status"] == "rejected"
    by_annotator = {v["annotator"]: v for v in outcomes[y["id"]]["juniors"]}
    assert by_annotator["junior1"] == verdict("junior1", "reject", False, ["wrong_category"])

    # ---- the senior: both verdicts side by side, nothing pre-selected ----------------------------
    senior = ls_session.senior
    (task,) = ls_session.client(senior).tasks.list(project=ls_session.project(senior), fields="all")
    assert task.data["hexainst_id"] == x["id"] and not task.predictions
    person = Person(browser, senior)
    try:
        assert person.login()
        person.open(f"/projects/{ls_session.project(senior)}/data?labeling=1")
        person.close_instructions()
        person.wait_for_editor(x["instruction"])
        text = person.page.inner_text("body")
        assert "Junior 1" in text and "Junior 2" in text
        assert A_TEXT in text and B_SECRET in text
        assert text.count("Decision: Revise") == 2
        # The panes speak the questions' labels, never the stored tokens.
        assert "Decision: revise" not in text and "wrong_category" not in text
        assert "both juniors revise, with different corrected texts" in text
        assert person.checked_choices() == []
        assert person.page.get_by_placeholder("The full corrected instruction").input_value() == ""
        person.screenshot(shots / "senior-screen.png")
        person.assert_no_problems()
    finally:
        person.close()
    for name in ("junior-screen.png", "senior-screen.png"):
        assert (shots / name).stat().st_size > 20_000  # a real rendering, not a blank page
