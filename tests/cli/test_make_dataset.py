"""`make dataset` end to end on the offline mirror with the stub endpoint (slow: a few minutes).

One run is interrupted during the synthetic stage and resumed; a second, fresh build into other
folders must give byte-identical release files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

import hexainst
from hexainst.builders.synthetic.config import SyntheticConfig
from hexainst.builders.synthetic.stub_server import StubServer
from hexainst.kernel.vocab import CATEGORIES, SOURCES

pytestmark = pytest.mark.slow

#: Requests in flight at once in the build (the synthetic stage's default).
CONCURRENCY = SyntheticConfig().concurrency


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def make_dataset(repo_root: Path, mirror: Path, stub: StubServer, work: Path, out: Path) -> list[str]:
    return [
        "make", "--no-print-directory", "-C", str(repo_root), "dataset",
        f"SOURCES={mirror}", f"BASE_URL={stub.base_url}", "MODEL=stub-model",
        f"WORK={work}", f"OUT={out}",
    ]


@pytest.fixture(scope="module")
def env():
    e = dict(os.environ, OPENAI_API_KEY="stub-key", PYTHONUNBUFFERED="1")
    e.pop("HEXAINST_BASE_URL", None)
    return e


@pytest.fixture(scope="module")
def built(tmp_path_factory, repo_root, mirror_dir, env):
    """An interrupted-then-resumed build, and a fresh build of the same inputs."""
    tmp = tmp_path_factory.mktemp("make-dataset")
    result = {}
    with StubServer(latency=0.01) as stub:
        cmd = make_dataset(repo_root, mirror_dir, stub, tmp / "work-a", tmp / "out-a")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        deadline = time.monotonic() + 600
        while not (len(stub.answered_keys()) >= 100 and (tmp / "work-a" / "stages" / "natural.json").exists()):
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "the build did not reach the synthetic stage in time"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
        assert proc.returncode != 0
        assert not (tmp / "work-a" / "stages" / "synthetic.json").exists()
        first_run = stub.answered_keys()
        natural_mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp / "work-a" / "natural").iterdir()}

        resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        second_run = stub.answered_keys()[len(first_run):]
        result.update(resumed=resumed, first_run=first_run, second_run=second_run,
                      natural_mtimes=natural_mtimes, tmp=tmp)

        # A rerun of the synthetic stage alone answers everything from the request cache.
        (tmp / "work-a" / "stages" / "synthetic.json").unlink()
        before = len(stub.requests)
        warm = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
        assert warm.returncode == 0, warm.stdout[-3000:] + warm.stderr[-3000:]
        result["warm_requests"] = len(stub.requests) - before

        fresh = subprocess.run(make_dataset(repo_root, mirror_dir, stub, tmp / "work-b", tmp / "out-b"),
                               env=env, capture_output=True, text=True, timeout=1200)
        assert fresh.returncode == 0, fresh.stdout[-3000:] + fresh.stderr[-3000:]

        # A release ships the generations it used: a new machine (fresh work folder, empty cache)
        # rebuilds it from them without sending a request.
        shutil.copytree(tmp / "out-a", tmp / "out-c")
        before = len(stub.requests)
        replay = subprocess.run(make_dataset(repo_root, mirror_dir, stub, tmp / "work-c", tmp / "out-c"),
                                env=env, capture_output=True, text=True, timeout=1200)
        assert replay.returncode == 0, replay.stdout[-3000:] + replay.stderr[-3000:]
        result["replay_requests"] = stub.requests[before:]
    return result


def test_release_is_balanced_valid_and_loads_in_every_config(built):
    out = built["tmp"] / "out-a"
    ds = hexainst.load(out)  # validates every row against the schema
    assert len(ds) == 1200
    cells = list(zip(ds.features["category"].int2str(ds["category"]), ds.features["source"].int2str(ds["source"])))
    for c in CATEGORIES:
        for s in SOURCES:
            assert cells.count((c, s)) == 100, (c, s)
    assert len(datasets.load_dataset(str(out), split="train")) == 1200
    for c in CATEGORIES:
        sub = datasets.load_dataset(str(out), c, split="train")
        assert len(sub) == 200
        assert set(sub.features["category"].int2str(sub["category"])) == {c}


def test_card_numbers_equal_the_data_and_say_local_build(built):
    out = built["tmp"] / "out-a"
    done = subprocess.run([sys.executable, "-m", "hexainst", "validate", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    card = (out / "README.md").read_text()
    assert "local build" in card
    assert "Validation pending" in card
    assert "`stub-model`" in card


def test_croissant_validates(built):
    mlcroissant = Path(sys.executable).parent / "mlcroissant"
    done = subprocess.run([str(mlcroissant), "validate", "--jsonld", str(built["tmp"] / "out-a" / "croissant.json")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_resume_skips_natural_stage_and_repeats_no_answered_request(built):
    resumed = built["resumed"].stdout + built["resumed"].stderr
    assert "[natural] already done" in resumed
    natural = built["tmp"] / "work-a" / "natural"
    assert {p.name: p.stat().st_mtime_ns for p in natural.iterdir()} == built["natural_mtimes"]
    repeated = set(built["first_run"]) & set(built["second_run"])
    # Only requests still in flight when the run was interrupted (answered by the server, never
    # received by the client) may be sent again: at most one per concurrency slot, all from the end.
    assert len(repeated) <= CONCURRENCY
    assert repeated <= set(built["first_run"][-CONCURRENCY * 2:])
    assert built["warm_requests"] == 0
    assert "load it with" in built["resumed"].stdout


def test_two_builds_are_byte_identical(built):
    a, b = tree_hashes(built["tmp"] / "out-a"), tree_hashes(built["tmp"] / "out-b")
    assert a == b
    assert len(a) >= 10


def test_a_release_rebuilds_from_its_shipped_generations_without_a_request(built):
    out = built["tmp"] / "out-a"
    shipped = out / "generations" / "synthetic.jsonl"
    lines = shipped.read_text().splitlines()
    assert len(lines) >= 600  # every answer the 600 synthetic candidates came from
    assert all(json.loads(line)["answer"]["content"] for line in lines[:50])
    assert built["replay_requests"] == []  # the stub logs every completion request it receives
    assert tree_hashes(built["tmp"] / "out-c") == tree_hashes(out)
