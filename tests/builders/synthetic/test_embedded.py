"""The embedded generator for real (slow: loads SmolLM2-135M on the CPU), and the stub as a process."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from hexainst.kernel.processes import free_port


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
    from stage_runs import synthetic_pools

    from hexainst.builders.synthetic import ranking
    from hexainst.builders.synthetic.filters import blacklist_hit, format_reason

    report = synthetic_pools(tmp_path / "out", 1, cache_dir=tmp_path / "cache", concurrency=8, progress=False,
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
        quality = row["provenance"]["synthetic"]["quality"]
        assert quality["candidates"] == 2 and 0 <= quality["score"] <= 1
        assert {c["name"] for c in quality["components"]} == {"shape", "complete", "topic", "fluency", "no_answer"}
        assert ranking.gate(row["category"], text) is None
    assert "starting the embedded generator" in capfd.readouterr().err
    # a rerun on the same cache sends nothing and does not even start the model server
    again = synthetic_pools(tmp_path / "again", 1, cache_dir=tmp_path / "cache", concurrency=8, progress=False,
                  max_slots_factor=6.0)
    assert again["requests"] == 0 and again["cache_hits"] == report["requests"]
    assert "starting the embedded generator" not in capfd.readouterr().err
    for path in sorted((tmp_path / "out").glob("*.synthetic.jsonl")):
        assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_decode_loop_matches_generate_greedy():
    """The server's own decode loop (shared prefix, one prefill per distinct prompt, rows leaving
    the batch as they finish) gives the tokens of a plain batch-1 ``generate``, greedy."""
    import torch

    from hexainst.builders.synthetic import prompts
    from hexainst.builders.synthetic.examples import ExamplePool
    from hexainst.builders.synthetic.local_server import Engine, Job, resolve_gguf

    engine = Engine.load(resolve_gguf("gemma-3-270m"), threads=2, max_batch=8, dtype="float32")
    pool = ExamplePool.from_natural({})
    texts = [prompts.completion_prompt(prompts.slot("math", k, 0), pool.draw("math", k, 0)) for k in range(3)]
    ids = [engine.encode_text(t) for t in texts]
    assert len({len(i) for i in ids}) > 1  # different lengths: padding sits between prefix and suffix
    expected = []
    for i in ids:
        with torch.inference_mode():
            out = engine.model.generate(input_ids=torch.tensor([i]), attention_mask=torch.ones(1, len(i), dtype=torch.long),
                                        max_new_tokens=12, do_sample=False, pad_token_id=engine.pad_id)
        expected.append(engine.tok.decode(out[0, len(i):].tolist(), skip_special_tokens=True))
    # the first prompt twice (two candidates of one slot), the others once; stop at a line break
    jobs = [Job("completions", ids[0], 12, 0.0, 1.0, 2, 0, ()), Job("completions", ids[1], 12, 0.0, 1.0, 1, 0, ()),
            Job("completions", ids[2], 5, 0.0, 1.0, 1, 0, ())]
    got = engine._generate(jobs)
    assert [r["text"] for r in got[0]] == [expected[0], expected[0]]
    assert got[1][0]["text"] == expected[1]
    assert got[2][0]["completion_tokens"] == 5 and expected[2].startswith(got[2][0]["text"])
    assert len(engine.prefixes) == 1 and engine.stats["prefix_tokens_reused"] > 0  # the shared opening, cached once
    # continuous batching: two jobs wait while the first runs; they join it mid-way (their prefill
    # merged into the running batch, left-padded) and still get the greedy tokens of batch 1
    running = [Job("completions", ids[0], 12, 0.0, 1.0, 1, 0, ())]
    waiting = [Job("completions", ids[1], 12, 0.0, 1.0, 1, 0, ()), Job("completions", ids[2], 12, 0.0, 1.0, 1, 0, ())]
    everyone = list(running)
    engine._run(running, waiting, everyone)
    assert len(everyone) == 3 and not waiting  # both joined the run
    assert [j.future.result()[0]["text"] for j in everyone] == expected
