"""Faults around a build, through the real command line: a rebuild that would drop answers, a second
writer on the same folder, a reader that closes the pipe. Each asserts what is on disk afterwards."""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from workspace_files import changed_files, fill_disk, pool_rows, snapshot, write_pools

from hexainst.cli import _disk_full_line
from hexainst.kernel.release import GENERATIONS_FILE
from hexainst.kernel.vocab import CATEGORIES


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """pools/ and release/ built from them, the release shipping 3 generator answers."""
    from stage_runs import release_from

    ws = tmp_path_factory.mktemp("faults")
    release_from(write_pools(ws / "pools"), ws / "release")
    (ws / "release" / "generations").mkdir()
    (ws / "release" / GENERATIONS_FILE).write_text("".join(json.dumps({"answer": i}) + "\n" for i in range(3)))
    return ws


@pytest.fixture
def ws(pristine: Path, tmp_path: Path) -> Path:
    shutil.copytree(pristine, tmp_path / "ws")
    return tmp_path / "ws"


def _hexainst(ws: Path, *argv: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "hexainst", *argv], cwd=ws, env=env, text=True, timeout=300,
                          **({"capture_output": True} | kwargs))


def test_a_release_rebuilt_from_pools_keeps_the_generations_it_shipped(ws: Path) -> None:
    answers = (ws / "release" / GENERATIONS_FILE).read_bytes()
    done = _hexainst(ws, "build", "release", "--pools", "pools", "--out", "release", "--seed", "7")
    assert done.returncode == 0, done.stderr
    assert (ws / "release" / GENERATIONS_FILE).read_bytes() == answers
    assert f"kept {GENERATIONS_FILE} of the earlier release (3 answers)" in done.stdout


def test_a_second_build_onto_the_same_folder_gets_one_line(ws: Path) -> None:
    from hexainst.kernel.output_lock import writer_lock

    before = snapshot(ws)
    with writer_lock(ws / "pools" / ".." / "release"):  # another spelling of the same folder
        done = _hexainst(ws, "build", "release", "--pools", "pools", "--out", "release", "--seed", "7")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert f"{ws / 'release'}: another hexainst run is writing this release folder" in lines[0]
    assert changed_files(before, snapshot(ws)) == []
    assert sorted(p.name for p in ws.iterdir()) == ["pools", "release"]


@pytest.mark.parametrize("argv", [["info", "release"], ["validate", "release"]])
def test_a_reader_that_exits_is_no_traceback(ws: Path, argv: list[str]) -> None:
    """``hexainst info | true``: the pipe is closed before the command writes a byte."""
    before = snapshot(ws)
    read, write = os.pipe()
    os.close(read)
    try:
        done = _hexainst(ws, *argv, stdout=write, stderr=subprocess.PIPE, capture_output=False)
    finally:
        os.close(write)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert changed_files(before, snapshot(ws)) == []


def test_a_topup_with_another_builds_work_names_the_work_folder(ws: Path) -> None:
    """--work holds pools of a build that did not make --out: say so, not that the validation file is wrong."""
    from validation_docs import rejections

    from hexainst.builders.natural.pipeline import OUTPUT_KIND as NATURAL_KIND
    from hexainst.builders.synthetic.config import OUTPUT_KIND as SYNTHETIC_KIND
    from hexainst.kernel.outputs import write_marker
    from hexainst.kernel.release import read_release_rows

    for source, kind in (("natural", NATURAL_KIND), ("synthetic", SYNTHETIC_KIND)):
        folder = ws / "other-work" / source
        folder.mkdir(parents=True)
        for c in CATEGORIES:
            rows = pool_rows(c, source, 208)[104:]  # another build's candidates
            (folder / f"{c}.{source}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        write_marker(folder, kind)
    released = sorted(r["id"] for r in read_release_rows(ws / "release"))
    (ws / "validation.json").write_text(json.dumps(rejections(released[:2])))
    before = snapshot(ws)
    done = _hexainst(ws, "build", "topup", "--validation", "validation.json", "--work", "other-work", "--out", "release")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "--work other-work: its pools did not make the release" in lines[0]
    assert "rows, e.g. " in lines[0] and "give the working folder of the build that made it" in lines[0]
    assert changed_files(before, snapshot(ws)) == []


def test_a_full_disk_under_build_release_is_one_line_and_keeps_the_release(ws: Path, small_disk: Path) -> None:
    shutil.copytree(ws / "release", small_disk / "release")
    filler = fill_disk(small_disk)
    before, disk_before = snapshot(ws), snapshot(small_disk)
    done = _hexainst(ws, "build", "release", "--pools", "pools", "--out", str(small_disk / "release"), "--seed", "7")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{small_disk / 'release'}: no space left on the device while writing" in lines[0]
    assert snapshot(ws) == before and snapshot(small_disk) == disk_before
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "release"]
    assert sorted(p.name for p in (small_disk / "release").iterdir() if p.name.startswith(".")) == []
    filler.unlink()
    done = _hexainst(ws, "build", "release", "--pools", "pools", "--out", str(small_disk / "release"), "--seed", "7")
    assert done.returncode == 0, done.stderr


def _set_instruction(text: str):
    def setup(ws: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        file = ws / "release" / "data" / "code.parquet"
        table = pq.read_table(file)
        i = table.schema.get_field_index("instruction")
        values = table.column(i).to_pylist()
        values[5] = text
        pq.write_table(table.set_column(i, table.schema.field(i), pa.array(values, type=table.schema.field(i).type)),
                       file)
    return setup


def _edit_card(old: str, new: str):
    def setup(ws: Path) -> None:
        card = ws / "release" / "README.md"
        assert old in card.read_text()
        card.write_text(card.read_text().replace(old, new, 1))
    return setup


@pytest.mark.parametrize("setup, problem", [
    (_set_instruction("Print a NUL \x00 byte."), "data/code.parquet row 5 (id="),
    (_set_instruction("Print a NUL \x00 byte."), "field 'instruction': holds control characters (\\x00)"),
    (_set_instruction("Summarise this. " + "word " * 200_000), "field 'instruction': 1,000,016 characters, more than"),
    (_edit_card("| math | 100 | 100 | 200 |", "| math | 100 | 90 | 190 |"),
     "README.md: the table of counts says math: 100 / 90 / 190 (natural / synthetic / total), the data has 100 / 100 / 200"),
    (lambda ws: (ws / "release" / "croissant.json").unlink(), "croissant.json: missing"),
], ids=["nul-where", "nul", "one-megabyte", "card-table", "no-croissant"])
def test_validate_checks_what_its_help_says(ws: Path, setup, problem: str) -> None:
    setup(ws)
    before = snapshot(ws)
    done = _hexainst(ws, "validate", "release")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert any(line.startswith("error: ") and problem in line for line in done.stdout.splitlines()), done.stdout
    assert done.stdout.rstrip().endswith("FAILED")
    assert changed_files(before, snapshot(ws)) == []


def test_validate_passes_a_good_release(ws: Path) -> None:
    done = _hexainst(ws, "validate", "release")
    assert done.returncode == 0 and done.stdout.rstrip().endswith("OK"), done.stdout + done.stderr


def test_a_build_piped_into_a_reader_that_exits_still_builds(ws: Path) -> None:
    """``build ... | head -1``: the reader is gone before the first line; the build finishes its work anyway."""
    from hexainst.kernel.release import read_release_rows

    read, write = os.pipe()
    os.close(read)
    try:
        done = _hexainst(ws, "build", "release", "--pools", "pools", "--out", "fresh", stdout=write,
                         stderr=subprocess.PIPE, capture_output=False)
    finally:
        os.close(write)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert len(read_release_rows(ws / "fresh")) == 1200


def test_a_full_disk_names_the_output_folder_that_holds_the_file(tmp_path: Path) -> None:
    """The folder named is the one of --out, --work, --cache that holds the file (--cache is the setting cache_dir)."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = argparse.Namespace(out=out, work=None, cache_dir=cache)
    full = OSError(errno.ENOSPC, "No space left on device", str(cache / "ab" / "entry.json"))
    line = _disk_full_line(args, full)
    assert line.startswith(f"{cache.resolve()}: no space left on the device while writing ({cache.resolve() / 'ab'}")
    assert _disk_full_line(args, OSError(errno.EACCES, "denied", str(out))) is None
