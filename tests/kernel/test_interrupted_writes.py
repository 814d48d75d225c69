"""A run killed while it writes: the next run finds the old output or the new one, whole, and no leftovers.

The release swap is killed for real (``SIGKILL`` from inside ``os.replace``, after each possible
number of renames) in a child process; the staged-folder leftovers are made as a killed run leaves them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from workspace_files import changed_files, snapshot

from hexainst.kernel import atomic
from hexainst.kernel.outputs import claim_release_dir
from hexainst.kernel.release import GENERATIONS_FILE, SWAP_JOURNAL, read_release_rows, write_release


def _kernel_conftest():
    import importlib.util

    spec = importlib.util.spec_from_file_location("kernel_conftest", Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_rows = _kernel_conftest().make_rows


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_killed_runs_staged_folders_are_removed_by_the_next_run(tmp_path: Path) -> None:
    target = tmp_path / "pools"
    with atomic.staged_dir(target) as tmp:
        (tmp / "a.jsonl").write_text("first\n")
    dead = _dead_pid()
    for tag in ("new", "writing"):
        (tmp_path / f".pools.{tag}-{dead}-x1y2").mkdir()
        (tmp_path / f".pools.{tag}-{dead}-x1y2" / "half.jsonl").write_text("half")
    live = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / f".pools.new-{live.pid}-abcd").mkdir()  # a run still writing: not ours to remove
        (tmp_path / ".pools.new-notapid").mkdir()  # not named by us: left alone
        (tmp_path / "notes").mkdir()
        with atomic.staged_dir(target) as tmp:
            (tmp / "a.jsonl").write_text("second\n")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [".pools.new-notapid", f".pools.new-{live.pid}-abcd", "notes", "pools"])
        assert (target / "a.jsonl").read_text() == "second\n"
    finally:
        live.kill()
        live.wait()


def test_a_folder_moved_aside_by_a_killed_swap_is_put_back(tmp_path: Path) -> None:
    """Killed between 'old aside' and 'new in': the target is missing; the next run restores the old one."""
    dead = _dead_pid()
    aside = tmp_path / f".report.old-{dead}-q9"
    aside.mkdir()
    (aside / "report.md").write_text("the last good report\n")
    (tmp_path / f".report.new-{dead}-q8").mkdir()
    atomic.clean_stale_temp_dirs(tmp_path / "report")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    assert (tmp_path / "report" / "report.md").read_text() == "the last good report\n"


_KILL_AFTER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from conftest import make_rows
from hexainst.kernel import release
real, count, limit = os.replace, [0], int(sys.argv[1])
def replace(src, dst):
    if str(src).startswith({out!r}) or str(dst).startswith({out!r}):
        if count[0] == limit:
            os.kill(os.getpid(), signal.SIGKILL)
        count[0] += 1
    real(src, dst)
release.os.replace = replace
real_unlink = release.Path.unlink
def unlink(self, *args, **kwargs):  # limit -1: killed once every rename is done, before the clean-up
    if limit == -1 and self.name == release.SWAP_JOURNAL:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_unlink(self, *args, **kwargs)
release.Path.unlink = unlink
release.write_release(make_rows(per_cell=3), {out!r})
"""


def test_a_release_swap_killed_at_any_rename_leaves_the_old_or_the_new_release(tmp_path: Path) -> None:
    out = tmp_path / "rel"
    write_release(make_rows(per_cell=2), out)
    (out / "code.py").write_text("# the package's code beside the release\n")
    (out / "generations").mkdir()
    (out / GENERATIONS_FILE).write_text('{"answer": 1}\n')
    old_files = snapshot(out)
    script = tmp_path / "kill.py"
    script.write_text(_KILL_AFTER.format(tests=str(Path(__file__).parent), out=str(out)))
    outcomes = set()
    for limit in range(40):
        base = snapshot(out)
        run = subprocess.run([sys.executable, str(script), str(limit)], capture_output=True, text=True)
        if run.returncode == 0:  # more renames asked for than the swap makes: it finished
            assert len(read_release_rows(out)) == 18
            break
        assert run.returncode == -9, run.stderr
        claim_release_dir(out)  # the next run: finishes or undoes the swap
        assert not (out / SWAP_JOURNAL).exists()
        assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
        rows = len(read_release_rows(out))  # a complete release: card, data and all
        assert rows in (12, 18)
        if rows == 12:
            assert changed_files(base, snapshot(out)) == []
        outcomes.add(rows)
        assert (out / "code.py").exists() and (out / GENERATIONS_FILE).read_text() == '{"answer": 1}\n'
    else:
        pytest.fail("the swap never finished")
    assert outcomes == {12}  # every kill before the last rename undone
    write_release(make_rows(per_cell=2), out)
    run = subprocess.run([sys.executable, str(script), "-1"], capture_output=True, text=True)
    assert run.returncode == -9 and (out / SWAP_JOURNAL).exists()
    claim_release_dir(out)  # killed after the last rename: the swap is finished
    assert len(read_release_rows(out)) == 18
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    assert changed_files({k: v for k, v in old_files.items() if k in ("code.py", GENERATIONS_FILE)}, snapshot(out)) == []


def test_a_release_built_without_generations_keeps_the_ones_it_had(tmp_path: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(5)))
    out = write_release(make_rows(per_cell=2), tmp_path / "rel", generations=answers)
    write_release(make_rows(per_cell=3), out)  # 'build release' from pools: no generations of its own
    assert (out / GENERATIONS_FILE).read_bytes() == answers.read_bytes()
    assert len(read_release_rows(out)) == 18


@pytest.mark.parametrize("journal", [
    {"old": "../victim", "before": ["README.md"], "new": []},           # a folder outside the release
    {"old": ".release-old-1-x/../../victim", "before": [], "new": []},  # a path, not a name
    {"old": ".release-old-1-x", "before": ["../victim"], "new": []},    # an entry that is not a release's
])
def test_a_swap_journal_never_makes_the_recovery_touch_what_is_not_ours(tmp_path: Path, journal: dict) -> None:
    from hexainst.kernel.release import ReleaseError, recover_swap

    out = tmp_path / "release"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("a user's file")
    (out / SWAP_JOURNAL).write_text(json.dumps(journal))
    before = snapshot(tmp_path)
    with pytest.raises(ReleaseError, match="cannot be read"):
        recover_swap(out)
    assert snapshot(tmp_path) == before


def test_an_old_entries_folder_of_another_account_is_left_alone(tmp_path: Path) -> None:
    import os

    from hexainst.kernel.release import recover_swap

    if os.getuid() != 0:
        pytest.skip("changing a folder's owner needs root")
    out = tmp_path / "release"
    foreign = out / ".release-old-999999999-abc"  # our name, a dead PID, but another account's folder
    foreign.mkdir(parents=True)
    os.chown(foreign, 65534, 65534)
    recover_swap(out)
    assert foreign.is_dir()
