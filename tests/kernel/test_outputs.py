"""Output folders: replaced only when they are the command's own, whole, and with ordinary modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from workspace_files import snapshot, strangers_folders

from hexainst.kernel import atomic
from hexainst.kernel.outputs import (
    MARKER,
    OutputError,
    claim_output_dir,
    claim_release_dir,
    foreign_release_entries,
    write_marker,
)
from hexainst.kernel.release import write_release


def test_new_and_empty_folders_are_claimable(tmp_path: Path) -> None:
    assert claim_output_dir(tmp_path / "new", "report") == (tmp_path / "new").resolve()
    (tmp_path / "empty").mkdir()
    assert claim_output_dir(tmp_path / "empty", "report") == (tmp_path / "empty").resolve()


def test_a_folder_with_someone_elses_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputError, match="was not written by hexainst"):
        claim_output_dir(tmp_path / "mine", "report")


def test_own_output_of_the_same_kind_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "table.csv").write_text("x\n")
    write_marker(out, "report")
    assert claim_output_dir(out, "report") == out.resolve()
    with pytest.raises(OutputError, match="holds a 'report' output, not a 'natural pools' one"):
        claim_output_dir(out, "natural pools")


def test_inputs_are_never_outputs(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "header.json").write_text("{}")
    with pytest.raises(OutputError, match="holds this command's input"):
        claim_output_dir(store, "report", inputs=[store])
    with pytest.raises(OutputError, match="holds this command's input"):
        claim_output_dir(tmp_path, "report", inputs=[store])
    with pytest.raises(OutputError, match="lies inside this command's input"):
        claim_output_dir(store / "report", "report", inputs=[store])
    with pytest.raises(OutputError, match="is a file"):
        claim_output_dir(store / "header.json", "report")


def test_staged_dir_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic.staged_dir(target) as tmp:
        (tmp / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError), atomic.staged_dir(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("the run fails half way")
    assert (target / "a.txt").read_text() == "first"  # the last good output, as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing left beside it
    with atomic.staged_dir(target) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]


def test_files_and_folders_get_ordinary_modes(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic._umask.cache_clear()
        written = atomic.write_text(tmp_path / "x.json", "{}")
        with atomic.staged_dir(tmp_path / "folder") as tmp:
            (tmp / "y").write_text("y")
        secret = atomic.write_text(tmp_path / "token", "s3cret", mode=0o600)
    finally:
        os.umask(old)
        atomic._umask.cache_clear()
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_release_folders_are_recognised_by_their_content(tmp_path: Path, rows) -> None:
    out = write_release(rows, tmp_path / "rel")
    (out / "code.py").write_text("# the package's code lives beside the release\n")
    assert foreign_release_entries(out) == []
    assert claim_release_dir(out) == out.resolve()
    assert not (out / MARKER).exists()  # a release carries no marker of ours: its card is enough
    (out / "data" / "notes.csv").write_text("mine")
    assert foreign_release_entries(out) == ["data/notes.csv"]
    with pytest.raises(OutputError, match=r"not a HexaInst release folder \(data/notes.csv\)"):
        write_release(rows, out)
    assert (out / "data" / "notes.csv").read_text() == "mine"
    assert (out / "code.py").exists()


def test_a_release_into_a_folder_with_a_stranger_readme_is_refused(tmp_path: Path, rows) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "README.md").write_text("# My project\n")
    with pytest.raises(OutputError, match="README.md \\(not a HexaInst dataset card\\)"):
        write_release(rows, folder)
    assert (folder / "README.md").read_text() == "# My project\n"


def test_a_file_the_user_added_to_an_output_folder_is_never_replaced(tmp_path: Path) -> None:
    out = tmp_path / "report"
    with atomic.staged_dir(out) as tmp:
        (tmp / "report.md").write_text("# results\n")
        (tmp / "figures").mkdir()
        (tmp / "figures" / "fig3.png").write_bytes(b"png")
        write_marker(tmp, "analysis report")
    assert claim_output_dir(out, "analysis report") == out.resolve()  # our own files only: replaceable
    (out / "my-notes.txt").write_text("what I concluded")
    with pytest.raises(OutputError, match=r"holds files hexainst did not write there \(my-notes.txt\)"):
        claim_output_dir(out, "analysis report")
    grow = tmp_path / "store"
    grow.mkdir()
    write_marker(grow, "activation store", complete=False)
    (grow / "shard-0.npz").write_bytes(b"x")  # a folder that grows after its marker stays claimable
    assert claim_output_dir(grow, "activation store") == grow.resolve()


def test_an_output_named_by_its_setting_is_refused_naming_the_setting(tmp_path: Path) -> None:
    """A library caller names the setting (``out_dir``); the command line prints the error with its flag."""
    from hexainst.kernel.settings import SettingError

    (tmp_path / "notes.txt").write_text("mine\n")
    with pytest.raises(SettingError) as caught:
        claim_output_dir(tmp_path / "notes.txt", "report", option="out_dir")
    assert isinstance(caught.value, OutputError) and caught.value.setting == "out_dir"
    assert str(caught.value) == f"out_dir {(tmp_path / 'notes.txt').resolve()}: is a file, not a folder; name a folder"
    assert caught.value.naming("--out").startswith(f"--out {(tmp_path / 'notes.txt').resolve()}: is a file")
    with pytest.raises(OutputError, match="^--dry-run .*: is a file") as flagged:  # a flag given: as before
        claim_output_dir(tmp_path / "notes.txt", "report", option="--dry-run")
    assert not isinstance(flagged.value, SettingError)


def test_a_release_into_a_folder_that_is_not_a_release_is_refused_and_changes_nothing(tmp_path: Path, rows) -> None:
    """A folder with files of release names but no card (a user's), one with a user's notes only, and another
    command's output are refused, each in one line naming the folder; every file in them stays as it was."""
    user, notes = strangers_folders(tmp_path)
    pools = tmp_path / "n2"
    pools.mkdir()
    (pools / "math.natural.jsonl").write_text("")
    write_marker(pools, "natural pools")
    for folder, problem in ((user, r"not empty \(LICENSE.md, croissant.json, reserve\) and is not an earlier "
                                   r"HexaInst release \(no README.md card\)"),
                            (notes, r"not empty \(notes.txt\) and is not an earlier HexaInst release"),
                            (pools, r"holds a 'natural pools' output, not a HexaInst release")):
        before = snapshot(folder)
        with pytest.raises(OutputError, match=rf"^--out {folder.resolve()}: .*{problem}.*choose a new or empty folder"):
            write_release(rows, folder)
        assert snapshot(folder) == before
    assert write_release(rows, tmp_path / "fresh") == (tmp_path / "fresh").resolve()  # new and empty stay fine
    (tmp_path / "empty").mkdir()
    assert write_release(rows, tmp_path / "empty") == (tmp_path / "empty").resolve()


def test_rebuilding_an_earlier_release_keeps_the_users_notes_beside_it(tmp_path: Path, rows) -> None:
    out = write_release(rows, tmp_path / "rel")
    (out / "notes.txt").write_text("what I checked\n")
    assert write_release(rows[:-1], out) == out.resolve()
    assert (out / "notes.txt").read_text() == "what I checked\n"
