"""A failed synthetic run never touches good pools, fails before long work, and says why in one line."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from stage_runs import synthetic_pools

from hexainst.builders.synthetic.client import EndpointError
from hexainst.builders.synthetic.stub_server import Fault
from hexainst.kernel.outputs import OutputError
from hexainst.kernel.vocab import CATEGORIES

PER = 2


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def good_pools(stub, tmp_path):
    out = tmp_path / "pools"
    synthetic_pools(out, PER, base_url=stub.base_url, cache_dir=tmp_path / "cache", progress=False, concurrency=4)
    assert all((out / f"{c}.synthetic.jsonl").stat().st_size > 0 for c in CATEGORIES)
    return out


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "DEEPSEEK_API_KEY", "HEXAINST_BASE_URL",
                                                            "HEXAINST_MODEL")}
    return subprocess.run([sys.executable, "-m", "hexainst", "build", "synthetic", "--no-progress", *args],
                          capture_output=True, text=True, timeout=120, env={**base, **(env or {})})


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_dead_endpoint_is_one_line_in_seconds_and_pools_stay(good_pools, tmp_path):
    before = snapshot(good_pools)
    proc = cli("--out", str(good_pools), "--base-url", "http://127.0.0.1:1/v1", "--model", "typo",
               "--per-category", str(PER), "--cache", str(tmp_path / "cache2"))
    line = one_line(proc)
    assert "not reachable" in line and "127.0.0.1" in line
    assert snapshot(good_pools) == before


def test_unknown_model_is_named_with_what_the_endpoint_lists(stub, good_pools, tmp_path):
    before = snapshot(good_pools)
    proc = cli("--out", str(good_pools), "--base-url", stub.base_url, "--model", "typo",
               "--per-category", str(PER), "--cache", str(tmp_path / "cache"))
    assert "model 'typo' is not served" in one_line(proc) and "stub-model" in proc.stderr
    assert snapshot(good_pools) == before
    assert stub.requests and all(r["fault"] is None for r in stub.requests)  # only the good build's requests


class _Html(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html><body>Welcome to nginx</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *a):
        pass


def test_an_endpoint_answering_html_is_one_line(good_pools, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        before = snapshot(good_pools)
        proc = cli("--out", str(good_pools), "--base-url", f"http://127.0.0.1:{server.server_port}/v1",
                   "--per-category", str(PER), "--cache", str(tmp_path / "cache3"))
        line = one_line(proc)
        assert "did not answer an OpenAI model list" in line and "text/html" in line
        assert snapshot(good_pools) == before
    finally:
        server.shutdown()


def test_an_endpoint_failing_every_request_stops_the_build_with_its_message(stub, good_pools, tmp_path):
    stub.set_rule(lambda i, body: Fault("server_error"))
    stub.reset_log()
    before = snapshot(good_pools)
    with pytest.raises(EndpointError, match=r"failed the first 3 requests and answered none: .*HTTP 500.*internal error"):
        synthetic_pools(good_pools, PER, base_url=stub.base_url, cache_dir=tmp_path / "cache4", progress=False,
              concurrency=2, max_retries=0)
    assert snapshot(good_pools) == before
    assert 3 <= len(stub.requests) <= 4  # stopped at once (the 2 in flight may finish), not one failure per request


def test_offline_without_a_model_is_one_line(tmp_path):
    proc = cli("--out", str(tmp_path / "o"), "--base-url", "http://127.0.0.1:9/v1", "--offline",
               "--cache", str(tmp_path / "c"))
    assert "--model is needed for an offline replay" in one_line(proc)


def usage_error(proc: subprocess.CompletedProcess) -> str:
    """An argparse error: its usage lines, then one error line (no traceback); that line."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert lines[0].startswith("usage:") and "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in lines if not ln.startswith(("usage:", " "))]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.mark.parametrize(("args", "message"), [
    # ranges declared with each setting: checked as the option is parsed (argparse names the flag)
    (["--per-category", "0"], "argument --per-category: must be >= 1, got 0"),
    (["--candidates", "0"], "argument --candidates: must be in 1..16, got 0"),
    (["--concurrency", "-3"], "argument --concurrency: must be in 1..256, got -3"),
    (["--embedded-batch", "0"], "argument --embedded-batch: must be in 1..256, got 0"),
    (["--temperature", "5"], "argument --temperature: must be in [0, 2], got 5.0"),
    (["--timeout", "0"], "argument --timeout: must be > 0, got 0.0"),
])
def test_numeric_options_are_range_checked(tmp_path, args, message):
    proc = cli("--out", str(tmp_path / "o"), "--base-url", "http://127.0.0.1:9/v1", *args)
    assert message in usage_error(proc)
    assert not (tmp_path / "o").exists()


def test_settings_that_contradict_each_other_are_one_line_naming_the_flag(tmp_path):
    """A check across settings runs in the config (SettingError); the shell names the setting's flag."""
    proc = cli("--out", str(tmp_path / "o"), "--base-url", "http://127.0.0.1:9/v1", "--membership-threshold", "1")
    assert "--membership-threshold needs a membership model" in one_line(proc)
    assert not (tmp_path / "o").exists()


def test_a_foreign_folder_is_refused_before_any_work(stub, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    with pytest.raises(OutputError, match="not written by hexainst"):
        synthetic_pools(mine, PER, base_url=stub.base_url, cache_dir=tmp_path / "cache", progress=False)
    assert (mine / "notes.txt").read_text() == "my notes" and not stub.requests


def test_a_build_failing_midway_leaves_the_previous_pools(good_pools, tmp_path):
    """Offline replay of a larger build: the first slots replay from the cache, then a missing
    entry stops it; the pools of the good build are untouched and nothing is left beside them."""
    from hexainst.builders.synthetic.client import OfflineCacheMiss

    before = snapshot(good_pools)
    with pytest.raises(OfflineCacheMiss):
        synthetic_pools(good_pools, PER + 5, base_url="http://127.0.0.1:9/v1", model="stub-model", offline=True,
              cache_dir=tmp_path / "cache", progress=False)
    assert snapshot(good_pools) == before
    assert sorted(p.name for p in good_pools.parent.iterdir()) == ["cache", "pools"]
