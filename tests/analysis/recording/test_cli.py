"""The ``hexainst record`` command on a real (tiny) release and a model saved to disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hexainst.analysis.recording import ActivationStore, record
from hexainst.analysis.recording.testing import make_rows, make_tokenizer, tiny_model
from hexainst.cli import main
from hexainst.kernel.records import natural_row


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny_model("llama").save_pretrained(folder)
    make_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory) -> Path:
    from hexainst.kernel.release import write_release

    rows = [
        natural_row(category=r["category"], instruction=r["instruction"], license="mit", source_name="test",
                    dataset_id="made/up", revision="0" * 40, config=None, split="test", row_id=r["id"],
                    task_name=None, pattern_id="p1")
        for r in make_rows(12, seed=3)
    ]
    return write_release(rows, tmp_path_factory.mktemp("rel") / "release")


def test_record_command_reads_the_release_and_writes_a_store(model_dir, release_dir, tmp_path, capsys):
    import hexainst

    out = tmp_path / "store"
    code = main(["record", "--model", str(model_dir), "--release", str(release_dir), "--out", str(out),
                 "--batch-size", "4", "--limit", "9", "--rows-per-shard", "4"])
    assert code == 0
    assert f"recorded 9 instructions: 9 instructions x 144 neurons in {out.resolve()}, every shard checked" \
        in capsys.readouterr().out
    store = ActivationStore.open(out)
    ds = hexainst.load(release_dir)
    assert store.ids == ds["id"][:9]
    assert store.categories == [ds.features["category"].int2str(c) for c in ds["category"][:9]]
    header = store.header
    assert header["model"]["config_class"] == "LlamaConfig"
    assert header["model"]["dtype"] == "float32"
    assert header["input_policy"] == {"mode": "raw", "add_special_tokens": True, "bos_in_T": True}
    assert len(header["tokenizer"]["sha256"]) == 64
    assert header["toolkit_version"] == hexainst.__version__
    assert header["recording"]["batch_size"] == 4 and header["recording"]["attn_implementation"] == "sdpa"
    # The same counts as the library call with the same model and tokenizer.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = [dict(r, category=ds.features["category"].int2str(r["category"]),
                 source=ds.features["source"].int2str(r["source"])) for r in ds.select(range(9))]
    direct = record(AutoModelForCausalLM.from_pretrained(model_dir), rows, tmp_path / "direct",
                    tokenizer=AutoTokenizer.from_pretrained(model_dir), progress=False)
    np.testing.assert_array_equal(store.counts(), direct.counts())
    assert direct.header["tokenizer"]["sha256"] == header["tokenizer"]["sha256"]

    assert main(["record-info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["instructions"] == 9 and info["neurons"] == 144 and info["tokens"]["total"] == int(store.n_tokens.sum())


def test_record_command_errors_are_one_line(model_dir, tmp_path, capsys):
    assert main(["record", "--model", str(model_dir), "--rows", str(tmp_path / "nope.jsonl"), "--out",
                 str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "nope.jsonl: cannot read the rows file (No such file or directory)" in err and err.count("\n") == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "category": "code", "instruction": "x"}\n{oops\n')
    assert main(["record", "--model", str(model_dir), "--rows", str(bad), "--out", str(tmp_path / "s")]) == 2
    assert "bad.jsonl line 2: not JSON" in capsys.readouterr().err
    assert main(["record-info", str(tmp_path)]) == 2
    assert "not an activation store" in capsys.readouterr().err
    assert main(["record", "--model", str(model_dir), "--gguf-file", "missing.gguf", "--rows", str(bad),
                 "--out", str(tmp_path / "s"), "--limit", "1"]) == 2


def test_data_parallel_with_two_real_processes(model_dir, tmp_path):
    """torchrun starts two gloo processes; accelerate splits the rows; the main process merges."""
    rows_file = tmp_path / "rows.jsonl"
    rows = make_rows(11, seed=5)
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "dp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "hexainst.cli", "record", "--model", str(model_dir), "--rows", str(rows_file), "--out", str(out),
         "--data-parallel", "--batch-size", "3"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (out / "parts").iterdir()) == ["rank-00000", "rank-00001"]
    part0 = ActivationStore.open(out / "parts" / "rank-00000")
    assert part0.ids == [r["id"] for r in rows[:6]]  # accelerate: the first process takes the extra row
    merged = ActivationStore.open(out)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    single = record(AutoModelForCausalLM.from_pretrained(model_dir), rows, tmp_path / "single",
                    tokenizer=AutoTokenizer.from_pretrained(model_dir), progress=False)
    assert merged.ids == single.ids
    np.testing.assert_array_equal(merged.counts(), single.counts())
    np.testing.assert_array_equal(merged.n_tokens, single.n_tokens)


def test_device_map_auto_loads_and_records_the_same_counts(model_dir, tmp_path):
    from hexainst.analysis.recording.loading import load_model

    rows = make_rows(6, seed=7)
    mapped = load_model(str(model_dir), device_map="auto")
    # Only a CPU here: "auto" places everything on it (a real spread needs several devices).
    a = record(mapped.model, rows, tmp_path / "a", tokenizer=mapped.tokenizer, progress=False)
    assert a.header["recording"]["device_type"] == "cpu"
    plain = load_model(str(model_dir))
    b = record(plain.model, rows, tmp_path / "b", tokenizer=plain.tokenizer, progress=False)
    np.testing.assert_array_equal(a.counts(), b.counts())


def test_no_progress_also_silences_transformers_own_loading_bar(model_dir, tmp_path, capfd):
    """`record --no-progress` (and `hexainst -q record`) draw no bar at all: transformers' "Loading weights" bar
    is turned off for the load too, and the library's setting is put back afterwards."""
    from transformers.utils import logging as hf_logging

    rows_file = tmp_path / "rows.jsonl"
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in make_rows(4, seed=5)), "utf-8")

    def run(*flags: str) -> str:
        capfd.readouterr()
        code = main([*flags[:1], "record", "--model", str(model_dir), "--rows", str(rows_file), "--out",
                     str(tmp_path / f"store{len(flags)}-{flags[-1]}"), *flags[1:]])
        assert code == 0
        return capfd.readouterr().err

    assert "Loading weights" in run("-v")  # the bar this test is about is there when bars are on
    assert hf_logging.is_progress_bar_enabled()
    assert "Loading weights" not in run("-v", "--no-progress")
    assert "Loading weights" not in run("-q")
    assert hf_logging.is_progress_bar_enabled()  # put back after each load
