"""Fault tests against the real stub server over HTTP: every fault ends in a retry or a recorded
rejection, and the pools come out complete, unique and identical to a fault-free build."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from stage_runs import synthetic_pools

from hexainst.builders.synthetic.client import OfflineCacheMiss
from hexainst.builders.synthetic.config import SyntheticConfig
from hexainst.builders.synthetic.stub_server import Fault, StubServer
from hexainst.kernel.records import validate_rows
from hexainst.kernel.vocab import CATEGORIES


def read_pools(out: Path) -> dict[str, list[dict]]:
    return {c: [json.loads(line) for line in (out / f"{c}.synthetic.jsonl").read_text("utf-8").splitlines()]
            for c in CATEGORIES}


def pool_bytes(out: Path) -> dict[str, bytes]:
    return {c: (out / f"{c}.synthetic.jsonl").read_bytes() for c in CATEGORIES}

PER = 3


def _build(stub, tmp: Path, name: str, **kw):
    out = tmp / name
    kw.setdefault("cache_dir", tmp / f"{name}-cache")
    report = synthetic_pools(out, PER, base_url=stub.base_url, progress=False, concurrency=4, **kw)
    return out, report


def _assert_complete(out: Path) -> dict:
    pools = read_pools(out)
    all_rows = [r for c in CATEGORIES for r in pools[c]]
    validate_rows(all_rows, str(out))  # also checks that ids are unique
    for c in CATEGORIES:
        assert len(pools[c]) == PER, c
        assert all(r["category"] == c and r["validation"]["status"] == "pending" for r in pools[c])
    texts = [r["instruction"] for r in all_rows]
    assert len(set(texts)) == len(texts)
    assert not any("<think" in t or "reasoning" in t.lower() for t in texts)
    return pools


@pytest.fixture
def reference(tmp_path):
    """The pools of a fault-free build (its own stub, its own cache)."""
    with StubServer() as clean:
        out, report = _build(clean, tmp_path, "reference")
    assert report["rejections"] == {}
    return pool_bytes(out)


def _by_fingerprint(stub):
    seen: dict[str, list[dict]] = {}
    for r in stub.requests:
        seen.setdefault(r["fingerprint"], []).append(r)
    return seen


def test_rate_limit_honours_retry_after(stub, tmp_path, reference):
    stub.add_faults([Fault("rate_limit", retry_after=1.5)])
    out, report = _build(stub, tmp_path, "run")
    _assert_complete(out)
    assert pool_bytes(out) == reference
    limited = [r for r in stub.requests if r["fault"] == "rate_limit"]
    assert len(limited) == 1 and limited[0]["status"] == 429
    again = [r for r in _by_fingerprint(stub)[limited[0]["fingerprint"]] if r["status"] == 200]
    assert len(again) == 1
    assert again[0]["time"] - limited[0]["time"] >= 1.4  # waited for Retry-After, not the SDK's 0.5 s backoff
    assert report["request_failures"] == 0


def test_server_error_is_retried(stub, tmp_path, reference):
    stub.add_faults([Fault("server_error"), Fault("server_error")])
    out, report = _build(stub, tmp_path, "run")
    _assert_complete(out)
    assert pool_bytes(out) == reference
    assert [r["status"] for r in stub.requests].count(500) == 2
    assert report["request_failures"] == 0


def test_persistent_server_error_is_a_recorded_rejection(stub, tmp_path):
    doomed: list[str] = []

    def rule(index, body):
        from hexainst.builders.synthetic.stub_server import fingerprint

        fp = fingerprint(body)
        if not doomed:
            doomed.append(fp)
        return Fault("server_error") if fp == doomed[0] else None

    stub.set_rule(rule)
    out, report = _build(stub, tmp_path, "run", max_retries=2)
    _assert_complete(out)
    assert report["request_failures"] == 1
    assert report["rejections"] == {"request_failed": 1}
    assert len(_by_fingerprint(stub)[doomed[0]]) == 3  # first try + 2 SDK retries, then given up


def test_timeout_is_retried(stub, tmp_path, reference):
    stub.add_faults([Fault("hang", delay=4.0)])
    out, report = _build(stub, tmp_path, "run", timeout=1.0)
    _assert_complete(out)
    assert pool_bytes(out) == reference
    hung = [r for r in stub.requests if r["fault"] == "hang"][0]
    answered = [r for r in _by_fingerprint(stub)[hung["fingerprint"]] if r["fault"] is None]
    assert len(answered) == 1 and answered[0]["status"] == 200
    assert report["request_failures"] == 0


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("malformed_json", "malformed_response"), ("empty_content", "empty"), ("length", "truncated"),
     ("think_unclosed", "reasoning_leak"), ("not_json", "invalid_json")],
)
def test_bad_answers_are_rejected_and_the_slot_retried(stub, tmp_path, kind, reason):
    stub.add_faults([Fault(kind)] * 2)
    out, report = _build(stub, tmp_path, "run")
    _assert_complete(out)
    assert report["rejections"] == {reason: 2}
    # every slot still produced one candidate: the bad answers were replaced by retries
    assert all(s["kept"] == PER for s in report["per_category"].values())
    # a malformed body is not cached: the cache holds one entry per 200 answer with a JSON body
    cached = sum(1 for _ in (tmp_path / "run-cache").glob("*/*.json"))
    expected = report["requests"] - (2 if kind == "malformed_json" else 0)
    assert cached == expected


@pytest.mark.parametrize("kind", ["think_inline", "reasoning"])
def test_reasoning_never_reaches_the_instruction(stub, tmp_path, reference, kind):
    stub.add_faults([Fault(kind)] * 5)
    out, report = _build(stub, tmp_path, "run")
    _assert_complete(out)
    assert report["rejections"] == {}
    assert pool_bytes(out) == reference  # same instructions as without the reasoning
    if kind == "reasoning":
        assert report["tokens"]["reasoning"] > 0


def test_rerun_sends_nothing_and_offline_replays(stub, tmp_path):
    out, first = _build(stub, tmp_path, "run")
    n = len(stub.requests)
    assert first["requests"] == n and first["cache_hits"] == 0
    out2, second = _build(stub, tmp_path, "run2", cache_dir=tmp_path / "run-cache")
    assert len(stub.requests) == n and second["requests"] == 0 and second["cache_hits"] == n
    assert pool_bytes(out2) == pool_bytes(out)
    stub.stop()  # offline: no server at all
    out3 = tmp_path / "offline"
    third = synthetic_pools(out3, PER, base_url=stub.base_url, model="stub-model", cache_dir=tmp_path / "run-cache",
                  offline=True, progress=False)
    assert third["requests"] == 0
    assert pool_bytes(out3) == pool_bytes(out)


def test_offline_with_a_missing_entry_names_it(tmp_path):
    with pytest.raises(OfflineCacheMiss, match=r"classification slot 0 candidate 0 attempt 0 .*cache key [0-9a-f]{64}"):
        synthetic_pools(tmp_path / "out", PER, base_url="http://127.0.0.1:9/v1", model="stub-model",
              cache_dir=tmp_path / "empty", offline=True, progress=False)
    assert not (tmp_path / "out" / "math.synthetic.jsonl").exists()


def test_api_key_is_never_written(stub, tmp_path, monkeypatch):
    secret = "sk-test-SECRET-4242"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    out, _ = _build(stub, tmp_path, "run")
    for path in list(out.rglob("*")) + list((tmp_path / "run-cache").rglob("*")):
        if path.is_file():
            assert secret not in path.read_text("utf-8", "replace"), path


def test_crash_mid_run_then_rerun(tmp_path, reference):
    """Kill the CLI (SIGKILL) while requests are in flight; the rerun resends only what was never
    cached, and the result is byte-identical to an uninterrupted build."""
    with StubServer(latency=0.05) as stub:
        stub.set_rule(lambda i, body: Fault("hang", delay=60) if i == 12 else None)
        cache = tmp_path / "cache"
        cmd = [sys.executable, "-m", "hexainst", "build", "synthetic", "--out", str(tmp_path / "out"),
               "--base-url", stub.base_url, "--per-category", str(PER), "--cache", str(cache),
               "--concurrency", "4", "--no-progress"]
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "DEEPSEEK_API_KEY")}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(stub.requests) < 16 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert len(stub.requests) >= 16, proc.stderr.read().decode()
        assert not (tmp_path / "out" / "math.synthetic.jsonl").exists()  # nothing half-written
        cached_before = {p.stem for p in cache.glob("*/*.json")}
        assert len(cached_before) > 0
        stub.set_rule(None)
        stub.reset_log()
        report = synthetic_pools(tmp_path / "out", PER, base_url=stub.base_url, cache_dir=cache, concurrency=4, progress=False)
        # nothing answered and cached before the crash was asked again
        assert report["cache_hits"] == len(cached_before)
        assert report["requests"] == len(stub.requests) >= 1  # at least the request that hung was left to do
        assert len(set(stub.answered_keys())) == len(stub.answered_keys())
        cached_after = {p.stem for p in cache.glob("*/*.json")}
        assert len(cached_after) == len(cached_before) + report["requests"]
    _assert_complete(tmp_path / "out")
    assert pool_bytes(tmp_path / "out") == reference


def test_report_counts(stub, tmp_path):
    out, report = _build(stub, tmp_path, "run")
    rep = json.loads((out / "synthetic-report.json").read_text())
    # every slot asks for each of its candidates once (the stub's answers all parse)
    slots = sum(s["slots"] for s in rep["per_category"].values())
    assert rep["requests"] == len(stub.requests) == slots * rep["candidates_per_slot"] == slots * SyntheticConfig().candidates
    assert rep["tokens"]["prompt"] > 0 and rep["tokens"]["completion"] > 0
    assert rep["generator"]["endpoint_host"] == "127.0.0.1"
    assert {c: s["kept"] for c, s in rep["per_category"].items()} == {c: PER for c in CATEGORIES}
    rows = [r for rs in read_pools(out).values() for r in rs]
    assert Counter(r["provenance"]["synthetic"]["generator_model"] for r in rows) == {"stub-model": 6 * PER}
