"""The validation file: schema (format 3: rounds), upgrades of versions 1 and 2, merge of rounds, statuses that
must follow the verdicts, atomic write, and read() errors that name the entry."""

from __future__ import annotations

import copy
import json

import pytest
from annotation_helpers import v1_verdict, verdict

from hexainst.kernel import validation_file
from hexainst.kernel.records import record_schema
from hexainst.kernel.validation_file import ValidationFileError

IDS = ["math-nat-0000000000a1", "math-syn-0000000000a2", "code-nat-0000000000a3"]


MODEL = {"kind": "model", "model": "judge-x", "prompt": "judge.txt sha256:" + "0" * 64,
         "how": "independent agent session, saw only its own tasks and the guidelines"}


def v2_document() -> dict:
    """One round as format version 2 wrote it (no rounds, no round per outcome)."""
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


def document(round_number: int = 1, awaiting: list[str] | None = None) -> dict:
    """The same round in format 3: one round, its waiting tasks listed, every outcome naming its round."""
    old = v2_document()
    return {
        "format": "hexainst-validation",
        "format_version": 3,
        "rounds": [{"round": round_number, "created_from": old["created_from"], "annotators": old["annotators"],
                    "agreement": old["agreement"], "n_outcomes": 3, "awaiting_senior": awaiting or []}],
        "outcomes": [{"id": o["id"], "round": round_number, **{k: v for k, v in o.items() if k != "id"}}
                     for o in old["outcomes"]],
    }


def v1_document() -> dict:
    """The same round as format version 1 wrote it: no identities, no unsound, no annotators list."""
    doc = copy.deepcopy(v2_document())
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
    assert doc["format_version"] == 3
    validation_file.check(doc)  # the upgraded document is a valid version-3 document
    unrecorded = {"kind": "unrecorded", "model": None, "prompt": None, "how": None}
    verdicts = [v for o in doc["outcomes"] for v in (*o["juniors"], o["senior"]) if v]
    assert verdicts and all(v["identity"] == unrecorded for v in verdicts)  # never guessed to be a person
    [only] = doc["rounds"]
    assert only["round"] == 1 and only["n_outcomes"] == 3 and only["awaiting_senior"] is None  # only counted in v1
    assert {a["annotator"]: a["role"] for a in only["annotators"]} == {"junior1": "junior", "junior2": "junior", "senior": "senior"}
    assert only["agreement"]["error_type_agreement"]["unsound"] == {"kappa": None, "percent": None}
    assert [(o["status"], o["round"]) for o in doc["outcomes"]] == [("accepted", 1), ("revised", 1), ("rejected", 1)]


def test_a_version_2_file_is_read_as_round_1(tmp_path):
    file = tmp_path / "v2.json"
    file.write_text(json.dumps(v2_document()))
    doc = validation_file.read(file, IDS)
    expected = document()
    expected["rounds"][0]["awaiting_senior"] = None  # version 2 only counted them
    assert doc == expected
    validation_file.check(v2_document())


def test_version_1_does_not_know_unsound_and_version_2_requires_identity(tmp_path):
    old = v1_document()
    old["outcomes"][2]["juniors"][0]["errors"] = ["unsound"]
    with pytest.raises(ValidationFileError, match=r"outcomes\[2\].*juniors\.0\.errors"):
        validation_file.check(old)
    new = v2_document()
    del new["outcomes"][0]["juniors"][1]["identity"]
    with pytest.raises(ValidationFileError, match=r"outcomes\[0\].*identity"):
        validation_file.check(new)
    new = json.loads(json.dumps(document()))
    new["outcomes"][0]["juniors"][1]["identity"]["prompt"] = None  # a model without its prompt
    with pytest.raises(ValidationFileError, match=r"outcomes\[0\].*juniors\.1\.identity"):
        validation_file.check(new)
    for old in (v1_document(), v2_document()):
        with pytest.raises(ValidationFileError, match="only version 3 is written"):
            validation_file.write(tmp_path / "old.json", old)
    assert not (tmp_path / "old.json").exists()


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
        (lambda d: d.update(format_version=4), r"field format_version"),
        (lambda d: d["rounds"][0]["agreement"].pop("n_tasks"), r"n_tasks"),
        (lambda d: d["outcomes"][0].pop("round"), r"outcomes\[0\] \(id='math-nat-0000000000a1'\).*'round' is a required"),
        (lambda d: d["outcomes"][2].update(round=2), r"outcomes\[2\] \(id='code-nat-0000000000a3'\): round 2 is not among"),
        (lambda d: d["rounds"][0].update(n_outcomes=2), r"rounds\[0\] \(round 1\): n_outcomes is 2 but 3 outcomes"),
        (lambda d: d["rounds"].append({**d["rounds"][0], "n_outcomes": 0}), r"rounds\[1\]: round 1 after round 1"),
        (lambda d: d["rounds"][0].update(awaiting_senior=["not-an-id"]), r"rounds\.0\.awaiting_senior"),
        (lambda d: d.update(rounds=[]), r"field rounds"),
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


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        # the senior's verdict decides: it says revise, the status says accepted
        (lambda d: d["outcomes"][1].update(status="accepted", corrected_instruction=None),
         r"outcomes\[1\] \(id='math-syn-0000000000a2'\): status accepted contradicts the senior's verdict \(revised\)"),
        # the agreeing juniors decide: both reject, the status says accepted
        (lambda d: d["outcomes"][2].update(status="accepted"),
         r"outcomes\[2\] \(id='code-nat-0000000000a3'\): status accepted contradicts the agreeing juniors \(rejected\)"),
        # the juniors disagree and nobody adjudicated: no status can follow
        (lambda d: d["outcomes"][1].update(senior=None),
         r"outcomes\[1\] \(id='math-syn-0000000000a2'\): status revised but the verdicts decide nothing"),
        # the right status with another corrected text than the senior typed
        (lambda d: d["outcomes"][1].update(corrected_instruction="Another text."),
         r"outcomes\[1\] \(id='math-syn-0000000000a2'\): the corrected instruction differs"),
    ],
)
def test_a_status_that_contradicts_its_verdicts_is_refused(tmp_path, mutate, message):
    for make in (document, v2_document):  # format 3 and the older formats alike
        doc = make()
        mutate(doc)
        with pytest.raises(ValidationFileError, match=message):
            validation_file.check(doc)
        file = tmp_path / "v.json"
        file.write_text(json.dumps(doc))
        with pytest.raises(ValidationFileError, match=message):
            validation_file.read(file, IDS)
        with pytest.raises(ValidationFileError, match=message):
            validation_file.write(tmp_path / "out.json", doc)
        assert not (tmp_path / "out.json").exists()


def test_the_tasks_awaiting_the_senior_are_listed():
    doc = document(awaiting=["math-nat-0000000000b9"])
    validation_file.check(doc)
    assert doc["rounds"][0]["awaiting_senior"] == ["math-nat-0000000000b9"]
    doc["rounds"][0]["awaiting_senior"] = ["math-nat-0000000000b9", "math-nat-0000000000b9"]
    with pytest.raises(ValidationFileError, match="awaiting_senior"):
        validation_file.check(doc)


def _second_round() -> dict:
    """Round 1 of another Label Studio round, over two new rows, by other annotators."""
    other = {"kind": "model", "model": "judge-y", "prompt": "other.md sha256:" + "1" * 64, "how": "other guidelines"}
    doc = document()
    doc["rounds"][0]["annotators"] = [{"annotator": "junior3", "role": "junior", "identity": other}]
    doc["rounds"][0]["agreement"] = {**doc["rounds"][0]["agreement"], "kappa_decision": 0.25, "n_tasks": 2}
    doc["rounds"][0]["n_outcomes"] = 2
    doc["outcomes"] = [
        {"id": "math-syn-0000000000c1", "round": 1, "status": "rejected", "corrected_instruction": None,
         "juniors": [verdict("junior3", "reject", identity=other), verdict("junior4", "reject", identity=other)],
         "senior": None},
        {"id": "code-syn-0000000000c2", "round": 1, "status": "accepted", "corrected_instruction": None,
         "juniors": [verdict("junior3", "accept", identity=other), verdict("junior4", "accept", identity=other)],
         "senior": None},
    ]
    return doc


def test_merge_numbers_the_new_round_after_the_earlier_ones():
    merged = validation_file.merge(document(), _second_round())
    validation_file.check(merged)
    assert [(r["round"], r["n_outcomes"], r["agreement"]["kappa_decision"]) for r in merged["rounds"]] == [
        (1, 3, 0.5), (2, 2, 0.25)]
    assert merged["rounds"][0]["annotators"] == document()["rounds"][0]["annotators"]  # each round keeps its own
    assert merged["rounds"][1]["annotators"][0]["annotator"] == "junior3"
    rounds = {o["id"]: o["round"] for o in merged["outcomes"]}
    assert rounds == {**{i: 1 for i in IDS}, "math-syn-0000000000c1": 2, "code-syn-0000000000c2": 2}
    assert [o["id"] for o in merged["outcomes"]] == sorted(rounds)  # one order, whatever the rounds
    third = validation_file.merge(merged, document(round_number=1) | {"outcomes": [], "rounds": [
        {**document()["rounds"][0], "n_outcomes": 0}]})
    assert [r["round"] for r in third["rounds"]] == [1, 2, 3]


def test_merge_refuses_an_id_decided_in_both_rounds():
    again = _second_round()
    again["outcomes"][0] = {**document()["outcomes"][2], "round": 1}  # code-nat-...a3 again
    again["outcomes"].sort(key=lambda o: o["id"])
    with pytest.raises(ValidationFileError, match=r"^--previous: code-nat-0000000000a3 was already decided in round 1"):
        validation_file.merge(document(), again)


def test_the_committed_release_file_is_consistent():
    """The release's own validation file passes the status check (and reads as round 1 when it is version 2)."""
    from pathlib import Path

    file = Path(validation_file.__file__).parents[1] / "validation.json"
    if not file.is_file():
        pytest.skip("no validation.json in this checkout's release")
    doc = validation_file.read(file, None)
    assert doc["rounds"][0]["round"] == 1 and sum(r["n_outcomes"] for r in doc["rounds"]) == len(doc["outcomes"])


def test_a_written_validation_file_is_readable_by_its_owner_only(tmp_path):
    import stat

    path = validation_file.write(tmp_path / "validation.json", document())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # rewritten over a file a user made readable: the new file is private again, not the old mode kept
    path.chmod(0o644)
    validation_file.write(path, document())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
