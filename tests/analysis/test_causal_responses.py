"""Responses of natural release rows read back from the offline mirror (the causal check's targets)."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from hexainst.analysis.causal_responses import ResponseError, natural_responses, option_marker
from hexainst.kernel.release import read_release_rows


def test_every_natural_release_row_gets_its_reference_answer(mirror_dir) -> None:
    rows = read_release_rows()
    found = natural_responses(rows, mirror_dir)
    natural = [r for r in rows if r["source"] == "natural"]
    assert set(found) == {r["id"] for r in natural}
    assert not any(r["id"] in found for r in rows if r["source"] == "synthetic")
    by_source = Counter(r["provenance"]["natural"]["source_name"] for r in natural)
    assert sum(by_source.values()) == len(found)
    for r in natural:
        nat = r["provenance"]["natural"]
        answer = found[r["id"]]
        if nat["source_name"] == "flan_classification":
            # an option marker ("(II)", "B).") became the option's own text
            options = [x[2:] for x in r["instruction"].rsplit("Options:", 1)[1].splitlines() if x.startswith("- ")]
            assert answer in options, (r["id"], answer, options)
        if nat["source_name"] == "humaneval":
            with gzip.open(mirror_dir / "humaneval" / "HumanEval.jsonl.gz", "rt") as fh:
                solutions = {d["task_id"]: d["canonical_solution"] for d in map(json.loads, fh)}
            assert answer == solutions[nat["row_id"]].strip()


def test_option_markers() -> None:
    text = "Is it good?\n\nOptions:\n- negative\n- positive"
    assert [option_marker(m, text) for m in ("(II)", "B).", "[b].", "1.", "(A)", "positive", "(Z)")] == [
        "positive", "positive", "positive", "negative", "negative", "positive", "(Z)"]
    assert option_marker("(A)", "no options here") == "(A)"


def test_a_row_the_mirror_lacks_is_named(tmp_path) -> None:
    (tmp_path / "triviaqa").mkdir()
    (tmp_path / "triviaqa" / "validation_subset.jsonl").write_text(
        json.dumps({"question_id": "tc_1", "answer": {"value": "Paris"}}) + "\n")
    row = {"id": "generalqa-nat-x", "provenance": {"natural": {"source_name": "triviaqa", "row_id": "tc_1"}}}
    assert natural_responses([row], tmp_path) == {"generalqa-nat-x": "Paris"}
    bad = {"id": "generalqa-nat-y", "provenance": {"natural": {"source_name": "triviaqa", "row_id": "tc_9"}}}
    with pytest.raises(ResponseError, match="no row with question_id 'tc_9' .*generalqa-nat-y"):
        natural_responses([bad], tmp_path)
    with pytest.raises(ResponseError, match="not found"):
        natural_responses([{"id": "a", "provenance": {"natural": {"source_name": "alpaca", "row_id": "3"}}}],
                          tmp_path)
