"""The validation file: schema, atomic write, and read() errors that name the entry."""

from __future__ import annotations

import copy
import json

import pytest

from hexainst.kernel import validation_file
from hexainst.kernel.validation_file import ValidationFileError
from hexainst.kernel.records import record_schema
from annotation_helpers import v1_verdict, verdict

IDS = ["math-nat-0000000000a1", "math-syn-0000000000a2", "code-nat-0000000000a3"]


MODEL = {"kind": "model", "model": "judge-x", "prompt": "judge.txt sha256:" + "0" * 64,
         "how": "independent agent session, saw only its own tasks and the guidelines"}


def document() -> dict:
    j = [verdict("junior1", "accept"), verdict("junior2", "accept", identity=MODEL)]
    return copy.deepcopy({
        "format": "hexainst-validation",
        "format_version": 2,
        "created_from": {"label_studio_version": "1.23.2", "junior_project": "J (#1)", "senior_project": "S (#2)"},
        "annotators": [
            {"annotator": "junior1", "role": "junior", "identity": j[0]["identity"]},
            {"annotator": "junior2", "role": "junior", "identity": MODEL},
            {"annotator": "senior", "role": "senior", "identity": j[0]["identity"]},
        ],
        "agreement": {
            "n_tasks": 3, "n_double_annotated": 3, "kappa_decision": 0.5, "kappa_category_correct": None,
            "error_type_agreement": {e: {"kappa": None, "percent": 100.0}
                                     for e in ("grammar", "redundancy", "wrong_category", "unclear", "unsound")},
            "n_disagreements": 1, "n_senior_decided": 1, "extra_annotations_ignored": 0,
        },
        "outcomes": [
            {"id": IDS[0], "status": "accepted", "corrected_instruction": None, "juniors": j, "senior": None},
            {"id": IDS[1], "status": "revised", "corrected_instruction": "Fixed text.",
             "juniors": [verdict("junior1", "accept"), verdict("junior2", "reject", errors=["unsound"], identity=MODEL)],
             "senior": verdict("senior", "revise", corrected="Fixed text.")},
            {"id": IDS[2], "status": "rejected", "corrected_instruction": None,
             "juniors": [verdict("junior1", "reject"), verdict("junior2", "reject", identity=MODEL)], "senior": None},
        ],
    })  # fmt: skip


def v1_document() -> dict:
    """The same round as format version 1 wrote it: no identities, no unsound, no annotators list."""
    doc = copy.deepcopy(document())
    doc["format_version"] = 1
    del doc["annotators"]
    del doc["agreement"]["error_type_agreement"]["unsound"]
    for o in doc["outcomes"]:
        o["juniors"] = [v1_verdict(v["annotator"], v["decision"], v["category_correct"],
                                   [e for e in v["errors"] if e != "unsound"], v["corrected_instruction"])
                        for v in o["juniors"]]
        if o["senior"]:
            v = o["senior"]
            o["senior"] = v1_verdict(v["annotator"], v["decision"], v["category_correct"], v["errors"],
                                     v["corrected_instruction"])
    return doc


def test_a_version_1_file_is_still_read_and_upgraded(tmp_path):
    file = tmp_path / "v1.json"
    file.write_text(json.dumps(v1_document()))
    doc = validation_file.read(file, IDS)
    assert doc["format_version"] == 2
    validation_file.check(doc)  # the upgraded document is a valid version-2 document
    unrecorded = {"kind": "unrecorded", "model": None, "prompt": None, "how": None}
    verdicts = [v for o in doc["outcomes"] for v in (*o["juniors"], o["senior"]) if v]
    assert verdicts and all(v["identity"] == unrecorded for v in verdicts)  # never guessed to be a person
    assert {a["annotator"]: a["role"] for a in doc["annotators"]} == {"junior1": "junior", "junior2": "junior", "senior": "senior"}
    assert doc["agreement"]["error_type_agreement"]["unsound"] == {"kappa": None, "percent": None}
    assert [o["status"] for o in doc["outcomes"]] == ["accepted", "revised", "rejected"]


def test_version_1_does_not_know_unsound_and_version_2_requires_identity(tmp_path):
    old = v1_document()
    old["outcomes"][2]["juniors"][0]["errors"] = ["unsound"]
    with pytest.raises(ValidationFileError, match=r"outcomes\[2\].*juniors\.0\.errors"):
        validation_file.check(old)
    new = document()
    del new["outcomes"][0]["juniors"][1]["identity"]
    with pytest.raises(ValidationFileError, match=r"outcomes\[0\].*identity"):
        validation_file.check(new)
    new = json.loads(json.dumps(document()))
    new["outcomes"][0]["juniors"][1]["identity"]["prompt"] = None  # a model without its prompt
    with pytest.raises(ValidationFileError, match=r"outcomes\[0\].*juniors\.1\.identity"):
        validation_file.check(new)
    with pytest.raises(ValidationFileError, match="only version 2 is written"):
        validation_file.write(tmp_path / "old.json", v1_document())


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
        (lambda d: d.update(format_version=3), r"field format_version"),
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
