"""The validation file: schema, atomic write, and read() errors that name the entry."""

from __future__ import annotations

import copy
import json

import pytest

from hexainst.kernel import validation_file
from hexainst.kernel.validation_file import ValidationFileError
from hexainst.kernel.records import record_schema
from annotation_helpers import verdict

IDS = ["math-nat-0000000000a1", "math-syn-0000000000a2", "code-nat-0000000000a3"]


def document() -> dict:
    j = [verdict("junior1", "accept"), verdict("junior2", "accept")]
    return {
        "format": "hexainst-validation",
        "format_version": 1,
        "created_from": {"label_studio_version": "1.23.2", "junior_project": "J (#1)", "senior_project": "S (#2)"},
        "agreement": {
            "n_tasks": 3, "n_double_annotated": 3, "kappa_decision": 0.5, "kappa_category_correct": None,
            "error_type_agreement": {e: {"kappa": None, "percent": 100.0}
                                     for e in ("grammar", "redundancy", "wrong_category", "unclear")},
            "n_disagreements": 1, "n_senior_decided": 1, "extra_annotations_ignored": 0,
        },
        "outcomes": [
            {"id": IDS[0], "status": "accepted", "corrected_instruction": None, "juniors": j, "senior": None},
            {"id": IDS[1], "status": "revised", "corrected_instruction": "Fixed text.",
             "juniors": [verdict("junior1", "accept"), verdict("junior2", "reject")],
             "senior": verdict("senior", "revise", corrected="Fixed text.")},
            {"id": IDS[2], "status": "rejected", "corrected_instruction": None,
             "juniors": [verdict("junior1", "reject"), verdict("junior2", "reject")], "senior": None},
        ],
    }  # fmt: skip


def test_verdict_definition_is_the_record_schemas():
    assert validation_file.schema()["$defs"]["verdict"]["properties"] == record_schema()["$defs"]["verdict"]["properties"]
    assert validation_file.schema()["$defs"]["verdict"]["required"] == record_schema()["$defs"]["verdict"]["required"]


def test_round_trip_and_deterministic_bytes(tmp_path):
    out = validation_file.write(tmp_path / "v.json", document())
    first = out.read_bytes()
    assert validation_file.read(out, IDS) == document()
    validation_file.write(out, document())
    assert out.read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["v.json"]  # no temp file left behind


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["outcomes"][1].update(corrected_instruction=None), r"outcomes\[1\] \(id='math-syn-0000000000a2'\)"),
        (lambda d: d["outcomes"][1].update(corrected_instruction="  "), r"outcomes\[1\] \(id='math-syn-0000000000a2'\)"),
        (lambda d: d["outcomes"][0].update(status="maybe"), r"outcomes\[0\] \(id='math-nat-0000000000a1'\) field status"),
        (lambda d: d["outcomes"][2]["juniors"].pop(), r"outcomes\[2\] \(id='code-nat-0000000000a3'\) field juniors"),
        (lambda d: d["outcomes"][0]["juniors"][0].update(decision="ok"), r"outcomes\[0\].*juniors\.0\.decision"),
        (lambda d: d["outcomes"].append(copy.deepcopy(d["outcomes"][0])), r"outcomes\[3\].*duplicate id"),
        (lambda d: d.update(format_version=2), r"field format_version"),
        (lambda d: d["agreement"].pop("n_tasks"), r"n_tasks"),
    ],
)
def test_malformed_file_names_the_entry(tmp_path, mutate, message):
    doc = document()
    mutate(doc)
    file = tmp_path / "v.json"
    file.write_text(json.dumps(doc))
    with pytest.raises(ValidationFileError, match=message):
        validation_file.read(file, IDS)


def test_unknown_id_and_not_json(tmp_path):
    file = tmp_path / "v.json"
    file.write_text(json.dumps(document()))
    with pytest.raises(ValidationFileError, match=r"outcomes\[2\] \(id='code-nat-0000000000a3'\): unknown instruction id"):
        validation_file.read(file, IDS[:2])
    file.write_text('{"format": "hexainst-validation", ')
    with pytest.raises(ValidationFileError, match=r"v.json: not valid JSON"):
        validation_file.read(file, IDS)
    with pytest.raises(ValidationFileError, match="cannot read"):
        validation_file.read(tmp_path / "missing.json", IDS)


def test_write_refuses_an_invalid_document(tmp_path):
    doc = document()
    doc["outcomes"][0]["status"] = "pending"
    with pytest.raises(ValidationFileError):
        validation_file.write(tmp_path / "v.json", doc)
    assert not (tmp_path / "v.json").exists()
