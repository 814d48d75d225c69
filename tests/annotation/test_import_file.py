"""The verdict file of 'hexainst annotate import': read strictly, one clear line naming the file and line."""

from __future__ import annotations

import json

import pytest

from hexainst.annotation.importer import VerdictImportError, read_verdict_file
from hexainst.cli import main

GOOD = {"id": "math-syn-0000000000a1", "decision": "reject", "category_correct": True, "errors": ["unsound", "grammar"],
        "corrected_instruction": None}


def _file(tmp_path, *lines) -> str:
    path = tmp_path / "junior1.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return str(path)


def test_a_good_file_reads_in_vocabulary_order_with_its_hash(tmp_path):
    revise = {**GOOD, "id": "code-nat-0000000000b2", "decision": "revise", "errors": [],
              "corrected_instruction": "  Better.  ", "annotator": "junior1"}
    verdicts, sha = read_verdict_file(_file(tmp_path, GOOD, "", revise), "junior1")
    assert verdicts[0]["errors"] == ["grammar", "unsound"]
    assert verdicts[1]["corrected_instruction"] == "Better." and "annotator" not in verdicts[1]
    assert len(sha) == 64
    _, other = read_verdict_file(_file(tmp_path, GOOD), "junior1")
    assert other != sha


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"line 2: not valid JSON"),
        ({**GOOD, "decision": "ok"}, r"line 2 \(id=math-syn-0000000000a1\): decision 'ok'"),
        ({**GOOD, "errors": ["typo"]}, r"line 2 .*errors must be a list of .*unsound; got 'typo'"),
        ({**GOOD, "errors": ["unsound", "unsound"]}, r"line 2 .*repeats an error type"),
        ({**GOOD, "category_correct": "yes"}, r"line 2 .*category_correct must be true or false"),
        ({k: v for k, v in GOOD.items() if k != "errors"}, r"line 2: missing errors"),
        ({**GOOD, "origin": "synthetic"}, r"line 2: unknown key 'origin'"),
        ({**GOOD, "decision": "revise"}, r"line 2 .*revise without a corrected_instruction"),
        ({**GOOD, "annotator": "junior2"}, r"line 2 .*'junior2''s; it cannot be imported as 'junior1'"),
        ({**GOOD, "id": "math-syn-0000000000a1"}, r"line 2: id math-syn-0000000000a1 repeats line 1"),
        ([1, 2], r"line 2: expected a JSON object, got list"),
    ],
)
def test_a_bad_line_is_named(tmp_path, line, message):
    first = {**GOOD, "id": "math-syn-0000000000a1"}
    path = _file(tmp_path, first, line)
    with pytest.raises(VerdictImportError, match=rf"junior1.jsonl {message}"):
        read_verdict_file(path, "junior1")


def test_cli_bad_file_is_one_line_before_any_server_is_needed(tmp_path, capsys):
    from hexainst.annotation.session import Session

    Session.load_or_create(tmp_path / "round").save()  # a round that was never started: no server answers
    path = _file(tmp_path, GOOD, {**GOOD, "id": "code-nat-0000000000b2", "decision": "maybe"})
    assert main(["annotate", "import", "--data-dir", str(tmp_path / "round"), "--as", "junior1", path]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "junior1.jsonl line 2 (id=code-nat-0000000000b2): decision 'maybe'" in err
    assert main(["annotate", "import", "--data-dir", str(tmp_path / "round"), "--as", "junior9", path]) == 2
    assert "no annotator 'junior9'" in capsys.readouterr().err
    assert main(["annotate", "import", "--data-dir", str(tmp_path / "round"), "--as", "junior1",
                 "--annotator-kind", "model", "--model", "m", path]) == 2
    assert "needs --model NAME and --prompt FILE" in capsys.readouterr().err
