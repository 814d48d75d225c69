"""Raw generations: exported deterministically, imported into an empty cache, replayed byte for byte;
and the top-up (``extra``) keeps every earlier row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stage_runs import synthetic_pools

from hexainst.builders.synthetic import export_generations, import_generations
from hexainst.builders.synthetic.generations import GenerationsError
from hexainst.kernel.vocab import CATEGORIES

PER = 3


def pools(out: Path) -> dict[str, bytes]:
    return {c: (out / f"{c}.synthetic.jsonl").read_bytes() for c in CATEGORIES}


def test_export_import_replays_byte_identical_pools_with_no_request(stub, tmp_path):
    out = tmp_path / "built"
    synthetic_pools(out, PER, base_url=stub.base_url, cache_dir=tmp_path / "cache", progress=False, concurrency=8)
    used = json.loads((out / "synthetic-requests.json").read_text())["keys"]
    assert len(used) == len(stub.requests)  # every answer the build used, nothing else

    gen_file = tmp_path / "generations.jsonl"
    n = export_generations(tmp_path / "cache", gen_file, used_only_for=out)
    assert n == len(used)
    lines = gen_file.read_text("utf-8").splitlines()
    docs = [json.loads(line) for line in lines]
    assert [d["key"] for d in docs] == sorted(used)
    assert all(set(d) == {"key", "request", "answer"} and d["answer"]["content"] for d in docs)
    assert all(d["request"]["route"] == "chat" and d["request"]["payload"][-1]["role"] == "user" for d in docs)
    copy = tmp_path / "again.jsonl"
    export_generations(tmp_path / "cache", copy, used_only_for=out / "synthetic-requests.json")
    assert copy.read_bytes() == gen_file.read_bytes()  # deterministic

    assert import_generations(gen_file, tmp_path / "fresh") == n
    assert import_generations(gen_file, tmp_path / "fresh") == 0  # already there
    stub.stop()  # nothing to ask: offline, no server at all
    replay = tmp_path / "replay"
    report = synthetic_pools(replay, PER, base_url=stub.base_url, model="stub-model", cache_dir=tmp_path / "fresh",
                   offline=True, progress=False)
    assert report["requests"] == 0 and report["cache_hits"] == n
    assert pools(replay) == pools(out)


def test_import_rejects_a_line_whose_key_does_not_match_its_request(stub, tmp_path):
    out = tmp_path / "built"
    synthetic_pools(out, 1, base_url=stub.base_url, cache_dir=tmp_path / "cache", progress=False)
    gen_file = tmp_path / "g.jsonl"
    export_generations(tmp_path / "cache", gen_file, used_only_for=out)
    lines = gen_file.read_text().splitlines()
    doc = json.loads(lines[1])
    doc["request"]["params"]["temperature"] = 0.1
    lines[1] = json.dumps(doc)
    gen_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(GenerationsError, match=r"g\.jsonl line 2: key .* does not match its request"):
        import_generations(gen_file, tmp_path / "fresh")


def test_top_up_keeps_every_earlier_row_and_asks_only_for_new_slots(stub, tmp_path):
    first = tmp_path / "first"
    synthetic_pools(first, PER, base_url=stub.base_url, cache_dir=tmp_path / "cache", progress=False)
    n_first = len(stub.requests)
    topped = tmp_path / "topped"
    report = synthetic_pools(topped, PER, base_url=stub.base_url, cache_dir=tmp_path / "cache", progress=False,
                   extra={"math": 4})
    before, after = pools(first), pools(topped)
    for c in CATEGORIES:
        if c == "math":
            old, new = before[c].splitlines(), after[c].splitlines()
            assert len(old) == PER and len(new) == PER + 4 and new[:PER] == old
        else:
            assert after[c] == before[c]
    assert report["per_category"]["math"]["target"] == PER + 4
    assert report["cache_hits"] == n_first  # everything generated before was reused
    assert 0 < report["requests"] == len(stub.requests) - n_first
