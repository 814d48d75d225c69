"""The embedded server's decode loop on a tiny gemma3 with sliding-window and full attention layers.

Continuous batching (rows leaving lazily, waiting jobs joining a running batch), shared openings
copied from the prefix cache, prefill split into passes, and the sliding window must leave every
row with the greedy tokens of a plain batch-1 ``generate`` of its prompt alone.
"""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from hexainst.analysis.recording.testing import VOCAB, WORDS, make_tokenizer, tiny_config, tiny_model
from hexainst.builders.synthetic.local_server import Engine, Job, resolve_dtype

WINDOW = 16


@pytest.fixture(scope="module")
def engine():
    config = tiny_config("gemma3")
    config.vocab_size = VOCAB
    config.sliding_window = WINDOW
    config.layer_types = ["sliding_attention", "full_attention", "sliding_attention"]
    model = tiny_model("gemma3", seed=0, config=config)
    tok = make_tokenizer()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    eng = Engine(model, tok, max_batch=3, join_min=1)
    eng.min_prefix = 4  # the tiny prompts share openings of 5 words
    return eng


def prompts(n: int, seed: int) -> list[list[int]]:
    """Token ids of ``n`` prompts: one of two shared openings, then 1-8 words of their own."""
    rng = random.Random(seed)
    openings = ["classify the sentiment of this review", "write a python function that returns"]
    words = sorted(set(WORDS))
    tok = make_tokenizer()
    return [tok(f"{openings[i % 2]} " + " ".join(rng.choice(words) for _ in range(rng.randint(1, 8))))["input_ids"]
            for i in range(n)]


def greedy_alone(engine: Engine, ids: list[int], max_tokens: int) -> str:
    with torch.inference_mode():
        out = engine.model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                    max_new_tokens=max_tokens, do_sample=False)
    new = out[0, len(ids):].tolist()
    stops = [k for k, t in enumerate(new) if t in engine.eos_ids or t == engine.pad_id]
    return engine.tok.decode(new[:stops[0]] if stops else new, skip_special_tokens=True)


def test_rows_joining_and_leaving_a_running_batch_get_the_greedy_tokens_of_batch_one(engine):
    ids = prompts(14, seed=1)
    lengths = [3 + (7 * k) % 9 for k in range(len(ids))]  # answers of 3..11 tokens: rows finish at different steps
    expected = [greedy_alone(engine, i, m) for i, m in zip(ids, lengths)]
    # two rows of one prompt (two candidates of a slot), then single rows; at most 3 rows decode at once
    jobs = [Job("completions", ids[0], lengths[0], 0.0, 1.0, 2, 0, ())]
    jobs += [Job("completions", i, m, 0.0, 1.0, 1, 0, ()) for i, m in zip(ids[1:], lengths[1:])]
    before = dict(engine.stats)
    running, waiting = jobs[:1], list(jobs[1:])
    everyone = list(running)
    engine._run(running, waiting, everyone)
    assert not waiting and len(everyone) == len(jobs)
    got = [job.future.result() for job in jobs]
    assert [r["text"] for r in got[0]] == [expected[0], expected[0]]
    assert [r[0]["text"] for r in got[1:]] == expected[1:]
    stats = {k: engine.stats[k] - before.get(k, 0) for k in engine.stats}
    assert stats["joins"] >= 5  # jobs joined the running batch one after another
    assert stats["prefix_tokens_reused"] > 0  # the two openings were computed once and copied
    # Prompts + answers exceed the window: one pass with padding inside rows would push their
    # openings out of it, so prompts were prefilled in more passes than joins.
    assert stats["prefill_passes"] > stats["joins"]


def test_a_long_run_does_not_grow_its_padding(engine):
    """A batch that keeps running (jobs joining as others finish) drops the columns no row needs:
    its width stays that of its longest row, not the length of the whole run."""
    ids = prompts(40, seed=2)
    jobs = [Job("completions", i, 6, 0.0, 1.0, 1, 0, ()) for i in ids]
    engine.stats["max_width"] = 0
    steps = engine.stats["decode_steps"]
    running, waiting = jobs[:1], list(jobs[1:])
    engine._run(running, waiting, list(running))
    run_steps = engine.stats["decode_steps"] - steps
    longest = max(len(i) for i in ids) + 6
    assert run_steps > 3 * longest  # the run is much longer than any row ...
    assert engine.stats["max_width"] <= longest + WINDOW  # ... its width is not


def test_prefill_passes_minimise_padding_plus_a_cost_per_pass(engine):
    rng = random.Random(3)
    for _ in range(20):
        tails = {(k,): rng.choice([3, 12, 15, 90, 180, 190, 200]) + rng.randint(0, 9) for k in range(rng.randint(1, 7))}
        passes = engine._passes(list(tails), tails)
        assert sorted(ids for p in passes for ids in p) == sorted(tails)

        def cost(partition, tails=tails):
            return sum(engine.PASS_COST_TOKENS + len(p) * max(tails[i] for i in p) for p in partition)

        # every way to split the prompts (sorted by length) into runs: none is cheaper
        order = sorted(tails, key=lambda i: -tails[i])
        best = min(cost([order[a:b] for a, b in zip((0,) + cuts, cuts + (len(order),))])
                   for r in range(len(order)) for cuts in itertools.combinations(range(1, len(order)), r))
        assert cost(passes) == best


def test_dtype_names():
    assert resolve_dtype("float32") == "float32" and resolve_dtype("bfloat16") == "bfloat16"
    assert resolve_dtype("auto") in ("float32", "bfloat16")
    with pytest.raises(ValueError, match="float16"):
        resolve_dtype("float16")


def test_a_join_never_takes_the_batch_past_its_size(engine):
    ids = prompts(6, seed=4)
    running = [Job("completions", ids[0], 8, 0.0, 1.0, 2, 0, ())]
    waiting = [Job("completions", ids[1], 4, 0.0, 1.0, 3, 0, ()), Job("completions", ids[2], 4, 0.0, 1.0, 1, 0, ()),
               Job("completions", ids[3], 4, 0.0, 1.0, 3, 0, ())]
    engine.stats["max_rows"] = 0
    everyone = list(running)
    engine._run(running, waiting, everyone)
    assert not waiting and all(job.future.done() for job in everyone)
    assert engine.stats["max_rows"] <= engine.max_batch  # 3: the jobs of 3 rows waited for a free batch


def test_the_server_answers_bad_requests_with_400_and_samples_good_ones(engine):
    import json
    import threading
    import urllib.error
    import urllib.request

    from hexainst.builders.synthetic.local_server import make_handler
    from hexainst.builders.synthetic.wire import QuietServer

    server = QuietServer(("127.0.0.1", 0), make_handler({"name": "tiny", "engine": engine}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/completions"

    def post(body):
        req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as err:
            return err.code, json.load(err)

    try:
        prompt = "classify the sentiment of this review"
        for bad, says in [({"n": 0}, "n must be >= 1"), ({"top_p": 0}, "top_p in (0, 1]"),
                          ({"max_tokens": 0}, "max_tokens must be >= 1"), ({"stop": [""]}, "stop must be")]:
            status, answer = post({"prompt": prompt, **bad})
            assert status == 400 and says in answer["error"]["message"], (bad, answer)
        status, answer = post({"prompt": prompt, "n": 2, "max_tokens": 5, "temperature": 0.8, "top_p": 0.9, "seed": 7})
        assert status == 200 and len(answer["choices"]) == 2
        assert all(c["finish_reason"] in ("stop", "length") for c in answer["choices"])
        assert 1 <= answer["usage"]["completion_tokens"] <= 10
        with urllib.request.urlopen(url.replace("/completions", "/stats"), timeout=10) as r:
            stats = json.load(r)
        assert stats["decode_steps"] >= 1 and stats["max_batch"] == engine.max_batch
        assert stats["decode_ms"] >= 0 and isinstance(stats["decode_ms"], int)  # where the time went, in ms
    finally:
        server.shutdown()
