"""`hexainst build topup`: cells that validation leaves short get new candidates; nothing selected moves.

A real build (offline mirror + the stub endpoint) with no reserve at all, a validation file that
rejects released rows of one natural and one synthetic cell, then the top-up (slow: ~2 minutes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from validation_docs import rejections

import hexainst
from hexainst.builders.release.select import rank_key
from hexainst.builders.synthetic.stub_server import StubServer
from hexainst.kernel.features import decode_rows
from hexainst.kernel.vocab import CATEGORIES, SOURCES

pytestmark = pytest.mark.slow


def _hexainst(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hexainst", *args], env=env, capture_output=True, text=True,
                          timeout=1800)


def _rows(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in decode_rows(hexainst.load(out))}


def test_topup_fills_short_cells_and_keeps_everything_selected(tmp_path: Path, mirror_dir: Path) -> None:
    env = dict(os.environ, OPENAI_API_KEY="stub-key", HF_HUB_OFFLINE="1")
    env.pop("HEXAINST_BASE_URL", None)
    rates = tmp_path / "rates.json"  # no reserve at all: every rejection leaves its cell short
    rates.write_text(json.dumps({"source": "test", "cells": {f"{c}/{s}": 0.0 for c in CATEGORIES for s in SOURCES}}))
    work, out = tmp_path / "work", tmp_path / "release"
    with StubServer(latency=0.0) as stub:
        common = ["--work", str(work), "--out", str(out), "--sources", str(mirror_dir), "--base-url", stub.base_url,
                  "--model", "stub-model", "--rejection-rates", str(rates)]
        built = _hexainst("build", "all", *common, env=env)
        assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
        before = _rows(out)
        assert hexainst.load_reserve(out) == []
        syn_pool_before = (work / "synthetic" / "math.synthetic.jsonl").read_text().splitlines()

        def released(category: str, source: str) -> list[str]:
            ids = [i for i, r in before.items() if (r["category"], r["source"]) == (category, source)]
            return sorted(ids, key=lambda i: rank_key(0, i))

        rejected = released("math", "synthetic")[:3] + released("code", "natural")[:2]
        (tmp_path / "validation.json").write_text(json.dumps(rejections(rejected)))

        short = _hexainst("build", "release", "--pools", str(work / "natural"), str(work / "synthetic"),
                          "--out", str(tmp_path / "plain"), "--validation", str(tmp_path / "validation.json"),
                          "--rejection-rates", str(rates), env=env)
        # A plain assembly can fill the natural cell from the rest of its large pool; the synthetic pool is spent.
        assert short.returncode == 2
        assert "leaves 1 cell short: math/synthetic by 3 (100 candidates, 3 rejected)" in short.stderr

        requests_before = len(stub.requests)
        topped = _hexainst("build", "topup", "--validation", str(tmp_path / "validation.json"), *common[:-2],
                           "--rejection-rates", str(rates), env=env)
        assert topped.returncode == 0, topped.stdout[-2000:] + topped.stderr[-2000:]
        assert "math/synthetic: 97 usable rows (97 of them pending), short by 3: 3 new candidates" in topped.stdout
        assert "code/natural: 98 usable rows (98 of them pending), short by 2: 2 new candidates" in topped.stdout
        new_requests = stub.requests[requests_before:]
        assert 0 < len(new_requests) < 60  # new slots for 3 candidates, not a rebuild
        fingerprints = [r["fingerprint"] for r in stub.requests]
        assert len(set(fingerprints)) == len(fingerprints)  # no request was sent twice

    after = _rows(out)
    for cell, n_new in ((("math", "synthetic"), 3), (("code", "natural"), 2)):
        kept = [i for i in released(*cell) if i not in rejected]
        now = [i for i, r in after.items() if (r["category"], r["source"]) == cell]
        assert len(now) == 100
        assert set(kept) <= set(now)
        new = set(now) - set(kept)
        assert len(new) == n_new and not new & set(before)
        assert all(after[i]["validation"]["status"] == "pending" for i in new)
    for i, row in before.items():  # every row that was selected and not rejected is still there, unchanged
        if i not in rejected:
            assert after[i]["instruction"] == row["instruction"]
    assert not set(rejected) & set(after)
    # the synthetic pool grew by new slots; its earlier rows are exactly as they were
    syn_pool_after = (work / "synthetic" / "math.synthetic.jsonl").read_text().splitlines()
    assert syn_pool_after[: len(syn_pool_before)] == syn_pool_before or set(syn_pool_before) <= set(syn_pool_after)
    assert len(syn_pool_after) == len(syn_pool_before) + 3

    again = _hexainst("build", "topup", "--validation", str(tmp_path / "validation.json"), "--work", str(work),
                      "--out", str(out), "--rejection-rates", str(rates), env=env)
    assert again.returncode == 0 and "no cell is short" in again.stdout

    # The topped-up release ships what a fresh clone needs: its validation file and its top-up record.
    assert (out / "validation.json").read_bytes() == (tmp_path / "validation.json").read_bytes()
    assert json.loads((out / "topup.json").read_text()) == {"extra": {"code/natural": 2, "math/synthetic": 3}}
    # A fresh clone: the release's files only, a new work folder, an empty request cache, and a new endpoint
    # that must receive no request. 'build all' rebuilds it byte for byte (the shipped validation applied).
    clone = tmp_path / "clone"
    clone.mkdir()
    for entry in ("README.md", "LICENSE.md", "croissant.json", "data", "reserve", "generations", "validation.json",
                  "topup.json"):
        (shutil.copytree if (out / entry).is_dir() else shutil.copyfile)(out / entry, clone / entry)
    with StubServer(latency=0.0) as fresh:
        rebuilt = _hexainst("build", "all", "--work", str(tmp_path / "work2"), "--out", str(clone), "--sources",
                            str(mirror_dir), "--base-url", fresh.base_url, "--model", "stub-model",
                            "--rejection-rates", str(rates), env=dict(env, HEXAINST_CACHE=str(tmp_path / "cache2")))
        assert fresh.requests == []
    assert rebuilt.returncode == 0, rebuilt.stdout[-2000:] + rebuilt.stderr[-2000:]
    assert "applying the validation file the release ships" in rebuilt.stdout
    report = json.loads((tmp_path / "work2" / "synthetic" / "synthetic-report.json").read_text())
    assert report["requests"] == 0
    assert _tree(clone) == _tree(out)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
