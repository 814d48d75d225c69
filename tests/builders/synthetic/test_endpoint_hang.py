"""An endpoint that lists its model but never answers a completion, reached through a URL with credentials:
the build stops after a bounded time with one line naming the endpoint, credentials redacted everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from workspace_files import changed_files, snapshot

from hexainst.builders.synthetic.config import SyntheticConfig
from hexainst.builders.synthetic.endpoint import redact_url
from hexainst.builders.synthetic.stub_server import Fault, StubServer
from hexainst.builders.whole_build import stage_inputs

SECRET = "s3cret-pass"


def test_a_silent_endpoint_fails_the_build_in_bounded_time_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("the user's file\n")
    before = snapshot(tmp_path)
    with StubServer() as stub:
        stub.set_rule(lambda i, body: Fault("hang", delay=120))
        url = stub.base_url.replace("http://", f"http://alice:{SECRET}@")
        cmd = [sys.executable, "-m", "hexainst", "build", "synthetic", "--out", str(tmp_path / "out"), "--base-url", url,
               "--per-category", "3", "--cache", str(tmp_path / "cache"), "--concurrency", "4", "--no-progress",
               "--timeout", "1"]
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "DEEPSEEK_API_KEY")}
        started = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        took = time.monotonic() - started
        assert stub.requests, "the completions were never asked"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"endpoint {redact_url(url)} answered no completion within 6 s" in lines[0]
    assert "***@127.0.0.1" in lines[0] and SECRET not in done.stderr + done.stdout
    assert took < 40, took  # 1 s per attempt: the deadline, not the 5 attempts of every request
    assert not (tmp_path / "out").exists()
    assert changed_files(before, snapshot(tmp_path)) == []
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text("utf-8", "replace"), path


def test_credentials_in_the_base_url_never_reach_the_stage_file() -> None:
    url = f"https://bob:{SECRET}@llm.example.org:8443/v1"
    assert redact_url(url) == "https://***@llm.example.org:8443/v1"
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    inputs = stage_inputs(SyntheticConfig(base_url=url, model="m"))
    assert inputs["base_url"] == "https://***@llm.example.org:8443/v1"
    assert SECRET not in repr(inputs)


def test_a_full_disk_under_build_synthetic_is_one_line(small_disk: Path) -> None:
    """Pools and request cache on a real 2 MB tmpfs that is full: one line naming the folder, no traceback."""
    from workspace_files import fill_disk

    disk = small_disk
    fill_disk(disk)
    before = snapshot(disk)
    with StubServer() as stub:
        cmd = [sys.executable, "-m", "hexainst", "build", "synthetic", "--out", str(disk / "out"),
               "--base-url", stub.base_url, "--per-category", "3", "--cache", str(disk / "cache"),
               "--concurrency", "4", "--no-progress"]
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "DEEPSEEK_API_KEY")}
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, done.stderr
    assert "no space left on the device while writing" in lines[0] and str(disk) in lines[0]
    assert changed_files(before, snapshot(disk)) == []
    assert not (disk / "out").exists()
