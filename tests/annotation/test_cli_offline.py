"""CLI errors that need no server: nothing running, no state, no candidates."""

from __future__ import annotations

from hexainst.annotation.server import free_port
from hexainst.annotation.session import Session
from annotation_helpers import ACCOUNTS, ADMIN
from hexainst.cli import main


def test_no_server_running_is_one_clear_line(tmp_path, capsys):
    Session(admin=ADMIN, accounts=ACCOUNTS, url=f"http://127.0.0.1:{free_port()}", junior_project=1,
            senior_project=2).save(tmp_path)  # fmt: skip
    assert main(["annotate", "agreement", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hexainst annotate: error: cannot reach the Label Studio server recorded in")
    assert "hexainst annotate serve --data-dir" in err and "\n" not in err


def test_no_state_and_no_candidates(tmp_path, capsys):
    assert main(["annotate", "export", "--data-dir", str(tmp_path), "--out", str(tmp_path / "v.json")]) == 2
    assert "no annotation state here; run 'hexainst annotate up'" in capsys.readouterr().err
    Session(admin=ADMIN, accounts=ACCOUNTS, url="http://127.0.0.1:9", junior_project=1).save(tmp_path)
    assert main(["annotate", "sync", "--data-dir", str(tmp_path)]) == 2
    assert "name the candidates: --release DIR, --pools DIR ... or --rows FILE" in capsys.readouterr().err
    assert not (tmp_path / "v.json").exists()
    assert (tmp_path / "hexainst-annotation.json").stat().st_mode & 0o077 == 0  # secrets: owner only
