"""The writer's lock is taken by the library where it writes: a Python caller of a stage is stopped by
another run writing the same folder, and one run that locks a folder twice (the whole build, then its
release stage) takes it once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from stage_runs import release_from
from workspace_files import snapshot, write_pools

from hexainst.kernel import environment
from hexainst.kernel.output_lock import BusyError, lock_path, writer_lock


def test_the_lock_is_re_entrant_within_a_process_and_released_after(tmp_path: Path) -> None:
    with writer_lock(tmp_path / "out") as outer:
        with writer_lock(tmp_path / "x" / ".." / "out") as inner:  # the same folder, spelled otherwise
            assert inner == outer
        assert outer.exists()
    # released: another process takes it at once
    code = "import sys\nfrom hexainst.kernel.output_lock import writer_lock\nwith writer_lock(sys.argv[1]): print('ok')\n"
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_python_caller_of_the_release_stage_is_stopped_by_another_writer(tmp_path: Path) -> None:
    pools = write_pools(tmp_path / "pools")
    out = tmp_path / "release"
    code = ("import sys, time\nfrom hexainst.kernel.output_lock import writer_lock\n"
            "with writer_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = snapshot(tmp_path)
        with pytest.raises(BusyError, match="another hexainst run is writing this release folder"):
            release_from(pools, out)
        assert snapshot(tmp_path) == before and not out.exists()
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_folder_comes_from_xdg_runtime_dir_through_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert environment.runtime_dir() == tmp_path
    assert lock_path(tmp_path / "out").parent == tmp_path / "hexainst-locks"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "absent"))
    assert environment.runtime_dir() is None


def test_the_sources_mirror_falls_back_to_the_environment_in_one_place(tmp_path: Path) -> None:
    assert environment.mirror(tmp_path / "given", env={"HEXAINST_SOURCES": "/m"}) == tmp_path / "given"
    assert environment.mirror(None, env={"HEXAINST_SOURCES": "/m"}) == Path("/m")
    assert environment.mirror(None, env={}) is None
