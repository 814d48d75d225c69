"""Bad input and faults, command by command: one line, exit status 2, and nothing that existed is changed.

Each case runs the real command line (``python -m hexainst ...``) in a workspace holding a valid
release, valid candidate pools and the user's own files, after the case has broken something.
For every case the test asserts the exit status, that the error is one line matching the
expected message (argparse's usage line aside), that no traceback was printed, and that every
file of the workspace that existed before the command is byte-identical after it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from validation_docs import rejections
from workspace_files import changed_files, pool_rows, snapshot, write_pools

from hexainst.kernel.vocab import CATEGORIES

MIRROR = Path(os.environ.get("HEXAINST_SOURCES") or Path(__file__).resolve().parents[3] / "shared" / "sources")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A workspace: pools/, release/ (built from them), mine/ (a user's folder), mirror/ (two real sources)."""
    from stage_runs import release_from

    ws = tmp_path_factory.mktemp("pristine")
    release_from(write_pools(ws / "pools"), ws / "release")
    (ws / "mine" / "data").mkdir(parents=True)
    (ws / "mine" / "README.md").write_text("# My own notes\n")
    (ws / "mine" / "data" / "important.csv").write_text("a,b\n1,2\n")
    for sub in ("math500", "humaneval"):
        shutil.copytree(MIRROR / sub, ws / "mirror" / sub)
    _write_store(ws / "store")
    rows = [r for c in CATEGORIES for r in pool_rows(c, "natural", 2)]
    (ws / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ws


def _write_store(path: Path) -> None:
    """A small real activation store (4 layers x 60 neurons, 4 instructions per category, 16 per shard)."""
    import numpy as np

    from hexainst.analysis.recording.store import write_store

    rng = np.random.default_rng(0)
    instr = [{"id": f"{c}-{k}", "category": c, "source": "natural"} for c in CATEGORIES for k in range(4)]
    n_tokens = rng.integers(10, 30, size=len(instr)).astype(np.int32)
    counts = np.stack([rng.binomial(t, 0.2, size=240) for t in n_tokens]).astype(np.uint16)
    write_store(path, instructions=instr, n_tokens=n_tokens, counts=counts, blocks=[(layer, -1, 60) for layer in range(4)],
                n_layers=4, rows_per_shard=16,
                model={"name_or_path": "made-up", "revision": "r0", "dtype": "float32", "config_class": "LlamaConfig"},
                tokenizer={"name_or_path": "tok", "sha256": "tok-a"},
                input_policy={"mode": "raw", "add_special_tokens": True, "bos_in_T": True})


def _damage_first_shard(ws: Path) -> None:
    shard = sorted(p for p in (ws / "store").rglob("*") if p.is_file() and p.suffix in (".npz", ".npy"))[0]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])


@dataclass
class Case:
    id: str
    argv: list[str]
    message: str  # a substring of the error line; {ws} is the workspace
    setup: Callable[[Path], None] = lambda ws: None
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)
    usage: bool = False  # an argparse error: its usage line comes first
    absent: str | None = None  # an output the failed run must not have started (relative to the workspace)


def _write(rel: str, data: bytes | str) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return setup


def _remove(rel: str) -> Callable[[Path], None]:
    return lambda ws: (ws / rel).unlink()


def _truncate(rel: str, keep: int = 100) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        data = (ws / rel).read_bytes()
        (ws / rel).write_bytes(data[:keep])
    return setup


def _edit(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        text = (ws / rel).read_text()
        assert old in text, (rel, old)
        (ws / rel).write_text(text.replace(old, new, 1))
    return setup


def _both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        for step in steps:
            step(ws)
    return setup


def _corrupt_math500(ws: Path) -> None:
    path = ws / "mirror" / "math500" / "test.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[41] = lines[41].replace(b"the", b"th\xe9", 1)  # Latin-1 bytes in a UTF-8 file
    path.write_bytes(b"".join(lines))


def _natural_then_lose_humaneval(ws: Path) -> None:
    """An earlier natural build from the mirror, then the mirror loses one of its sources."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("HEXAINST_SOURCES", None)
    done = subprocess.run([sys.executable, "-m", "hexainst", "build", "natural", "--sources", "mirror", "--out", "nat",
                           "--no-progress"], cwd=ws, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shutil.rmtree(ws / "mirror" / "humaneval")


def _category_label_9(ws: Path) -> None:
    """Row 3 of the release's math.parquet gets the category integer 9 (six categories: 0..5)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = ws / "release" / "data" / "math.parquet"
    table = pq.read_table(file)
    i = table.schema.get_field_index("category")
    values = table.column(i).to_pylist()
    values[3] = 9
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array(values, type=table.schema.field(i).type)), file)


LABEL_9 = "release/data/math.parquet row 3: field 'category': 9 is not one of"


def _recipe_with(key: str, template: str) -> Callable[[Path], None]:
    """my-recipe.json: the bundled recipe with one prompt template replaced."""
    def setup(ws: Path) -> None:
        from hexainst.analysis.finetune import load_recipe

        doc = load_recipe().doc
        doc["prompt"][key] = template
        (ws / "my-recipe.json").write_text(json.dumps(doc, indent=2))
    return setup


def _validation(ids: list[str]) -> str:
    return json.dumps(rejections(ids))


POOL = "pools/math.synthetic.jsonl"
CASES = [
    # ------------------------------------------------------------ build release
    Case("release-into-users-folder", ["build", "release", "--pools", "pools", "--out", "mine"],
         "not a HexaInst release folder (README.md (not a HexaInst dataset card), data/important.csv)"),
    Case("release-into-a-file", ["build", "release", "--pools", "pools", "--out", "notes.txt"], "is a file",
         setup=_write("notes.txt", "mine\n")),
    Case("release-into-a-file-named-with-a-newline", ["build", "release", "--pools", "pools", "--out", "my\nnotes.txt"],
         "my\\nnotes.txt: is a file", setup=_write("my\nnotes.txt", "mine\n")),
    Case("release-into-its-pools", ["build", "release", "--pools", "pools", "--out", "pools"], "input"),
    Case("release-around-its-pools", ["build", "release", "--pools", "release/pools", "--out", "release"],
         "input", setup=lambda ws: shutil.copytree(ws / "pools", ws / "release" / "pools")),
    Case("release-missing-pools-folder", ["build", "release", "--pools", "nowhere", "--out", "out"],
         "missing candidate pools"),
    Case("release-missing-one-pool", ["build", "release", "--pools", "pools", "--out", "out"],
         "missing candidate pools: math.synthetic.jsonl", setup=_remove(POOL)),
    Case("release-pool-not-utf8", ["build", "release", "--pools", "pools", "--out", "out"],
         "math.synthetic.jsonl line 3: the candidate pool is not UTF-8",
         setup=lambda ws: (ws / POOL).write_bytes((ws / POOL).read_bytes().replace(b"instruction 2 ", b"instruction 2 \xe9 ", 1))),
    Case("release-pool-not-json", ["build", "release", "--pools", "pools", "--out", "out"],
         "math.synthetic.jsonl line 1: not JSON", setup=_edit(POOL, '{"', "{'")),
    Case("release-pool-bad-category", ["build", "release", "--pools", "pools", "--out", "out"],
         "math.synthetic.jsonl line 1", setup=_edit(POOL, '"category": "math"', '"category": "maths"')),
    Case("release-row-in-wrong-pool", ["build", "release", "--pools", "pools", "--out", "out"],
         "a code/synthetic row in the math/synthetic pool",
         setup=lambda ws: (ws / POOL).write_text((ws / "pools/code.synthetic.jsonl").read_text())),
    Case("release-pool-row-twice", ["build", "release", "--pools", "pools", "--out", "out"],
         f"{POOL} line 105: id math-syn-", setup=lambda ws: (ws / POOL).write_text(
             (ws / POOL).read_text() + (ws / POOL).read_text().splitlines(keepends=True)[2]), absent="out"),
    Case("release-negative-reserve", ["build", "release", "--pools", "pools", "--out", "out", "--reserve", "-5"],
         "--reserve: must be >= 0, got -5", usage=True),
    Case("release-validation-not-json", ["build", "release", "--pools", "pools", "--out", "out", "--validation", "v.json"],
         "v.json", setup=_write("v.json", "{not json")),
    Case("release-validation-unknown-id", ["build", "release", "--pools", "pools", "--out", "out", "--validation", "v.json"],
         "math-syn-000000000000", setup=_write("v.json", _validation(["math-syn-000000000000"]))),
    Case("release-validation-missing", ["build", "release", "--pools", "pools", "--out", "out", "--validation", "nope.json"],
         "nope.json"),
    # ------------------------------------------------------------ build natural / all
    Case("natural-sources-missing", ["build", "natural", "--sources", "nowhere", "--out", "nat"],
         "--sources nowhere: the sources folder does not exist"),
    Case("natural-into-users-folder", ["build", "natural", "--sources", "mirror", "--out", "mine"],
         "the folder exists and was not written by hexainst"),
    Case("natural-source-not-utf8", ["build", "natural", "--sources", "mirror", "--out", "nat", "--no-progress"],
         "test.jsonl", setup=_corrupt_math500),
    Case("natural-lock-not-json", ["build", "natural", "--sources", "mirror", "--out", "nat", "--lock", "lock.json"],
         "lock.json line 1: the lock file is not JSON", setup=_write("lock.json", "{")),
    Case("all-into-users-folder", ["build", "all", "--work", "work", "--out", "mine", "--sources", "mirror"],
         "not a HexaInst release folder"),
    Case("all-work-is-a-file", ["build", "all", "--work", "notes.txt", "--out", "out", "--sources", "mirror"],
         "notes.txt", setup=_write("notes.txt", "mine\n")),
    Case("all-validation-and-no-validation", ["build", "all", "--work", "work", "--out", "out", "--sources", "mirror",
                                              "--validation", "v.json", "--no-validation"],
         "--no-validation contradicts a validation file given too", setup=_write("v.json", "{}"), absent="out"),
    Case("release-report-inside-its-pools", ["build", "release", "--pools", "pools", "--out", "out", "--report",
                                             "pools/assembly-report.json"], "lies inside a --pools folder", absent="out"),
    Case("release-report-over-a-users-file", ["build", "release", "--pools", "pools", "--out", "out", "--report",
                                              "mine/README.md"], "is not an earlier assembly report", absent="out"),
    Case("release-out-where-nothing-may-be-written", ["build", "release", "--pools", "pools", "--out",
                                                      "/sys/hexainst-release"],
         "/sys/hexainst-release: cannot write there (/sys is not writable)", absent="/sys/hexainst-release"),
    Case("release-report-where-nothing-may-be-written", ["build", "release", "--pools", "pools", "--out", "out",
                                                         "--report", "/sys/assembly-report.json"],
         "cannot write into /sys", absent="out"),
    Case("natural-source-gone-from-the-mirror", ["build", "natural", "--sources", "mirror", "--out", "nat",
                                                 "--no-progress"],
         "source(s) humaneval could not be read", setup=_natural_then_lose_humaneval),
    # ------------------------------------------------------------ validate / info
    Case("validate-not-a-release", ["validate", "mine/data"], "not a HexaInst release (no README.md"),
    Case("validate-broken-yaml", ["validate", "release"], "README.md: the dataset card's YAML header cannot be read",
         setup=_edit("release/README.md", "configs:", "configs: [\n  - {")),
    Case("validate-missing-category-file", ["validate", "release"], "matches no file",
         setup=_remove("release/data/code.parquet")),
    Case("validate-truncated-parquet", ["validate", "release"], "code.parquet: cannot read parquet",
         setup=_truncate("release/data/code.parquet")),
    Case("validate-reserve-not-utf8", ["validate", "release"], "reserve.jsonl line 1: the reserve is not UTF-8",
         setup=lambda ws: (ws / "release/reserve/reserve.jsonl").write_bytes(
             b"\xff" + (ws / "release/reserve/reserve.jsonl").read_bytes())),
    Case("info-missing-folder", ["info", "nowhere"], "not a HexaInst release"),
    Case("info-card-not-utf8", ["info", "release"], "README.md: the dataset card is not UTF-8",
         setup=lambda ws: (ws / "release/README.md").write_bytes(
             (ws / "release/README.md").read_bytes().replace(b"HexaInst", b"Hexa\xffInst", 1))),
    Case("validate-category-label-out-of-range", ["validate", "release"], LABEL_9, setup=_category_label_9),
    Case("info-category-label-out-of-range", ["info", "release"], LABEL_9, setup=_category_label_9),
    Case("record-category-label-out-of-range", ["record", "--model", "nowhere", "--release", "release", "--out", "st"],
         LABEL_9, setup=_category_label_9, absent="st"),
    Case("publish-category-label-out-of-range", ["publish", "--repo", "me/hexainst", "--path", "release", "--dry-run",
                                                 "up"], LABEL_9, setup=_category_label_9, absent="up"),
    # ------------------------------------------------------------ publish
    Case("publish-dry-run-onto-the-release", ["publish", "--repo", "me/hexainst", "--path", "release", "--dry-run", "release"],
         "input"),
    Case("publish-dry-run-onto-another-release", ["publish", "--repo", "me/hexainst", "--path", "release",
                                                  "--dry-run", "copy"],
         "holds a HexaInst release, not a 'publish dry run' output",
         setup=lambda ws: shutil.copytree(ws / "release", ws / "copy")),
    Case("publish-invalid-repo-id", ["publish", "--repo", "me/hex inst", "--path", "release"],
         "--repo 'me/hex inst' is not a valid Hub repository id"),
    Case("publish-dry-run-into-users-folder", ["publish", "--repo", "me/hexainst", "--path", "release", "--dry-run", "mine"],
         "the folder exists and was not written by hexainst"),
    Case("publish-card-disagrees", ["publish", "--repo", "me/hexainst", "--path", "release", "--dry-run", "up"],
         "declares num_examples=", setup=_edit("release/README.md", "num_examples: 1200", "num_examples: 1199")),
    Case("publish-bad-repo-name", ["publish", "--repo", "hexainst", "--path", "release", "--dry-run", "up"],
         "--repo must be ORG/NAME"),
    Case("publish-dry-run-into-a-file", ["publish", "--repo", "me/hexainst", "--path", "release", "--dry-run",
                                         "notes.txt"], "is a file", setup=_write("notes.txt", "mine\n")),
    Case("publish-no-network", ["publish", "--repo", "me/hexainst", "--path", "release"],
         "cannot reach the Hugging Face Hub", env={"HF_HUB_OFFLINE": "1"}),
    Case("publish-without-licence", ["publish", "--repo", "me/hexainst", "--path", "release", "--dry-run", "up"],
         "refusing to publish: LICENSE.md: missing", setup=_remove("release/LICENSE.md"), absent="up"),
    Case("publish-without-reserve", ["publish", "--repo", "me/hexainst", "--path", "release", "--dry-run", "up"],
         "refusing to publish: reserve/reserve.jsonl: missing", setup=_remove("release/reserve/reserve.jsonl"),
         absent="up"),
    Case("publish-croissant-garbage", ["publish", "--repo", "me/hexainst", "--path", "release", "--dry-run", "up"],
         "croissant.json: cannot be read as JSON", setup=_write("release/croissant.json", "garbage\n"), absent="up"),
    Case("publish-generations-garbage", ["publish", "--repo", "me/hexainst", "--path", "release", "--dry-run", "up"],
         "synthetic.jsonl line 1: not JSON", setup=_write("release/generations/synthetic.jsonl", "{garbage\n"),
         absent="up"),
    # publish checks what validate checks: a card whose table of counts disagrees with the data (validate fails)
    Case("publish-card-table-disagrees", ["publish", "--repo", "me/hexainst", "--path", "release", "--dry-run", "up"],
         "refusing to publish: README.md: the table of counts says math: 100 / 100 / 201",
         setup=_edit("release/README.md", "| math | 100 | 100 | 200 |", "| math | 100 | 100 | 201 |"), absent="up"),
    Case("publish-unbalanced", ["publish", "--repo", "me/hexainst", "--path", "release", "--dry-run", "up"],
         "matches no file", setup=_remove("release/data/math.parquet")),
    # ------------------------------------------------------------ build synthetic
    Case("synthetic-into-users-folder", ["build", "synthetic", "--out", "mine", "--natural-pools", "pools",
                                         "--base-url", "http://127.0.0.1:9/v1", "--model", "m"],
         "the folder exists and was not written by hexainst"),
    Case("synthetic-endpoint-down", ["build", "synthetic", "--out", "syn", "--natural-pools", "pools",
                                     "--base-url", "http://127.0.0.1:9/v1", "--model", "typo", "--no-progress"],
         "127.0.0.1:9"),
    Case("synthetic-per-category-zero", ["build", "synthetic", "--out", "syn", "--per-category", "0",
                                         "--base-url", "http://127.0.0.1:9/v1", "--model", "m"],
         "argument --per-category: must be >= 1, got 0", usage=True),
    Case("synthetic-url-not-a-url", ["build", "synthetic", "--out", "syn", "--natural-pools", "pools",
                                     "--base-url", "http://[::1", "--model", "m"], "is not a valid URL", absent="syn"),
    Case("synthetic-cache-is-a-file", ["build", "synthetic", "--out", "syn", "--natural-pools", "pools",
                                       "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--cache",
                                       "mine/README.md"], "is a file, not a folder", absent="syn"),
    Case("synthetic-natural-pools-is-a-file", ["build", "synthetic", "--out", "syn", "--natural-pools", "notes.txt",
                                               "--base-url", "http://127.0.0.1:9/v1", "--model", "m"],
         "natural pool folder notes.txt: is a file, not a folder", setup=_write("notes.txt", "mine\n"), absent="syn"),
    Case("synthetic-bad-extra", ["build", "synthetic", "--out", "syn", "--extra", "maths=3"],
         "--extra", usage=True),
    # ------------------------------------------------------------ record / record-info / analyze
    Case("record-rows-not-utf8", ["record", "--model", "nowhere", "--rows", "rows.jsonl", "--out", "s2"],
         "rows.jsonl line 1: the rows file is not UTF-8",
         setup=lambda ws: (ws / "rows.jsonl").write_bytes(b"\xff" + (ws / "rows.jsonl").read_bytes())),
    Case("record-batch-size-zero", ["record", "--model", "nowhere", "--rows", "rows.jsonl", "--out", "s2",
                                    "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0", usage=True),
    Case("record-into-users-folder", ["record", "--model", "nowhere", "--rows", "rows.jsonl", "--out", "mine"],
         "mine"),
    Case("record-info-damaged-shard", ["record-info", "store"], "store", setup=_damage_first_shard),
    Case("record-merge-missing-part", ["record-merge", "--out", "merged", "store", "nowhere"], "nowhere"),
    Case("analyze-onto-its-store", ["analyze", "--store", "store", "--out", "store"], "input"),
    Case("analyze-into-users-folder", ["analyze", "--store", "store", "--out", "mine"],
         "the folder exists and was not written by hexainst"),
    Case("analyze-out-under-a-file", ["analyze", "--store", "store", "--out", "notes.txt/sub"],
         "notes.txt is a file, so no folder can be made under it", setup=_write("notes.txt", "mine\n")),
    Case("analyze-eps-out-of-range", ["analyze", "--store", "store", "--out", "rep", "--eps", "2"],
         "argument --eps: must be in (0, 1), got 2.0", usage=True),
    Case("analyze-damaged-shard", ["analyze", "--store", "store", "--out", "rep"], "store",
         setup=_damage_first_shard),
    Case("analyze-compare-missing", ["analyze", "--store", "store", "--compare", "nowhere", "--out", "rep"],
         "nowhere"),
    # ------------------------------------------------------------ annotate / finetune / baseline
    Case("annotate-no-server", ["annotate", "up", "--data-dir", "ls", "--release", "release"], "label-studio",
         env={"HEXAINST_LABEL_STUDIO": "/nonexistent/label-studio"}),
    Case("finetune-unknown-recipe", ["finetune", "run", "--variant", "tuned", "--recipe", "no-such-recipe",
                                     "--sources", "mirror", "--release", "release"], "no-such-recipe"),
    Case("finetune-recipe-unknown-placeholder", ["finetune", "run", "--variant", "tuned", "--recipe", "my-recipe.json",
                                                 "--sources", "mirror", "--release", "release", "--root", "ft"],
         "my-recipe.json: prompt.instruction_with_input: unknown placeholder {{context}}",
         setup=_recipe_with("instruction_with_input", "<start_of_turn>user\n{instruction}\n\n{input} ({context})<end_of_turn>\n"),
         absent="ft"),
    Case("finetune-recipe-stray-brace", ["finetune", "run", "--variant", "tuned", "--recipe", "my-recipe.json",
                                         "--sources", "mirror", "--release", "release", "--root", "ft"],
         "my-recipe.json: prompt.response: Single '}}' encountered", setup=_recipe_with("response", "{output} }"),
         absent="ft"),
    Case("baseline-bad-device", ["baseline", "llama2-7b", "--model-root", "mirror", "--out", "b", "--device", "banana"],
         "'banana' is not a torch device", absent="b"),
    Case("baseline-unknown-pair", ["baseline", "no-such-pair", "--model-root", "mirror", "--out", "b"],
         "no-such-pair"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, pristine: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(pristine, ws)
    case.setup(ws)
    before = snapshot(ws)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **case.env}
    env.pop("HEXAINST_SOURCES", None)
    done = subprocess.run([sys.executable, "-m", "hexainst", *case.argv], cwd=ws, env=env, capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == case.code, (done.returncode, done.stdout, done.stderr)
    if case.usage:
        assert lines[0].startswith("usage:"), done.stderr
        lines = [line for line in lines if not line.startswith(("usage:", " "))]
    assert len(lines) == 1, done.stderr
    assert case.message.format(ws=ws) in lines[0], lines[0]
    after = snapshot(ws)
    changed = changed_files(before, after)
    assert not changed, f"files changed or removed: {changed}"
    if case.absent:
        assert not (ws / case.absent).exists(), f"the failed run left {case.absent} behind"


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 50
    assert len({c.id for c in CASES}) == len(CASES)


def test_validate_names_a_damaged_companion_file(pristine: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(pristine, ws)
    (ws / "release" / "croissant.json").write_text("garbage\n")
    (ws / "release" / "LICENSE.md").unlink()
    done = subprocess.run([sys.executable, "-m", "hexainst", "validate", "release"], cwd=ws, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error: LICENSE.md: missing" in done.stdout
    assert "error: croissant.json: cannot be read as JSON" in done.stdout
    assert done.stdout.rstrip().endswith("FAILED")
