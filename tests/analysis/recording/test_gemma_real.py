"""The real pretrained gemma-3-270m (PyPI GGUF): counts within T, stable across runs and batchings."""

from __future__ import annotations

import numpy as np
import pytest

from hexainst.analysis.recording import record
from hexainst.analysis.recording.loading import load_model

pytestmark = pytest.mark.slow

ROWS = [
    {"id": "code-1", "category": "code", "source": "natural",
     "instruction": "Write a Python function that returns the sum of the squares of a list of integers."},
    {"id": "math-1", "category": "math", "source": "natural", "instruction": "Solve for x: 3x + 7 = 22."},
    {"id": "qa-1", "category": "generalqa", "source": "natural", "instruction": "Who wrote the novel Moby-Dick?"},
    {"id": "sum-1", "category": "summarization", "source": "synthetic",
     "instruction": "Summarize the following text in one sentence: The city council voted on Tuesday to build a "
                    "new park on the site of the old rail yard, after two years of public consultation."},
    {"id": "gen-1", "category": "generation", "source": "synthetic", "instruction": "Compose a haiku about autumn."},
]


def test_gemma_counts_within_t_and_stable(gemma_gguf, tmp_path):
    gguf_path, converted = gemma_gguf
    # Through the GGUF path: load_model finds the cached conversion and records the file's hash.
    first = record(str(gguf_path), ROWS, tmp_path / "a", batch_size=4, progress=False)
    header = first.header
    assert header["model"]["config_class"] == "Gemma3TextConfig"
    assert header["model"]["gguf_file"] == gguf_path.name
    assert header["model"]["revision"].startswith("gguf-sha256:a5fd3b62")
    layers, width = 18, 2048
    assert first.n_cols == layers * width and first.n_layers == layers and not first.is_moe
    loaded = load_model(str(converted))
    expected_t = [len(loaded.tokenizer(r["instruction"])["input_ids"]) for r in ROWS]
    assert first.n_tokens.tolist() == expected_t
    assert all(loaded.tokenizer(r["instruction"])["input_ids"][0] == loaded.tokenizer.bos_token_id for r in ROWS)
    counts = first.counts()
    assert counts.dtype == np.uint16
    assert (counts <= first.n_tokens[:, None]).all()
    assert 0 < (counts > 0).mean() < 1  # neither all silent nor all firing
    # A second run, other batch size and padding side, same model object: identical counts.
    second = record(loaded.model, ROWS, tmp_path / "b", tokenizer=loaded.tokenizer, batch_size=1,
                    padding_side="left", progress=False)
    np.testing.assert_array_equal(second.counts(), counts)
    known = first.ids.index("code-1")
    np.testing.assert_array_equal(second.counts([known]), counts[[known]])
    assert second.header["tokenizer"]["sha256"] == header["tokenizer"]["sha256"]


def test_a_conversion_killed_midway_is_cleaned_up_by_the_next_one(gemma_gguf, tmp_path):
    """The GGUF conversion writes into a hidden folder named with its PID; one a killed run left (its PID
    dead) is removed by the next conversion, and the finished folder replaces an earlier one whole."""
    import subprocess

    from hexainst.analysis.recording.loading import convert_gguf

    gguf_path, _ = gemma_gguf
    target = tmp_path / "converted"
    dead = subprocess.Popen(["true"])
    dead.wait()  # a PID that has exited
    leftover = tmp_path / f".converted.new-{dead.pid}-abc123"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half a file")
    target.mkdir()
    (target / "stale.txt").write_text("an earlier, unfinished conversion")
    out = convert_gguf(gguf_path, out_dir=target, progress=False)
    assert out == target and (target / "hexainst-gguf.json").is_file() and not (target / "stale.txt").exists()
    assert not leftover.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted"]  # nothing hidden left beside it
