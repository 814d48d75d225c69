"""``hexainst annotate`` mistakes that need no server: one line (exit 2), and nothing touched.

Each case runs the command against a folder made for it and checks the exit status, that the
message is one line naming the thing at fault, and that every file that existed before is
byte-identical after (and no folder was created where none was).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from annotation_helpers import ACCOUNTS, nat

from hexainst.annotation.session import STATE_FILE, Session
from hexainst.cli import main
from hexainst.kernel.processes import free_port


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _round(folder: Path, url: str | None = None) -> Path:
    session = Session.create(folder / "round", ACCOUNTS)
    for inst in session.instances:
        inst.url = url
    session.projects = {inst.name: 1 for inst in session.instances}
    session.save()
    return folder / "round"


def _rows(folder: Path, text: str) -> Path:
    path = folder / "rows.jsonl"
    path.write_text(text)
    return path


def _good_rows(folder: Path) -> Path:
    return _rows(folder, "".join(json.dumps(nat("math", i)) + "\n" for i in range(2)))


def _previous(folder: Path, status: str) -> Path:
    """An earlier round's validation file (format 2) whose one outcome says ``status``; the juniors both accept."""
    from validation_docs import outcome, validation_doc

    entry = outcome(nat("math", 0)["id"], "accepted")
    entry["status"] = status
    path = folder / "round1.json"
    path.write_text(json.dumps(validation_doc([entry], version=2)))
    return path


def _busy_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


CASES = {
    "no round in the folder": (
        lambda t: ["export", "--data-dir", str(t / "nothing"), "--out", str(t / "v.json")],
        "no annotation round here; start one with 'hexainst annotate up",
    ),
    "a round of the earlier single-server toolkit": (
        lambda t: (t.joinpath("old").mkdir(), t.joinpath("old", STATE_FILE).write_text(json.dumps({"admin": {}, "accounts": []})),
                   ["agreement", "--data-dir", str(t / "old")])[-1],
        "a round of an earlier toolkit",
    ),
    "a corrupt state file": (
        lambda t: (t.joinpath("bad").mkdir(), t.joinpath("bad", STATE_FILE).write_text('{"format": "hexainst-annotation-round", '),
                   ["senior", "--data-dir", str(t / "bad")])[-1],
        "unreadable annotation state",
    ),
    "servers not running": (
        lambda t: ["agreement", "--data-dir", str(_round(t, f"http://127.0.0.1:{free_port()}"))],
        "cannot reach junior1's Label Studio at http://127.0.0.1:",
    ),
    "sync without candidates": (
        lambda t: ["sync", "--data-dir", str(_round(t))],
        "name the candidates: --release DIR, --pools DIR ... or --rows FILE",
    ),
    "a rows file that is not JSON lines": (
        lambda t: ["sync", "--data-dir", str(_round(t)), "--rows", str(_rows(t, '{"id": 1}\nnot json\n'))],
        "rows.jsonl",
    ),
    "a rows file with an invalid row": (
        lambda t: ["sync", "--data-dir", str(_round(t)), "--rows", str(_rows(t, json.dumps({"id": "x"}) + "\n"))],
        "row 0",
    ),
    "a missing rows file": (
        lambda t: ["sync", "--data-dir", str(_round(t)), "--rows", str(t / "missing.jsonl")],
        "missing.jsonl",
    ),
    "a missing release folder": (
        lambda t: ["sync", "--data-dir", str(_round(t)), "--release", str(t / "no-release")],
        ("error: --release ", "no-release: no such release folder"),
    ),
    "up into a folder of someone else's files": (
        lambda t: (t.joinpath("mine").mkdir(), t.joinpath("mine", "notes.txt").write_text("keep me"),
                   ["up", "--data-dir", str(t / "mine")])[-1],
        "holds files but no hexainst-annotation.json",
    ),
    "serve a round whose junior folder is gone": (
        lambda t: ["serve", "--data-dir", str(_round(t))],
        "junior1's Label Studio data dir",
    ),
    "up with a bad rows file starts nothing": (
        lambda t: ["up", "--data-dir", str(t / "new"), "--rows", str(_rows(t, "[1]\n"))],
        "rows.jsonl",
    ),
    "export --out is a folder": (
        lambda t: (t.joinpath("out").mkdir(), ["export", "--data-dir", str(_round(t)), "--out", str(t / "out")])[-1],
        ("error: --out ", "out: is a folder; name the validation file to write"),
    ),
    "export --out is someone else's file": (
        lambda t: (t.joinpath("notes.json").write_text('{"mine": 1}'),
                   ["export", "--data-dir", str(_round(t)), "--out", str(t / "notes.json")])[-1],
        ("error: --out ", "notes.json: exists and is not a validation file"),
    ),
    "export --previous is a folder": (
        lambda t: (t.joinpath("earlier").mkdir(),
                   ["export", "--data-dir", str(_round(t)), "--out", str(t / "v.json"), "--previous", str(t / "earlier")])[-1],
        ("error: --previous ", "earlier: is a folder; name the earlier rounds' validation file"),
    ),
    "export --previous is missing": (
        lambda t: ["export", "--data-dir", str(_round(t)), "--out", str(t / "v.json"), "--previous", str(t / "none.json")],
        "none.json: cannot read the validation file",
    ),
    "export --previous whose status contradicts its verdicts": (
        lambda t: ["export", "--data-dir", str(_round(t)), "--out", str(t / "v.json"),
                   "--previous", str(_previous(t, "rejected"))],
        f"round1.json: outcomes[0] (id='{nat('math', 0)['id']}'): status rejected contradicts the agreeing juniors (accepted)",
    ),
    "export --out in a missing folder": (
        lambda t: ["export", "--data-dir", str(_round(t)), "--out", str(t / "no" / "v.json")],
        ("error: --out ", "v.json: the folder ", " does not exist"),
    ),
}


#: Cases that get past the check for the label-studio executable (.ls-venv) before they fail.
NEEDS_SERVER_BINARY = {"serve a round whose junior folder is gone"}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.labelstudio) if c in NEEDS_SERVER_BINARY else c
                                  for c in sorted(CASES)])
def test_user_mistake_is_one_line_and_touches_nothing(case, tmp_path, capsys):
    make_args, expected = CASES[case]
    args = make_args(tmp_path)
    before = _snapshot(tmp_path)
    dirs_before = sorted(p for p in tmp_path.rglob("*") if p.is_dir())
    assert main(["annotate", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hexainst annotate: error: ") and "\n" not in err, err
    for part in expected if isinstance(expected, tuple) else (expected,):
        assert part in err, err
    assert _snapshot(tmp_path) == before
    assert sorted(p for p in tmp_path.rglob("*") if p.is_dir()) == dirs_before


def test_server_not_installed_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HEXAINST_LABEL_STUDIO", str(tmp_path / "no-such-label-studio"))
    assert main(["annotate", "up", "--data-dir", str(tmp_path / "round")]) == 2
    err = capsys.readouterr().err.strip()
    assert "Label Studio server not found at $HEXAINST_LABEL_STUDIO=" in err and "\n" not in err
    assert not (tmp_path / "round").exists()


# labelstudio: the command looks for the label-studio executable (.ls-venv) before it checks the port
@pytest.mark.labelstudio
def test_busy_port_is_refused_before_any_work(tmp_path, capsys):
    sock = _busy_port()
    try:
        port = sock.getsockname()[1]
        assert main(["annotate", "up", "--data-dir", str(tmp_path / "round"), "--port", str(port)]) == 2
    finally:
        sock.close()
    err = capsys.readouterr().err.strip()
    assert f"error: --port {port}: port {port} on 127.0.0.1 (for junior1's Label Studio) is busy" in err and "\n" not in err
    assert not (tmp_path / "round").exists()


@pytest.mark.parametrize(("option", "value", "message"), [("--batch-size", "0", "must be >= 1, got 0"),
                                                          ("--port", "70000", "must be in 1..65535, got 70000"),
                                                          ("--juniors", "0", "must be >= 1, got 0")])
def test_numeric_options_are_range_checked(option, value, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["annotate", "up", "--data-dir", str(tmp_path / "r"), option, value])
    assert exit_info.value.code == 2
    assert f"argument {option}: {message}" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_state_file_holds_secrets_and_is_owner_only(tmp_path):
    folder = _round(tmp_path)
    assert (folder / STATE_FILE).stat().st_mode & 0o077 == 0
