"""The embedded generator for real (slow: loads SmolLM2-135M on the CPU), and the stub as a process."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from hexainst.builders.synthetic.wire import free_port


def test_stub_runs_as_a_process():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hexainst.builders.synthetic.stub_server", "--port", str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == f"ready http://127.0.0.1:{port}/v1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as r:
            assert json.load(r)["data"][0]["id"] == "stub-model"
        from hexainst.builders.synthetic import prompts

        body = json.dumps({"model": "stub-model", "messages": prompts.chat_messages(prompts.slot("code", 0, 0))})
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            answer = json.load(r)
        instruction = json.loads(answer["choices"][0]["message"]["content"])["instruction"]
        assert instruction.startswith("Write a ") and " function " in instruction
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/stats", timeout=10) as r:
            assert json.load(r)["requests"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_embedded_model_generates_instructions_that_pass_format_checks(tmp_path, capfd):
    from hexainst.builders.synthetic import build
    from hexainst.builders.synthetic.filters import blacklist_hit, format_reason

    report = build(tmp_path / "out", 1, cache_dir=tmp_path / "cache", concurrency=8, progress=False,
                   max_slots_factor=6.0)
    assert report["generator"] == {"model": "embedded:gemma-3-270m", "endpoint_host": "127.0.0.1",
                                   "route": "completions", "embedded": True,
                                   "metaprompt_version": report["generator"]["metaprompt_version"]}
    assert report["requests"] > 0 and report["tokens"]["completion"] > 0
    rows = []
    for path in sorted((tmp_path / "out").glob("*.synthetic.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines()]
    assert rows, report
    for row in rows:
        text = row["instruction"]
        assert format_reason(text) is None and blacklist_hit(text) is None
        assert "<think>" not in text and not text.lstrip().startswith("{")
        assert row["provenance"]["synthetic"]["generator_model"] == "embedded:gemma-3-270m"
    assert "starting the embedded generator" in capfd.readouterr().err
    # a rerun on the same cache sends nothing and does not even start the model server
    again = build(tmp_path / "again", 1, cache_dir=tmp_path / "cache", concurrency=8, progress=False,
                  max_slots_factor=6.0)
    assert again["requests"] == 0 and again["cache_hits"] == report["requests"]
    assert "starting the embedded generator" not in capfd.readouterr().err
    for path in sorted((tmp_path / "out").glob("*.synthetic.jsonl")):
        assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_shared_prefix_cache_does_not_change_greedy_output():
    from hexainst.builders.synthetic import prompts
    from hexainst.builders.synthetic.local_server import Engine, Job, resolve_gguf

    engine = Engine(resolve_gguf("smollm2-135m-instruct"), threads=1, max_batch=8)
    ids = [engine.encode_chat(prompts.chat_messages(prompts.slot("math", k, 0))) for k in range(3)]
    assert len({len(i) for i in ids}) > 1  # different suffix lengths: padding sits between prefix and suffix

    def run():
        return [r[0]["text"] for r in engine._generate([Job("chat", i, 24, 0.0, 1.0, 1, 0, ()) for i in ids])]

    engine.min_prefix = 10**9
    plain = run()
    engine.min_prefix = 16
    cached = run()
    assert len(engine.prefixes) == 1
    assert cached == plain
