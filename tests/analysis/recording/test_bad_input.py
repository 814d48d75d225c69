"""record, record-info, record-merge on bad input and faults: one line, exit 2, nothing that existed changed.

Each case breaks something in a workspace (a tiny Llama saved to disk, a rows file, a release, two
complete stores, a user's own folder), runs the command line in-process, and asserts the exit
status, that the error is one line naming what is wrong, and that every file of the workspace that
existed before is byte-identical after (a bug would raise out of ``main`` with its traceback).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from workspace_files import edit_bytes, snapshot

from hexainst.analysis.recording import ActivationStore, record
from hexainst.analysis.recording.testing import make_rows, make_tokenizer, tiny_model
from hexainst.cli import main


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """model/ (tiny Llama + tokenizer), other-model/, rows.jsonl, release/, store-a/, store-b/, mine/ (a user's files)."""
    from hexainst.kernel.records import natural_row
    from hexainst.kernel.release import write_release

    ws = tmp_path_factory.mktemp("ws")
    tok = make_tokenizer()
    for name, seed in (("model", 0), ("other-model", 1)):
        tiny_model("llama", seed=seed).save_pretrained(ws / name)
        tok.save_pretrained(ws / name)
    rows = make_rows(12, seed=3)
    (ws / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    release_rows = [natural_row(category=r["category"], instruction=r["instruction"], license="mit", source_name="t",
                                dataset_id="made/up", revision="0" * 40, config=None, split="test", row_id=r["id"],
                                task_name=None, pattern_id="p1") for r in rows]
    write_release(release_rows, ws / "release")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(ws / "model")
    tokenizer = AutoTokenizer.from_pretrained(ws / "model")
    for name, part in (("store-a", rows[:6]), ("store-b", rows[6:])):
        record(model, part, ws / name, tokenizer=tokenizer, progress=False, rows_per_shard=4)
    other = AutoModelForCausalLM.from_pretrained(ws / "other-model")
    record(other, rows[6:], ws / "store-other", tokenizer=tokenizer, progress=False, rows_per_shard=4)
    (ws / "mine" / "data").mkdir(parents=True)
    (ws / "mine" / "README.md").write_text("# my notes\n")
    (ws / "mine" / "data" / "important.csv").write_text("a,b\n1,2\n")
    (ws / "a-file.txt").write_text("not a folder\n")
    return ws


@pytest.fixture
def ws(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ws"
    shutil.copytree(pristine, copy)
    return copy


def _header(rel: str, fn: Callable[[dict], object]) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        path = ws / rel / "header.json"
        doc = json.loads(path.read_text())
        fn(doc)
        path.write_text(json.dumps(doc))
    return setup


def _rehome(ws: Path) -> None:
    """store-a's header names the model at its path in this copy of the workspace (as if recorded here)."""
    _header("store-a", lambda h: h["model"].update(name_or_path=str(ws / "model")))(ws)


def _v1_store(ws: Path) -> None:
    (ws / "store-a" / ".hexainst-output.json").unlink()
    _header("store-a", lambda h: h.update(format_version=1))(ws)


def _edit_line(data: bytes, index: int, fn: Callable[[dict], object]) -> bytes:
    """A JSONL file's bytes with row ``index`` changed in place by ``fn``."""
    lines = data.decode().splitlines()
    row = json.loads(lines[index])
    fn(row)
    lines[index] = json.dumps(row)
    return ("\n".join(lines) + "\n").encode()


def _killed_after_one_shard(ws: Path) -> None:
    """store-a as a `record` killed after its first shard, and six.jsonl, its rows, to resume it with."""
    (ws / "store-a" / "shards" / "00001.npz").unlink()
    (ws / "store-a" / "shards" / "00001.npz.sha256").unlink()
    (ws / "six.jsonl").write_text("".join(json.dumps(r) + "\n" for r in make_rows(12, seed=3)[:6]))


def _other_weights_in_the_model_folder(ws: Path) -> None:
    _killed_after_one_shard(ws)
    shutil.copyfile(ws / "other-model" / "model.safetensors", ws / "model" / "model.safetensors")


def _edited_text(ws: Path) -> None:
    """six.jsonl with row-002's text edited, its id kept (as a validation revision does)."""
    _killed_after_one_shard(ws)
    rows = make_rows(12, seed=3)[:6]
    rows[2]["instruction"] += " (revised)"
    (ws / "six.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _shard_from_another_store(ws: Path) -> None:
    """store-other (the same rows as store-b, other weights): its first shard and checksum copied into store-b."""
    for name in ("00000.npz", "00000.npz.sha256"):
        shutil.copyfile(ws / "store-other" / "shards" / name, ws / "store-b" / "shards" / name)


def _as_format_2(store: Path) -> None:
    """``store`` as a format-2 store wrote it: no weights fingerprint, no text hashes, no shard bindings."""
    doc = json.loads((store / "header.json").read_text())
    doc["format_version"] = 2
    doc["model"].pop("weights_sha256")
    for row in doc["instructions"]:
        row.pop("text_sha256")
    (store / "header.json").write_text(json.dumps(doc))
    for check in (store / "shards").glob("*.sha256"):
        check.write_text("".join(ln + "\n" for ln in check.read_text().splitlines() if not ln.startswith("#")))


@dataclass
class Case:
    id: str
    argv: list[str]
    message: str  # a substring of the one error line; {ws} is the workspace
    setup: Callable[[Path], None] = lambda ws: None
    usage: bool = False  # an argparse error (its usage line comes first)


REC = ["record", "--model", "{ws}/model"]
ROWS = ["--rows", "{ws}/rows.jsonl"]
CASES = [
    # --out: never a file, an input, or a stranger's folder
    Case("out-is-a-file", REC + ROWS + ["--out", "{ws}/a-file.txt"], "a-file.txt: is a file, not a folder"),
    Case("out-is-a-users-folder", REC + ROWS + ["--out", "{ws}/mine"], "was not written by hexainst"),
    Case("out-overwrite-a-users-folder", REC + ROWS + ["--out", "{ws}/mine", "--overwrite"],
         "was not written by hexainst"),
    Case("out-is-the-release", REC + ["--release", "{ws}/release", "--out", "{ws}/release"],
         "it holds this command's input"),
    Case("out-holds-the-rows-file", REC + ROWS + ["--out", "{ws}"], "it holds this command's input"),
    Case("out-inside-the-model", REC + ROWS + ["--out", "{ws}/model/store"], "lies inside this command's input"),
    Case("out-is-a-format-1-store", REC + ROWS + ["--out", "{ws}/store-a"], "format 1 (written before shard checksums)",
         _v1_store),
    Case("out-is-an-analysis-report", REC + ROWS + ["--out", "{ws}/report"], "holds a 'analysis report' output",
         lambda ws: ((ws / "report").mkdir(), (ws / "report" / ".hexainst-output.json").write_text(
             json.dumps({"kind": "analysis report"})))),
    # numeric options
    Case("batch-size-0", REC + ROWS + ["--out", "{ws}/new", "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0",
         usage=True),
    Case("batch-size-negative", REC + ROWS + ["--out", "{ws}/new", "--batch-size", "-4"], "argument --batch-size: must be",
         usage=True),
    Case("rows-per-shard-0", REC + ROWS + ["--out", "{ws}/new", "--rows-per-shard", "0"],
         "argument --rows-per-shard: must be >= 1, got 0", usage=True),
    Case("limit-0", REC + ROWS + ["--out", "{ws}/new", "--limit", "0"], "argument --limit: must be 1 or more, got 0", usage=True),
    Case("device-unknown", REC + ROWS + ["--out", "{ws}/new", "--device", "banana"], "'banana' is not a torch device"),
    # rows and models
    Case("rows-missing", REC + ["--rows", "{ws}/nope.jsonl", "--out", "{ws}/new"], "nope.jsonl: cannot read the rows file"),
    Case("rows-not-utf8", REC + ROWS + ["--out", "{ws}/new"], "rows.jsonl line 1: the rows file is not UTF-8",
         edit_bytes("rows.jsonl", lambda b: b"\xff" + b)),
    Case("rows-bad-json", REC + ROWS + ["--out", "{ws}/new"], "rows.jsonl line 13: not JSON",
         edit_bytes("rows.jsonl", lambda b: b + b"{oops\n")),
    Case("row-without-instruction", REC + ROWS + ["--out", "{ws}/new"], "rows.jsonl line 2: row row-001 has no instruction",
         edit_bytes("rows.jsonl", lambda b: b.replace(b'"instruction"', b'"text"', 2).replace(b'"text"', b'"instruction"', 1))),
    Case("rows-duplicate-id", REC + ROWS + ["--out", "{ws}/new"],
         "rows.jsonl line 13: duplicate instruction id 'row-000' (also on line 1)",
         edit_bytes("rows.jsonl", lambda b: b + b.split(b"\n")[0] + b"\n")),
    # found before the model loads: a model that cannot load is never reached
    Case("rows-duplicate-id-before-the-model", ["record", "--model", "{ws}/no-such-model"] + ROWS + ["--out", "{ws}/new"],
         "rows.jsonl line 13: duplicate instruction id 'row-000' (also on line 1)",
         edit_bytes("rows.jsonl", lambda b: b + b.split(b"\n")[0] + b"\n")),
    Case("row-category-null", REC + ROWS + ["--out", "{ws}/new"],
         "rows.jsonl line 3: row row-002 has category null; a category must be a name of letters",
         edit_bytes("rows.jsonl", lambda b: _edit_line(b, 2, lambda r: r.update(category=None)))),
    # a row written from hexainst.load(): its category is a ClassLabel number, and the line says how to get the name
    Case("row-category-classlabel-number", REC + ROWS + ["--out", "{ws}/new"],
         "rows.jsonl line 2: row row-001 has category 0; a category must be a name of letters, digits, spaces and "
         "_ . + - (at most 64 characters), such as code or generalqa; rows of hexainst.load() hold ClassLabel "
         "numbers: record the release itself, or write each row's name, ds.features['category'].int2str(n)",
         edit_bytes("rows.jsonl", lambda b: _edit_line(b, 1, lambda r: r.update(category=0)))),
    Case("row-category-markup", REC + ROWS + ["--out", "{ws}/new"],
         'rows.jsonl line 1: row row-000 has category "<img src=x onerror=alert(1)>"',
         edit_bytes("rows.jsonl", lambda b: _edit_line(b, 0, lambda r: r.update(category="<img src=x onerror=alert(1)>")))),
    Case("row-of-a-megabyte", REC + ROWS + ["--out", "{ws}/new"],
         "tokens; the model takes at most 256 (its max_position_embeddings): shorten it or leave it out",
         edit_bytes("rows.jsonl", lambda b: _edit_line(b, 1, lambda r: r.update(
             instruction=(r["instruction"] + " ") * (1_000_000 // (len(r["instruction"]) + 1)))))),
    Case("category-matches-nothing", REC + ROWS + ["--out", "{ws}/new", "--category", "poetry"], "no rows to record"),
    Case("model-folder-missing", ["record", "--model", "{ws}/no-such-model"] + ROWS + ["--out", "{ws}/new"],
         "cannot load model"),
    Case("model-folder-not-a-model", ["record", "--model", "{ws}/mine"] + ROWS + ["--out", "{ws}/new"],
         "cannot load model '{ws}/mine': not a model folder (no config.json)"),
    Case("model-folder-empty", ["record", "--model", "{ws}/e1"] + ROWS + ["--out", "{ws}/new", "--limit", "6"],
         "cannot load model '{ws}/e1': not a model folder (no config.json)", lambda ws: (ws / "e1").mkdir()),
    Case("model-folder-is-a-release", ["record", "--model", "{ws}/release"] + ROWS + ["--out", "{ws}/new"],
         "cannot load model '{ws}/release': not a model folder (no config.json)"),
    Case("model-folder-without-a-tokenizer", ["record", "--model", "{ws}/c1"] + ROWS + ["--out", "{ws}/new"],
         "cannot load model '{ws}/c1': the folder has no tokenizer files (none of tokenizer.json, tokenizer.model",
         lambda ws: ((ws / "c1").mkdir(), shutil.copyfile(ws / "model" / "config.json", ws / "c1" / "config.json"))),
    Case("model-is-a-text-file", ["record", "--model", "{ws}/a-file.txt"] + ROWS + ["--out", "{ws}/new"],
         "cannot load model '{ws}/a-file.txt': a file that is not a .gguf"),
    Case("model-config-broken", REC + ROWS + ["--out", "{ws}/new"], "cannot load model",
         edit_bytes("model/config.json", lambda b: b[: len(b) // 2])),
    Case("gguf-file-missing", REC + ROWS + ["--out", "{ws}/new", "--gguf-file", "x.gguf"], "GGUF file 'x.gguf' not found"),
    # resuming a store recorded otherwise
    Case("resume-other-batch-size", REC + ["--rows", "{ws}/six.jsonl", "--out", "{ws}/store-a", "--batch-size", "3",
                                           "--rows-per-shard", "4"],
         "different 'recording' (batch_size: 8 -> 3)",
         lambda ws: (_rehome(ws), (ws / "six.jsonl").write_text("".join(
             json.dumps(r) + "\n" for r in make_rows(12, seed=3)[:6])))),
    Case("resume-other-batch-size-before-the-model", ["record", "--model", "{ws}/no-such-model", "--rows",
                                                      "{ws}/six.jsonl", "--out", "{ws}/store-a", "--batch-size", "3"],
         "store-a already holds a store recorded with a different 'recording' (batch_size: 8 -> 3)",
         lambda ws: (ws / "six.jsonl").write_text("".join(json.dumps(r) + "\n" for r in make_rows(12, seed=3)[:6]))),
    Case("resume-other-rows", REC + ROWS + ["--out", "{ws}/store-a", "--rows-per-shard", "4"],
         "different 'instructions' (6 -> 12 entries)", _rehome),
    # a store knows what made it: the weights and the texts
    Case("resume-other-weights-in-the-same-folder", REC + ["--rows", "{ws}/six.jsonl", "--out", "{ws}/store-a",
                                                           "--rows-per-shard", "4"],
         "store-a was recorded from other weights (weights_sha256 ", _other_weights_in_the_model_folder),
    Case("resume-another-model", ["record", "--model", "{ws}/other-model", "--rows", "{ws}/six.jsonl", "--out",
                                  "{ws}/store-a", "--rows-per-shard", "4"],
         "store-a was recorded from other weights", _killed_after_one_shard),
    Case("resume-edited-text", REC + ["--rows", "{ws}/six.jsonl", "--out", "{ws}/store-a", "--rows-per-shard", "4"],
         "store-a: the text of instruction 'row-002' is not the text this store was recorded from", _edited_text),
    Case("resume-a-format-2-store", REC + ["--rows", "{ws}/six.jsonl", "--out", "{ws}/store-a", "--rows-per-shard", "4"],
         "holds a store of format 2 (written before stores recorded their weights and texts)",
         lambda ws: (_killed_after_one_shard(ws), _as_format_2(ws / "store-a"))),
    Case("info-shard-from-another-store", ["record-info", "{ws}/store-b"],
         "store-b: shard shards/00000.npz (rows 0..3) was recorded from other weights, texts or settings",
         _shard_from_another_store),
    Case("info-header-texts-edited", ["record-info", "{ws}/store-b"],
         "store-b: shard shards/00000.npz (rows 0..3) was recorded from other weights, texts or settings",
         _header("store-b", lambda h: h["instructions"][1].update(text_sha256="0" * 64))),
    Case("merge-a-part-with-a-shard-from-another-store", ["record-merge", "{ws}/store-a", "{ws}/store-b", "--out",
                                                          "{ws}/m"],
         "store-b: shard shards/00000.npz (rows 0..3) was recorded from other weights", _shard_from_another_store),
    Case("merge-into-a-users-folder-holding-parts", ["record-merge", "{ws}/mine/parts/rank-00000",
                                                     "{ws}/mine/parts/rank-00001", "--out", "{ws}/mine"],
         "mine: holds README.md and was not written by hexainst",
         lambda ws: ((ws / "mine" / "parts").mkdir(), shutil.copytree(ws / "store-a", ws / "mine/parts/rank-00000"),
                     shutil.copytree(ws / "store-b", ws / "mine/parts/rank-00001"),
                     (ws / "mine" / "header.json").write_text('{"my": "own header"}\n'))),
    # record-info: every shard checked, every problem named
    Case("info-missing-folder", ["record-info", "{ws}/nothing"], "activation store {ws}/nothing not found"),
    Case("info-foreign-folder", ["record-info", "{ws}/mine"], "is not an activation store (no header.json)"),
    Case("info-truncated-shard", ["record-info", "{ws}/store-a"],
         "shard shards/00001.npz (rows 4..5) does not match its checksum",
         edit_bytes("store-a/shards/00001.npz", lambda b: b[: len(b) // 2])),
    Case("info-flipped-byte", ["record-info", "{ws}/store-a"], "shard shards/00000.npz (rows 0..3) does not match",
         edit_bytes("store-a/shards/00000.npz", lambda b: b[:200] + bytes([b[200] ^ 1]) + b[201:])),
    Case("info-missing-shard", ["record-info", "{ws}/store-a"], "incomplete: 1 of 2 shards missing (first: shard "
         "shards/00001.npz (rows 4..5))", lambda ws: (ws / "store-a/shards/00001.npz").unlink()),
    Case("info-missing-checksum", ["record-info", "{ws}/store-a"], "incomplete: 1 of 2 shards missing",
         lambda ws: (ws / "store-a/shards/00000.npz.sha256").unlink()),
    Case("info-header-not-json", ["record-info", "{ws}/store-a"], "header.json line 1: the store header is not JSON",
         edit_bytes("store-a/header.json", lambda b: b"{" + b[:40])),
    Case("info-header-no-layout", ["record-info", "{ws}/store-a"], "'layout' is a required property",
         _header("store-a", lambda h: h.pop("layout"))),
    Case("info-header-bad-blocks", ["record-info", "{ws}/store-a"], "layout blocks hold 48 neurons, n_cols says 144",
         _header("store-a", lambda h: h["layout"].update(blocks=h["layout"]["blocks"][:1]))),
    Case("info-header-future-version", ["record-info", "{ws}/store-a"], "format_version 9 is not supported",
         _header("store-a", lambda h: h.update(format_version=9))),
    Case("info-shard-without-arrays", ["record-info", "{ws}/store-a"], "lacks counts",
         lambda ws: _replace_shard(ws / "store-a", 1, {"n_tokens": np.array([3, 3], dtype=np.int32)})),
    # record-merge
    Case("merge-into-a-part", ["record-merge", "{ws}/store-a", "{ws}/store-b", "--out", "{ws}/store-a"],
         "it is or lies inside the part"),
    Case("merge-into-a-folder-holding-a-part", ["record-merge", "{ws}/store-a", "{ws}/store-b", "--out", "{ws}"],
         "it holds the part"),
    Case("merge-into-a-recorded-store", ["record-merge", "{ws}/store-a", "{ws}/store-b", "--out", "{ws}/store-other"],
         "holds an activation store recorded by 'hexainst record'"),
    Case("merge-into-a-users-folder", ["record-merge", "{ws}/store-a", "{ws}/store-b", "--out", "{ws}/mine"],
         "was not written by hexainst"),
    Case("merge-different-models", ["record-merge", "{ws}/store-a", "{ws}/store-other", "--out", "{ws}/m"],
         "different 'model'"),
    Case("merge-corrupt-part", ["record-merge", "{ws}/store-a", "{ws}/store-b", "--out", "{ws}/m"],
         "store-b: shard shards/00000.npz (rows 0..3) does not match its checksum",
         edit_bytes("store-b/shards/00000.npz", lambda b: b[:-10])),
    Case("merge-same-part-twice", ["record-merge", "{ws}/store-a", "{ws}/store-a", "--out", "{ws}/m"],
         "cannot merge: instruction id 'row-000' is in {ws}/store-a twice"),
    Case("merge-a-part-and-a-link-to-it", ["record-merge", "{ws}/store-a", "{ws}/link-a", "--out", "{ws}/m"],
         "is in {ws}/link-a and in {ws}/store-a", lambda ws: (ws / "link-a").symlink_to(ws / "store-a")),
]


def _replace_shard(store: Path, shard: int, arrays: dict) -> None:
    """A shard rewritten with other arrays and a matching checksum and binding (a well-formed file with the
    wrong content)."""
    from hexainst.analysis.recording.store import _write_checksum, _write_npz

    path = store / "shards" / f"{shard:05d}.npz"
    binding = (path.parent / f"{path.name}.sha256").read_text().splitlines()[0].split()[-1]
    with open(path, "wb") as handle:
        _write_npz(handle, arrays)
    _write_checksum(path, binding)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, ws: Path, capsys) -> None:
    case.setup(ws)
    before = snapshot(ws)
    argv = [a.format(ws=ws) for a in case.argv]
    if case.usage:
        with pytest.raises(SystemExit) as info:
            main(argv)
        code = info.value.code
    else:
        code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("hexainst ")]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert case.message.format(ws=ws.resolve() if "{ws}/nothing" not in case.message else ws) in lines[0], lines[0]
    assert snapshot(ws) == before  # nothing that existed was changed or removed


def test_cuda_device_without_a_gpu_is_one_line(ws: Path, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    assert main([a.format(ws=ws) for a in REC + ROWS + ["--out", "{ws}/new", "--device", "cuda"]]) == 2
    assert "--device cuda: no CUDA device is available here" in capsys.readouterr().err
    assert not (ws / "new").exists()


def test_resume_records_a_corrupt_shard_again(ws: Path, capsys) -> None:
    """A truncated shard is named, recorded again, and the store equals a fresh recording."""
    shard = ws / "store-a" / "shards" / "00001.npz"
    good = shard.read_bytes()
    first = (ws / "store-a" / "shards" / "00000.npz").stat().st_mtime_ns
    shard.write_bytes(good[:100])
    _rehome(ws)
    six = ws / "six.jsonl"
    six.write_text("".join(json.dumps(r) + "\n" for r in make_rows(12, seed=3)[:6]))
    code = main(["record", "--model", str(ws / "model"), "--rows", str(six), "--out", str(ws / "store-a"),
                 "--rows-per-shard", "4"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "shards/00001.npz (rows 4..5) does not match its checksum; recording it again" in err
    assert "recorded 2 instructions, 4 already there: 6 instructions x 144 neurons" in out
    assert shard.read_bytes() == good  # the same bytes as the first recording
    assert (ws / "store-a" / "shards" / "00000.npz").stat().st_mtime_ns == first  # the good shard was kept
    assert main(["record-info", str(ws / "store-a")]) == 0
    assert json.loads(capsys.readouterr().out)["shards"] == {"n": 2, "checksums": "all match"}


def test_overwrite_replaces_only_when_complete(ws: Path, capsys) -> None:
    """--overwrite records beside the store; the old store stays until the new one is complete."""
    rows6 = ws / "six.jsonl"
    rows6.write_text("".join(json.dumps(r) + "\n" for r in make_rows(12, seed=3)[:6]))
    old = snapshot(ws / "store-a")
    # A run that fails before its end (here: a device that is not there) leaves the old store as it was.
    assert main(["record", "--model", str(ws / "other-model"), "--rows", str(rows6), "--out", str(ws / "store-a"),
                 "--overwrite", "--device", "banana"]) == 2
    assert snapshot(ws / "store-a") == old
    assert main(["record", "--model", str(ws / "other-model"), "--rows", str(rows6), "--out", str(ws / "store-a"),
                 "--overwrite", "--rows-per-shard", "4"]) == 0
    capsys.readouterr()
    replaced = ActivationStore.open(ws / "store-a")
    assert replaced.header["model"]["name_or_path"] == str(ws / "other-model")
    assert not (ws / ".store-a.overwrite").exists()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    fresh = record(AutoModelForCausalLM.from_pretrained(ws / "other-model"), make_rows(12, seed=3)[:6],
                   ws / "fresh", tokenizer=AutoTokenizer.from_pretrained(ws / "model"), progress=False,
                   rows_per_shard=4)
    np.testing.assert_array_equal(replaced.counts(), fresh.counts())


def test_a_killed_overwrite_resumes_in_its_own_folder(ws: Path, capsys) -> None:
    """An overwrite that died after one shard left `.store-a.overwrite`; the rerun resumes there, then swaps."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = make_rows(12, seed=3)[:6]
    model = AutoModelForCausalLM.from_pretrained(ws / "other-model")
    tok = AutoTokenizer.from_pretrained(ws / "other-model")
    partial = record(model, rows, ws / ".store-a.overwrite", tokenizer=tok, progress=False, rows_per_shard=4)
    (partial.path / "shards" / "00001.npz").unlink()  # killed before the second shard
    kept = (partial.path / "shards" / "00000.npz").read_bytes()
    old = snapshot(ws / "store-a")
    store = record(ws / "other-model", rows, ws / "store-a", progress=False, rows_per_shard=4, overwrite=True)
    assert store.recorded_now == 2  # only the missing shard
    assert (ws / "store-a" / "shards" / "00000.npz").read_bytes() == kept
    assert snapshot(ws / "store-a") != old and not (ws / ".store-a.overwrite").exists()


def test_merge_replaces_its_own_earlier_output(ws: Path, capsys) -> None:
    assert main(["record-merge", str(ws / "store-a"), str(ws / "store-b"), "--out", str(ws / "m")]) == 0
    first = ActivationStore.open(ws / "m")
    assert len(first) == 12 and first.header["created_by"]["by"] == "merge_stores"
    first_counts, first_ids = first.counts(), list(first.ids)
    assert main(["record-merge", str(ws / "store-b"), str(ws / "store-a"), "--out", str(ws / "m")]) == 0
    again = ActivationStore.open(ws / "m")
    assert again.ids == first_ids[6:] + first_ids[:6]
    np.testing.assert_array_equal(again.counts(), np.vstack([first_counts[6:], first_counts[:6]]))


def test_a_resume_refused_for_other_weights_keeps_every_shard(ws: Path, capsys) -> None:
    """The issue's case: killed after one shard, the same --model folder now holds other weights: refused, and
    with the old weights back the run resumes (the refusal wrote nothing)."""
    _killed_after_one_shard(ws)
    good = (ws / "model" / "model.safetensors").read_bytes()
    shutil.copyfile(ws / "other-model" / "model.safetensors", ws / "model" / "model.safetensors")
    argv = ["record", "--model", str(ws / "model"), "--rows", str(ws / "six.jsonl"), "--out", str(ws / "store-a"),
            "--rows-per-shard", "4"]
    assert main(argv) == 2
    (ws / "model" / "model.safetensors").write_bytes(good)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "recorded 2 instructions, 4 already there" in out


def test_the_same_folder_spelled_two_ways_is_the_same_model(ws: Path, capsys, monkeypatch) -> None:
    """Recorded with a relative --model, resumed with the absolute path: the same model; the header holds the
    folder resolved when the store was made."""
    _killed_after_one_shard(ws)
    monkeypatch.chdir(ws)
    assert main(["record", "--model", "model", "--rows", "six.jsonl", "--out", "rel", "--rows-per-shard", "4"]) == 0
    header = json.loads((ws / "rel" / "header.json").read_text())
    assert header["model"]["name_or_path"] == str((ws / "model").resolve())
    assert len(header["model"]["weights_sha256"]) == 64
    assert all(len(row["text_sha256"]) == 64 for row in header["instructions"])
    (ws / "rel" / "shards" / "00001.npz").unlink()
    monkeypatch.chdir(ws / "mine")
    assert main(["record", "--model", str(ws / "model"), "--rows", "../six.jsonl", "--out", "../rel",
                 "--rows-per-shard", "4"]) == 0
    assert "recorded 2 instructions, 4 already there" in capsys.readouterr().out
    # a store recorded from a model object loaded from that folder resumes under its path, too
    assert main(["record", "--model", "../model", "--rows", "../six.jsonl", "--out", str(ws / "store-a"),
                 "--rows-per-shard", "4"]) == 0
    assert "recorded 2 instructions, 4 already there" in capsys.readouterr().out


def test_a_format_2_store_reads_and_says_it_cannot_be_checked(ws: Path, capsys) -> None:
    _as_format_2(ws / "store-a")
    assert main(["record-info", str(ws / "store-a")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["made_from"].startswith("not checked: format 2, written before stores recorded their weights")
    assert info["shards"] == {"n": 2, "checksums": "all match"}
    assert main(["record-info", str(ws / "store-b")]) == 0
    assert json.loads(capsys.readouterr().out)["made_from"].startswith("checked: ")


def _hold_lock(folder: Path):
    """A second process that holds the writer's lock of ``folder`` (as a run writing it does) until killed."""
    import subprocess
    import sys

    code = ("import sys, time\nfrom hexainst.kernel.output_lock import writer_lock\n"
            "with writer_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("command", ["record", "record-merge"])
def test_a_second_writer_gets_one_line(ws: Path, capsys, command: str) -> None:
    """Two writers on one store: the second stops at once with one line; nothing changes on disk."""
    target = ws / ("store-a" if command == "record" else "m")
    if command == "record":
        _killed_after_one_shard(ws)
        argv = ["record", "--model", str(ws / "model"), "--rows", str(ws / "six.jsonl"), "--out", str(target),
                "--rows-per-shard", "4"]
    else:
        argv = ["record-merge", str(ws / "store-a"), str(ws / "store-b"), "--out", str(target)]
    holder = _hold_lock(target)
    try:
        before = snapshot(ws)
        code = main(argv)
        err = capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    lines = [line for line in err.splitlines() if line.startswith("hexainst ")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert f"{target.resolve()}: another hexainst run is writing this activation store" in lines[0]
    assert snapshot(ws) == before
    if command == "record":  # the lock dies with its holder: the same command now resumes
        assert main(argv) == 0
        assert "recorded 2 instructions, 4 already there" in capsys.readouterr().out


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("hexainst ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("cache", ["a-file", "read-only"])
def test_an_unusable_cache_is_named_before_the_gguf_conversion(ws: Path, capsys, monkeypatch, cache: str) -> None:
    """HEXAINST_CACHE a file or read-only: one line naming it, before the minute-long conversion starts."""
    import os

    if cache == "read-only" and os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder")
    (ws / "fake.gguf").write_bytes(b"GGUF" + bytes(60))  # never read as a model: the check comes first
    where = ws / "a-file.txt" if cache == "a-file" else ws / "ro-cache"
    if cache == "read-only":
        where.mkdir()
        where.chmod(0o500)
    monkeypatch.setenv("HEXAINST_CACHE", str(where))
    before = snapshot(ws)
    code = main(["record", "--model", str(ws / "fake.gguf"), "--rows", str(ws / "rows.jsonl"), "--out", str(ws / "new")])
    out, err = capsys.readouterr()
    assert code == 2
    assert f"$HEXAINST_CACHE {where}: cannot write the GGUF conversion" in _one_line(err)
    assert "converting" not in out
    assert snapshot(ws) == before and not (ws / "new").exists()


def test_causal_from_another_folder_names_a_relative_model_path(ws: Path, capsys, monkeypatch) -> None:
    """An old store that recorded its model as a relative path, analysed with --causal from elsewhere: the path is
    named (not blamed on the Hub)."""
    _header("store-a", lambda h: h["model"].update(name_or_path="model"))(ws)
    monkeypatch.chdir(ws / "mine")
    before = snapshot(ws)
    # one held-out instruction per category: the tiny store has too few for the default 20
    code = main(["analyze", "--store", str(ws / "store-a"), "--causal", "--causal-per-category", "1",
                 "--rows", str(ws / "rows.jsonl"), "--out", str(ws / "o"), "--quiet"])
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("hexainst analyze: error: --causal-model not given, and the store header names the model "
                           "'model', a path relative to where the store was recorded, not found ")
    assert f"not found from {ws / 'mine'}; give the model's folder" in line
    assert snapshot(ws) == before


def test_a_model_without_an_adapter_is_one_line_and_nothing_more(ws: Path, capfd) -> None:
    """A BERT folder: the one line, before the weights load (no load report of missing and unexpected keys)."""
    import transformers as tf

    config = tf.BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=48)
    tf.BertModel(config).save_pretrained(ws / "bert")
    make_tokenizer().save_pretrained(ws / "bert")
    capfd.readouterr()
    before = snapshot(ws)
    assert main(["record", "--model", str(ws / "bert"), "--rows", str(ws / "rows.jsonl"), "--out", str(ws / "new")]) == 2
    out, err = capfd.readouterr()
    assert err.strip().splitlines() == [err.strip()], err  # one line, nothing else on stderr
    assert err.startswith("hexainst record: error: no recording adapter for config class BertConfig")
    assert snapshot(ws) == before and not (ws / "new").exists()


@pytest.mark.parametrize("command", ["record", "record-merge"])
def test_a_full_disk_is_one_line_naming_the_folder(ws: Path, small_disk: Path, capsys, command: str) -> None:
    """The store's device is full (a real 2 MB tmpfs, filled): one line naming the folder, nothing half-written;
    with space again, the same command completes."""
    from workspace_files import fill_disk

    target = small_disk / "store"
    argv = (["record", "--model", str(ws / "model"), "--rows", str(ws / "rows.jsonl"), "--out", str(target),
             "--rows-per-shard", "4"] if command == "record" else
            ["record-merge", str(ws / "store-a"), str(ws / "store-b"), "--out", str(target)])
    filler = fill_disk(small_disk)
    before, disk_before = snapshot(ws), snapshot(small_disk)
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    what = "activation store" if command == "record" else "merged store"
    assert f"{target}: no space left on the device while writing the {what}" in line, line
    assert snapshot(ws) == before and snapshot(small_disk) == disk_before
    assert not [p for p in small_disk.rglob("*") if p.is_file() and p != filler]  # no temporary file left
    filler.unlink()
    assert main(argv) == 0
    assert len(ActivationStore.open(target)) == 12


def test_a_loader_message_that_announces_a_list_keeps_the_list(ws: Path, capsys) -> None:
    """A folder with config.json and tokenizer_config.json only: transformers' message starts "... from one of:"
    and lists on the next lines; the one line says the list too, not only its announcement."""
    (ws / "t1").mkdir()
    for name in ("config.json", "tokenizer_config.json"):
        shutil.copyfile(ws / "model" / name, ws / "t1" / name)
    assert main(["record", "--model", str(ws / "t1"), "--rows", str(ws / "rows.jsonl"), "--out", str(ws / "new")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hexainst ")]
    prefix = f"hexainst record: error: cannot load model '{ws / 't1'}': "
    assert len(lines) == 1 and lines[0].startswith(prefix)
    assert not lines[0].rstrip().endswith(":") and len(lines[0]) - len(prefix) <= 300, lines[0]
    assert not (ws / "new").exists()


def test_a_hub_id_with_no_hub_to_reach_is_one_line_at_once(ws: Path, capsys, monkeypatch) -> None:
    """A mistyped local path reads as a Hub id; with the Hub's host unresolvable and nothing cached, the one line
    comes at once instead of after the loader's retries (5 per file with backoff: 74 s measured here)."""
    import time

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "https://hexainst-no-such-hub.invalid")  # .invalid never resolves
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    before = snapshot(ws)
    start = time.monotonic()
    code = main(["record", "--model", "no-such-model-here", "--rows", str(ws / "rows.jsonl"), "--out", str(ws / "new")])
    took = time.monotonic() - start
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and took < 15, took
    assert line.startswith("hexainst record: error: cannot load model 'no-such-model-here': no such local file or "
                           "folder, and it is not in the Hub cache while the Hugging Face Hub "
                           "(hexainst-no-such-hub.invalid) cannot be reached")
    assert snapshot(ws) == before
