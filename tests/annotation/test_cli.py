"""``hexainst annotate ...`` against the live server (and a second one for serve/up/stop)."""

from __future__ import annotations

import json
import shutil
import uuid

import httpx
import pytest

from hexainst.annotation import labeling_config as lc
from hexainst.annotation.server import running_pid
from hexainst.annotation.session import Session
from annotation_helpers import ACCOUNTS, ADMIN, nat, verdict
from hexainst.cli import main
from annotation_live import Annotators

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio]


def _write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_round_setup_sync_senior_agreement_export(ls_server, tmp_path, capsys):
    tag = uuid.uuid4().hex[:8]
    state = tmp_path / "state"
    Session(admin=ADMIN, accounts=ACCOUNTS, url=ls_server.url,
            junior_title=f"cli juniors {tag}", senior_title=f"cli senior {tag}").save(state)  # fmt: skip
    d = ["--data-dir", str(state)]

    assert main(["annotate", "setup", *d]) == 0
    out = capsys.readouterr().out
    assert ls_server.url in out and "junior1@hexainst.local  password: junior1-test-pw" in out

    rows = [nat("classification", i) for i in range(3)]
    rows_file = _write_rows(tmp_path / "rows.jsonl", rows)
    assert main(["annotate", "sync", *d, "--rows", str(rows_file)]) == 0
    assert "3 candidates: 0 already in the project, 3 imported" in capsys.readouterr().out
    assert main(["annotate", "sync", *d, "--rows", str(rows_file)]) == 0
    assert "3 candidates: 3 already in the project, 0 imported" in capsys.readouterr().out

    session = Session.load(state)
    juniors = Annotators(session)
    for row, (a, b) in zip(rows, [("accept", "accept"), ("accept", "reject"), ("reject", "reject")]):
        juniors.annotate("junior1", row["id"], verdict("junior1", a))
        juniors.annotate("junior2", row["id"], verdict("junior2", b))
    assert main(["annotate", "senior", *d]) == 0
    out = capsys.readouterr().out
    assert "3 double-annotated, 2 agreed, 1 disagreements" in out and "1 added" in out

    assert main(["annotate", "agreement", *d, "--json"]) == 0
    ag = json.loads(capsys.readouterr().out)
    assert (ag["n_tasks"], ag["n_disagreements"], ag["n_senior_decided"]) == (3, 1, 0)
    # decisions (acc,acc), (acc,rej), (rej,rej): p_o = 2/3, p_e = (2*1 + 1*2)/9 = 4/9 -> kappa = (2/9)/(5/9) = 0.4
    assert ag["kappa_decision"] == pytest.approx(0.4)

    Annotators(session, "senior").annotate("senior", rows[1]["id"], verdict("senior", "reject"))
    out_file = tmp_path / "validation.json"
    assert main(["annotate", "export", *d, "--out", str(out_file), "--save-exports", str(tmp_path / "raw")]) == 0
    assert "3 outcomes (1 accepted, 0 revised, 2 rejected)" in capsys.readouterr().out
    doc = json.loads(out_file.read_text())
    assert {o["id"]: o["status"] for o in doc["outcomes"]} == {
        rows[0]["id"]: "accepted", rows[1]["id"]: "rejected", rows[2]["id"]: "rejected"
    }
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["junior-export.json", "senior-export.json"]

    # A malformed annotation in the export: a clear error naming it, and the old file is kept.
    before = out_file.read_bytes()
    bad = session.client("junior3").annotations.create(
        id=juniors.tasks[rows[0]["id"]][0],
        result=[r for r in lc.verdict_to_result(verdict("junior3", "accept")) if r["from_name"] != "decision"],
    )
    assert main(["annotate", "export", *d, "--out", str(out_file)]) == 2
    err = capsys.readouterr().err
    assert f"junior project export instruction {rows[0]['id']} annotation {bad.id}: the annotation has no decision" in err
    assert out_file.read_bytes() == before


def test_cli_up_detach_then_stop(ls_template, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(ls_template, data)
    # The template was made with ADMIN; a fresh state file would invent another admin.
    Session(admin=ADMIN, accounts=ACCOUNTS[:2] + ACCOUNTS[3:]).save(data)
    rows_file = _write_rows(tmp_path / "rows.jsonl", [nat("math", i) for i in range(4)])
    d = ["--data-dir", str(data)]
    try:
        assert main(["annotate", "up", *d, "--detach", "--rows", str(rows_file)]) == 0
        out = capsys.readouterr().out
        session = Session.load(data)
        assert f"Label Studio: {session.url}" in out
        assert "senior  senior@hexainst.local  password: senior-test-pw" in out
        assert "4 candidates: 0 already in the project, 4 imported" in out
        assert httpx.get(f"{session.url}/health").status_code == 200
        pid, port = running_pid(data)
        assert session.url.endswith(f":{port}")
        # A second server on the same data dir is refused.
        assert main(["annotate", "serve", *d, "--detach"]) == 2
        assert "already serves" in capsys.readouterr().err
    finally:
        assert main(["annotate", "stop", *d]) == 0
    assert "stopped" in capsys.readouterr().out
    assert running_pid(data) is None
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{session.url}/health", timeout=2)
