"""The natural build on the real offline mirror (../shared/sources): counts and checked properties.

The expectations below are computed by the tests from the mirror files themselves (read with
plain json/gzip, not through the builders), never from the builders' own output.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path

import pytest
from stage_runs import natural_pools

from hexainst.builders.natural import LOCK_FILE, REPORT_FILE, pool_file
from hexainst.kernel.records import validate_rows
from hexainst.kernel.vocab import CATEGORIES

#: FLAN template indices that reverse the task (from FLAN's templates.py; the mirror README
#: names "Write a title:", "Please ask me a question.", "Write an article based on this summary").
REVERSED_TEMPLATE_IDX = {
    "ag_news_subset:1.0.0": {8, 9},  # write a title / what is a good title
    "glue/sst2:2.0.0": {8, 9},  # write / generate a movie review
    "trec:1.0.0": {9},  # please ask me a question
    "samsum:1.0.0": {7, 8, 9},  # write a dialog
    "huggingface:xsum": {8, 9},  # write an article based on this summary
}
REVERSED_OPENINGS = ("write a title", "please ask me a question", "write an article based on", "write a dialog",
                     "generate a short movie review", "write a positive movie review", "write a negative movie review")


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _pool(out: Path, category: str) -> list[dict]:
    return [json.loads(line) for line in (out / pool_file(category)).read_text("utf-8").splitlines()]


def _prov(row: dict) -> dict:
    return row["provenance"]["natural"]


@pytest.fixture(scope="module")
def out(real_build):
    return real_build[0]


@pytest.fixture(scope="module")
def report(real_build):
    return real_build[1]


def test_every_cell_reaches_130_or_the_report_says_why(out, report):
    for category in CATEGORIES:
        rows = _pool(out, category)
        validate_rows(rows, where=category)
        assert all(r["validation"]["status"] == "pending" and r["source"] == "natural" for r in rows)
        cell = report["cells"][category]
        assert cell["candidates"] == len(rows)
        if len(rows) < 130:
            assert cell["shortfall"] == 130 - len(rows)
            assert str(len(rows)) in cell["note"]
        else:
            assert cell["shortfall"] == 0
    # On this mirror every cell does reach the target.
    assert report["short_cells"] == {}
    assert all(report["cells"][c]["candidates"] >= 130 for c in CATEGORIES)


def test_report_accounts_for_every_row(report):
    for name, entry in report["sources"].items():
        assert entry["status"] == "ok", name
        assert entry["rows_read"] == entry["kept"] + sum(entry["dropped"].values()), name
    assert report["sources"]["humaneval"]["rows_read"] == 164
    assert report["sources"]["math500"]["rows_read"] == 500
    assert report["sources"]["alpaca"]["rows_read"] == 4000
    assert report["sources"]["triviaqa"]["rows_read"] == 400


def test_flan_rows_read_equals_the_mirror(report, mirror_dir):
    n = sum(len(_jsonl(p)) for p in sorted((mirror_dir / "flan").glob("*.jsonl*")))
    assert report["sources"]["flan_classification"]["rows_read"] == n
    assert report["sources"]["flan_summarization"]["rows_read"] == n


def test_no_code_instruction_contains_its_canonical_solution_or_tests(out, mirror_dir):
    problems = {r["task_id"]: r for r in _jsonl(mirror_dir / "humaneval" / "HumanEval.jsonl.gz")}
    rows = _pool(out, "code")
    assert len(rows) >= 130  # the loop below must have rows to check
    for row in rows:
        src = problems[_prov(row)["row_id"]]
        text = row["instruction"]
        assert src["canonical_solution"].strip() not in text
        # No statement of the solution body that is not already in the prompt leaks in.
        for line in src["canonical_solution"].splitlines():
            line = line.strip()
            if len(line) > 25 and line not in src["prompt"]:
                assert line not in text, (src["task_id"], line)
        assert "def check(" not in text
        assert src["entry_point"] in text
        assert _prov(row)["pattern_id"] == "humaneval.prompt"


def test_no_qa_instruction_contains_its_answer_value(out, mirror_dir):
    questions = {r["question_id"]: r for r in _jsonl(mirror_dir / "triviaqa" / "validation_subset.jsonl")}
    rows = _pool(out, "generalqa")
    assert len(rows) >= 130
    for row in rows:
        value = questions[_prov(row)["row_id"]]["answer"]["value"]
        text = row["instruction"].casefold()
        assert not re.search(r"(?<!\w)" + re.escape(value.casefold()) + r"(?!\w)", text), (value, text)
        if len(value) >= 4:
            assert value.casefold() not in text


def test_every_math_instruction_equals_its_problem_up_to_whitespace(out, mirror_dir):
    problems = {r["unique_id"]: r["problem"] for r in _jsonl(mirror_dir / "math500" / "test.jsonl")}
    rows = _pool(out, "math")
    assert len(rows) >= 130
    for row in rows:
        assert row["instruction"].split() == problems[_prov(row)["row_id"]].split()


def test_no_cls_or_sum_candidate_comes_from_a_reversed_template(out, mirror_dir):
    raw = {}
    for path in sorted((mirror_dir / "flan").glob("*.jsonl")):
        for i, r in enumerate(_jsonl(path)):
            raw[f"{path.name}:{i}"] = r
    for category in ("classification", "summarization"):
        rows = _pool(out, category)
        assert len(rows) >= 130, category
        for row in rows:
            src = raw[_prov(row)["row_id"]]
            assert src["template_idx"] not in REVERSED_TEMPLATE_IDX[src["task_name"]], (row["id"], src["inputs"][:80])
            assert _prov(row)["task_name"] == src["task_name"]
            # The template recognised from the text is the one FLAN used (the mirror records it).
            assert _prov(row)["pattern_id"].rsplit(".", 1)[1] == f"t{src['template_idx']}"
            assert not row["instruction"].casefold().startswith(REVERSED_OPENINGS)
        tasks = {_prov(r)["task_name"] for r in rows}
        expected = {"classification": {"ag_news_subset:1.0.0", "glue/sst2:2.0.0", "trec:1.0.0"},
                    "summarization": {"samsum:1.0.0", "huggingface:xsum"}}[category]
        assert tasks == expected


def test_every_generation_candidate_comes_from_an_empty_input_row(out, mirror_dir):
    rows_src = _jsonl(mirror_dir / "alpaca" / "alpaca_first4000.jsonl")
    rows = _pool(out, "generation")
    assert len(rows) >= 130
    for row in rows:
        src = rows_src[int(_prov(row)["row_id"])]
        assert src["input"].strip() == ""
        assert row["instruction"].split() == src["instruction"].split()


def test_revisions_are_the_sha256_of_the_files_read(out, mirror_dir):
    lock = json.loads((out / LOCK_FILE).read_text())
    assert set(lock["sources"]) == {"flan_classification", "flan_summarization", "humaneval", "triviaqa", "alpaca",
                                    "math500"}
    assert all(entry["files"] for entry in lock["sources"].values())
    for entry in lock["sources"].values():
        assert entry["mode"] == "mirror"
        for rel, digest in entry["files"].items():
            assert digest == "sha256:" + hashlib.sha256((mirror_dir / rel).read_bytes()).hexdigest(), rel
    he = lock["sources"]["humaneval"]["files"]["humaneval/HumanEval.jsonl.gz"]
    assert {_prov(r)["revision"] for r in _pool(out, "code")} == {he}


def test_no_duplicate_instructions_within_a_pool(out):
    for category in CATEGORIES:
        texts = [" ".join(r["instruction"].casefold().split()) for r in _pool(out, category)]
        assert len(texts) >= 130, category
        assert len(texts) == len(set(texts)), category


def test_second_run_with_the_lock_is_byte_identical(out, mirror_dir, tmp_path_factory):
    again = tmp_path_factory.mktemp("natural-real-again")
    natural_pools(again, sources_dir=mirror_dir, lock_file=out / LOCK_FILE, seed=0, progress=False)
    for name in [pool_file(c) for c in CATEGORIES] + [LOCK_FILE, REPORT_FILE]:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


def test_no_samsum_dialogue_with_an_empty_turn(out):
    """SAMSum dialogues where a turn is empty (an image or link was removed) are not self-contained."""
    rows = [r for r in _pool(out, "summarization") if _prov(r)["task_name"].startswith("samsum")]
    assert len(rows) >= 100
    empty_turn = re.compile(r"^([^:\n]{1,40}):[ \t]*$", re.M)

    def empty_turns(text: str) -> list[str]:  # FLAN's own headers ("Dialogue:", "Here is a dialogue:") are not turns
        return [m.group(1) for m in empty_turn.finditer(text)
                if not m.group(1).lower().endswith(("dialogue", "dialog", "conversation"))]

    assert not [r["id"] for r in rows if empty_turns(r["instruction"])]
    assert json.loads((out / REPORT_FILE).read_text())["sources"]["flan_summarization"]["dropped"]["empty_turn"] > 0


def test_describe_rows_are_generation_only_with_a_creative_cue(out):
    """'Describe the Renaissance period' asks for an explanation (general QA); 'Describe the smell of coffee' is generation."""
    described = [r["instruction"] for r in _pool(out, "generation") if r["instruction"].lower().startswith("describe")]
    assert described  # some creative ones stay
    cue = re.compile(r"^describe (?:a|an)\b|poetic|vivid|imaginary|fictional|fantasy|dream|"
                     r"moment|place you|smell|scent|taste|tasting|flavou?r|sound of|feeling of|experience of", re.I)
    assert all(cue.search(text) for text in described), [t for t in described if not cue.search(t)][:5]
    assert not [t for t in described if re.match(r"describe (?:the|how|what|why)\b", t, re.I) and not re.search(
        r"poetic|vivid|imaginary|fictional|fantasy|dream|smell|scent|taste|tasting|flavou?r|sound of|feeling of|"
        r"experience of|moment", t, re.I)]
