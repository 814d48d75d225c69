"""``hexainst annotate ...`` against the live round (and a round of its own for up/serve/stop)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
from annotation_helpers import nat, seed_template, verdict
from annotation_live import Annotators

from hexainst.annotation import labeling_config as lc
from hexainst.annotation.accounts import invite_token
from hexainst.annotation.server import port_is_free, running_pid
from hexainst.annotation.session import STATE_FILE, Session
from hexainst.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio]


def _write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_round_setup_sync_senior_agreement_export(ls_round, tmp_path, capsys):
    shared, _ = ls_round
    tag = uuid.uuid4().hex[:8]
    state = tmp_path / "state"
    Session(data_dir=state, instances=shared.instances,
            junior_title=f"cli juniors {tag}", senior_title=f"cli senior {tag}").save()  # fmt: skip
    d = ["--data-dir", str(state)]

    assert main(["annotate", "setup", *d]) == 0
    out = capsys.readouterr().out
    for inst in shared.instances:
        assert f"{inst.url}/projects/" in out and f"login: {inst.account.email}  password: {inst.account.password}" in out

    rows = [nat("classification", i) for i in range(3)]
    rows_file = _write_rows(tmp_path / "rows.jsonl", rows)
    assert main(["annotate", "sync", *d, "--rows", str(rows_file)]) == 0
    out = capsys.readouterr().out
    assert "junior1: 3 candidates, 0 already in the project, 3 new (imported)" in out
    assert "junior2: 3 candidates, 0 already in the project, 3 new (imported)" in out
    # A top-up: one new candidate beside the three.
    topped = _write_rows(tmp_path / "topped.jsonl", [*rows, nat("classification", 99)])
    assert main(["annotate", "sync", *d, "--rows", str(topped)]) == 0
    out = capsys.readouterr().out
    assert "junior1: 4 candidates, 3 already in the project, 1 new (imported)" in out
    assert "junior2: 4 candidates, 3 already in the project, 1 new (imported)" in out

    session = Session.load(state)
    people = Annotators(session)
    for row, (a, b) in zip(rows, [("accept", "accept"), ("accept", "reject"), ("reject", "reject")]):
        people.annotate("junior1", row["id"], verdict("junior1", a))
        people.annotate("junior2", row["id"], verdict("junior2", b))
    assert main(["annotate", "senior", *d]) == 0
    out = capsys.readouterr().out
    assert "3 double-annotated, 2 agreed, 1 disagreements" in out and "1 added" in out

    assert main(["annotate", "agreement", *d, "--json"]) == 0
    ag = json.loads(capsys.readouterr().out)
    assert (ag["n_tasks"], ag["n_disagreements"], ag["n_senior_decided"]) == (4, 1, 0)
    # decisions (acc,acc), (acc,rej), (rej,rej): p_o = 2/3, p_e = (2*1 + 1*2)/9 = 4/9 -> kappa = (2/9)/(5/9) = 0.4
    assert ag["kappa_decision"] == pytest.approx(0.4)

    # junior1 reopens a task, ticks another decision and leaves without Update: a draft, not counted, named.
    junior1 = session.instance("junior1")
    draft = httpx.post(
        f"{junior1.url}/api/tasks/{people.task_id('junior1', rows[0]['id'])}/drafts",
        headers={"Authorization": f"Token {junior1.token}"},
        json={"result": lc.verdict_to_result(verdict("junior1", "reject")), "lead_time": 1.0},
    )  # fmt: skip
    assert draft.status_code == 201, draft.text
    assert main(["annotate", "agreement", *d, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["kappa_decision"] == pytest.approx(0.4)  # the submitted verdicts only
    assert f"warning: junior1 has 1 task(s) with changes not submitted (a draft; not counted here): {rows[0]['id']};" in captured.err
    assert "junior2" not in captured.err

    people.annotate("senior", rows[1]["id"], verdict("senior", "reject"))
    out_file = tmp_path / "validation.json"
    assert main(["annotate", "export", *d, "--out", str(out_file), "--save-exports", str(tmp_path / "raw")]) == 0
    captured = capsys.readouterr()
    assert "3 outcomes (1 accepted, 0 revised, 2 rejected)" in captured.out
    assert "warning: junior1 has 1 task(s) with changes not submitted" in captured.err and rows[0]["id"] in captured.err
    doc = json.loads(out_file.read_text())
    assert {o["id"]: o["status"] for o in doc["outcomes"]} == {
        rows[0]["id"]: "accepted", rows[1]["id"]: "rejected", rows[2]["id"]: "rejected"
    }
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == [
        "junior1-export.json", "junior2-export.json", "senior-export.json"]  # fmt: skip
    # The raw exports hold every verdict and the state file secrets: owner only.
    assert (tmp_path / "raw" / "junior1-export.json").stat().st_mode & 0o077 == 0
    assert (state / STATE_FILE).stat().st_mode & 0o077 == 0

    # A malformed annotation in junior1's export: a clear error naming it, and the old file is kept.
    before = out_file.read_bytes()
    bad = session.client("junior1", as_person=True).annotations.create(
        id=people.task_id("junior1", rows[0]["id"]),
        result=[r for r in lc.verdict_to_result(verdict("junior1", "accept")) if r["from_name"] != "decision"],
    )
    assert main(["annotate", "export", *d, "--out", str(out_file)]) == 2
    err = capsys.readouterr().err
    assert f"junior1's project export instruction {rows[0]['id']} annotation {bad.id}: the annotation has no decision" in err
    assert out_file.read_bytes() == before


#: Whether this test can run a command as another account (``runuser`` needs root).
AS_ANOTHER_ACCOUNT = os.geteuid() == 0 and shutil.which("runuser") is not None


def _as_nobody(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "nobody", "--", *cmd], capture_output=True, text=True, timeout=60)


@pytest.fixture
def open_parent():
    """A folder every account may enter (0755), as a home or project folder is: the round inside must
    protect itself. (pytest's own tmp folders are 0700, where any test of privacy would pass.)"""
    folder = Path(tempfile.mkdtemp(prefix="hexainst-round-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_cli_up_private_restart_stop(ls_template, open_parent, tmp_path, capsys):
    data = seed_template(ls_template, open_parent / "round")
    rows_file = _write_rows(tmp_path / "rows.jsonl", [nat("math", i) for i in range(4)])
    d = ["--data-dir", str(data)]
    try:
        assert main(["annotate", "up", *d, "--detach", "--rows", str(rows_file)]) == 0
        out = capsys.readouterr().out
        session = Session.load(data)
        assert [i.name for i in session.instances] == ["junior1", "junior2", "senior"]
        urls = {i.name: i.url for i in session.instances}
        assert len(set(urls.values())) == 3
        for inst in session.instances:
            assert f"{inst.url}/projects/{session.projects[inst.name]}/data  login: {inst.account.email}" in out
            assert f"{inst.name:<9} {inst.url}  (started)" in out
            assert httpx.get(f"{inst.url}/health").status_code == 200
            pid, port = running_pid(data / inst.name)
            assert inst.url.endswith(f":{port}")
        assert "junior1: 4 candidates, 0 already in the project, 4 new (imported)" in out

        # 1. Private: every file and folder of the round is its owner's only, Label Studio's own files too.
        paths = [data, *data.rglob("*")]
        assert any(p.name == "label_studio.sqlite3" for p in paths)
        loose = [str(p) for p in paths if not p.is_symlink() and p.stat().st_mode & 0o077]
        assert loose == []
        # ... and another account finds nothing it can read (the parent folder it can enter).
        if AS_ANOTHER_ACCOUNT:
            assert _as_nobody("ls", str(open_parent)).returncode == 0
            listing = _as_nobody("ls", str(data))
            assert listing.returncode != 0 and "Permission denied" in listing.stderr
            assert _as_nobody("cat", str(data / "junior2" / "label_studio.sqlite3")).returncode != 0
            assert _as_nobody("find", str(open_parent), "-readable", "-type", "f").stdout == ""
        # No secret in any log: passwords, tokens, the invite link's token.
        secrets = [invite_token(session.client(i)) for i in session.instances]
        for inst in session.instances:
            secrets += [inst.account.password, inst.token, inst.admin.password, inst.admin.token]
        logs = [p for p in data.rglob("*.log")]
        assert logs
        for log in logs:
            text = log.read_text("utf-8", "replace")
            assert not [s for s in secrets if s and s in text], [
                line for line in text.splitlines() if any(s and s in line for s in secrets)]

        # 2. A crash of junior1: serve restarts it alone, on the same URL, and says which are live.
        pid1, _ = running_pid(data / "junior1")
        pid2, _ = running_pid(data / "junior2")
        os.killpg(pid1, signal.SIGKILL)
        port1 = int(urls["junior1"].rsplit(":", 1)[1])
        for _ in range(300):  # the crash is over when the process is gone and the kernel has let its port go
            if running_pid(data / "junior1") is None and port_is_free(port1):
                break
            time.sleep(0.1)
        assert main(["annotate", "serve", *d, "--detach"]) == 0
        out = capsys.readouterr().out
        assert f"junior1   {urls['junior1']}  (started)" in out
        assert f"junior2   {urls['junior2']}  (already running)" in out
        assert f"senior    {urls['senior']}  (already running)" in out
        assert {i.name: i.url for i in Session.load(data).instances} == urls
        assert running_pid(data / "junior2")[0] == pid2 and running_pid(data / "junior1")[0] != pid1
        assert httpx.get(f"{urls['junior1']}/health").status_code == 200
        # Everything running: serve and up change nothing and say so.
        assert main(["annotate", "up", *d, "--detach"]) == 0
        assert capsys.readouterr().out.count("(already running)") == 3
    finally:
        assert main(["annotate", "stop", *d]) == 0
    assert "stopped: junior1, junior2, senior" in capsys.readouterr().out
    for inst in session.instances:
        assert running_pid(data / inst.name) is None
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{inst.url}/health", timeout=2)
    # Stopped and started again: the same URLs (the annotators' links still work).
    try:
        assert main(["annotate", "serve", *d, "--detach"]) == 0
        assert {i.name: i.url for i in Session.load(data).instances} == urls
    finally:
        assert main(["annotate", "stop", *d]) == 0
    if not AS_ANOTHER_ACCOUNT:
        pytest.skip("all but one check passed; reading the round as another account needs root and runuser")


def test_cli_export_previous_adds_a_second_round(ls_round, tmp_path, capsys):
    """A second round (other candidates, its own annotators) exported after round 1's file: both rounds kept."""
    from validation_docs import outcome, validation_doc

    from hexainst.kernel import validation_file

    shared, _ = ls_round
    tag = uuid.uuid4().hex[:8]
    state = tmp_path / "state"
    Session(data_dir=state, instances=shared.instances,
            junior_title=f"round2 juniors {tag}", senior_title=f"round2 senior {tag}").save()  # fmt: skip
    d = ["--data-dir", str(state)]
    assert main(["annotate", "setup", *d]) == 0
    earlier = [nat("generation", i) for i in range(2)]  # decided in round 1, not in this round
    rows = [nat("generation", i) for i in range(10, 12)]
    assert main(["annotate", "sync", *d, "--rows", str(_write_rows(tmp_path / "rows.jsonl", rows))]) == 0
    session = Session.load(state)
    people = Annotators(session)
    for row in rows:
        people.annotate("junior1", row["id"], verdict("junior1", "accept"))
        people.annotate("junior2", row["id"], verdict("junior2", "accept"))
    round1 = tmp_path / "round1.json"
    round1.write_text(json.dumps(validation_doc([outcome(r["id"], "rejected") for r in earlier], version=2)))
    capsys.readouterr()

    out_file = tmp_path / "validation.json"
    assert main(["annotate", "export", *d, "--out", str(out_file), "--previous", str(round1)]) == 0
    printed = capsys.readouterr().out
    assert "round 2: 2 outcomes (2 accepted, 0 revised, 0 rejected)" in printed
    assert f"wrote {out_file}: 2 round(s), 4 outcomes" in printed
    doc = validation_file.read(out_file, [r["id"] for r in earlier + rows])
    assert doc["format_version"] == 3 and [r["round"] for r in doc["rounds"]] == [1, 2]
    assert {o["id"]: (o["round"], o["status"]) for o in doc["outcomes"]} == {
        **{r["id"]: (1, "rejected") for r in earlier}, **{r["id"]: (2, "accepted") for r in rows}}
    first, second = doc["rounds"]
    assert first["annotators"] == validation_doc([], version=2)["annotators"] and first["awaiting_senior"] is None
    assert [a["annotator"] for a in second["annotators"]] == ["junior1", "junior2", "senior"]
    assert second["awaiting_senior"] == [] and second["n_outcomes"] == 2
    assert f"round2 juniors {tag}" in second["created_from"]["junior_project"]

    # The merged file as --previous again: this round's ids were already decided in round 2. One line, nothing written.
    before = out_file.read_bytes()
    assert main(["annotate", "export", *d, "--out", str(out_file), "--previous", str(out_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{rows[0]['id']} was already decided in round 2" in err, err
    assert out_file.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["round1.json", "rows.jsonl", "state", "validation.json"]
