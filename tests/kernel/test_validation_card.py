"""The card's validation section and 'hexainst info': "validated" only where true, who validated, kappa."""

from __future__ import annotations

import copy
import json

from validation_docs import outcome, validation_doc

from hexainst.cli import main
from hexainst.kernel.release import write_release
from hexainst.kernel.validation_text import PAPER, summary

PERSON = {"kind": "person", "model": None, "prompt": None, "how": None}
MODEL = {"kind": "model", "model": "judge-x", "prompt": "judge.md sha256:" + "a" * 64, "how": "saw only its own tasks"}


def _decided(row: dict, status: str, identities=(MODEL, PERSON)) -> dict:
    row = copy.deepcopy(row)
    verdicts = [{"annotator": f"junior{i + 1}", "identity": ident, "decision": "accept", "category_correct": True,
                 "errors": [], "corrected_instruction": None} for i, ident in enumerate(identities)]
    row["validation"] = {"status": status, "original_instruction": None, "juniors": verdicts, "senior": None}
    return row


def test_pending_rows_are_never_called_validated(rows):
    text = summary(rows)
    assert text.startswith("Validation pending: no row of this release has been validated") and PAPER in text
    assert "Validated" not in text and "Partly" not in text and "Who validated" not in text


def test_a_partial_round_is_described_exactly(rows):
    partial = [_decided(r, "accepted") for r in rows[:2]] + rows[2:]
    text = summary(partial)
    assert text.startswith(f"Partly validated: 2 of {len(rows)} rows")
    assert f"the other {len(rows) - 2} are `pending`: not decided, not validated" in text
    assert "Who validated (1 person, 1 model annotator)" in text and "`judge-x`" in text and "saw only its own tasks" in text
    assert "Some verdicts of this round came from models, not people" in text and PAPER in text


def test_a_complete_round_by_models_says_so(rows):
    done = [_decided(r, "accepted", (MODEL, {**MODEL, "model": "judge-y"})) for r in rows]
    text = summary(done, n_outcomes=len(rows) + 3, n_rejected=3)
    assert text.startswith(f"Validated: all {len(rows)} rows")
    assert "Who validated (2 model annotators)" in text and ": a person" not in text
    assert "Every verdict of this round came from a model, not a person" in text
    assert f"3 candidates of the {len(rows) + 3} decided were rejected" in text
    unrecorded = [_decided(r, "accepted", ({"kind": "unrecorded"},) * 2) for r in rows]
    assert "What the annotators saw was not recorded" in summary(unrecorded)


def test_info_shows_status_kappa_and_annotators_from_the_shipped_file(rows, tmp_path, capsys):
    decided = [_decided(r, "accepted", (PERSON, PERSON)) for r in rows[:3]] + rows[3:]
    doc = validation_doc([outcome(r["id"], "accepted") for r in rows[:3]])
    vfile = tmp_path / "v.json"
    vfile.write_text(json.dumps(doc))
    out = write_release(decided, tmp_path / "release", validation=vfile)
    assert (out / "validation.json").read_bytes() == vfile.read_bytes()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"validation: pending {len(rows) - 3}, accepted 3, revised 0, rejected 0" in text
    assert "juniors' Cohen's kappa on 3 double-annotated tasks: decision 0.500, category 0.250" in text
    assert "junior junior1: person" in text
    assert main(["info", "--json", str(out)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["validation_file"]["rounds"][0]["kappa_decision"] == 0.5 and data["validation"]["accepted"] == 3
    plain = write_release(rows, tmp_path / "plain")
    assert not (plain / "validation.json").exists()
    assert main(["info", str(plain)]) == 0
    assert "kappa: no validation file in this release" in capsys.readouterr().out


def test_a_strangers_validation_json_is_never_replaced(rows, tmp_path):
    import pytest

    from hexainst.kernel.outputs import OutputError

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "validation.json").write_text('{"my": "notes"}')
    with pytest.raises(OutputError, match=r"validation.json \(not a HexaInst validation file\)"):
        write_release(rows, folder)
    assert (folder / "validation.json").read_text() == '{"my": "notes"}'


def _two_rounds(rows: list[dict]) -> dict:
    """Round 1 by people over rows[:3]; round 2 by models over rows[3:5] and one candidate it rejected."""
    from hexainst.kernel import validation_file

    first = validation_file.upgrade(validation_doc([outcome(r["id"], "accepted") for r in rows[:3]]))
    rejected = rows[0]["id"][:-12] + "f" * 12  # a candidate that left for the reserve's next row
    second = validation_doc([outcome(r["id"], "accepted") for r in rows[3:5]] + [outcome(rejected, "rejected")], version=2)
    for entry in second["outcomes"]:
        for i, v in enumerate(entry["juniors"]):
            v.update(annotator=f"junior{i + 3}", identity=MODEL)
    second["annotators"] = [{"annotator": f"junior{i + 3}", "role": "junior", "identity": MODEL} for i in range(2)]
    second["agreement"]["kappa_decision"] = 0.25
    second["outcomes"].sort(key=lambda o: o["id"])
    return validation_file.merge(first, validation_file.upgrade(second))


def test_a_release_validated_in_two_rounds_says_who_judged_in_which(rows, tmp_path, capsys):
    from hexainst.kernel.validation_file import rounds_info

    doc = _two_rounds(rows)
    decided = ([_decided(r, "accepted", (PERSON, PERSON)) for r in rows[:3]]
               + [_decided(r, "accepted", (MODEL, MODEL)) for r in rows[3:5]] + rows[5:])
    vfile = tmp_path / "v.json"
    vfile.write_text(json.dumps(doc))
    out = write_release(decided, tmp_path / "release", validation=vfile,
                        build_info={"validation": rounds_info(doc), "agreement": None})
    card = (out / "README.md").read_text()
    assert f"Partly validated: 5 of {len(rows)} rows" in card and "Validated: all" not in card
    assert "Round 1 decided 3 candidates (0 rejected; 3 of them are rows of this release)" in card
    assert "Round 2 decided 3 candidates (1 rejected; 2 of them are rows of this release)" in card
    assert "junior `junior3`: the model `judge-x`" in card
    assert "Some verdicts of these rounds came from models, not people" in card
    # annotators are counted per round and role (the same person in two rounds is two entries): the card says so
    assert "Who validated, in 2 rounds (3 people, 2 model annotators, counted once per round and role):" in card
    assert "| 1 | junior1 (person), junior2 (person), senior (person) | 3 | 0 | 3 | 0.500 |" in card
    assert "| 2 | junior3 (model), junior4 (model) | 3 | 1 | 2 | 0.250 |" in card
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "validation file: 6 candidates decided (1 rejected) in 2 rounds" in text
    assert "round 1: 3 candidates decided (0 rejected, 3 rows of this release); juniors' Cohen's kappa" in text
    assert "round 2: 3 candidates decided (1 rejected, 2 rows of this release)" in text and "decision 0.250" in text
    assert "junior junior3: model judge-x" in text
    assert main(["info", "--json", str(out)]) == 0
    block = json.loads(capsys.readouterr().out)["validation_file"]
    assert [(r["round"], r["n_outcomes"], r["n_rows"], r["kappa_decision"]) for r in block["rounds"]] == [
        (1, 3, 3, 0.5), (2, 3, 2, 0.25)]


def test_one_round_keeps_its_card_text(rows, tmp_path):
    """A one-round file (format 2 or 3) renders the card as before: no rounds table, the agreement block."""
    from hexainst.kernel import validation_file
    from hexainst.kernel.validation_file import rounds_info

    doc = validation_file.upgrade(validation_doc([outcome(r["id"], "accepted") for r in rows[:3]]))
    decided = [_decided(r, "accepted", (PERSON, PERSON)) for r in rows[:3]] + rows[3:]
    info = {"validation": rounds_info(doc), "agreement": doc["rounds"][0]["agreement"]}
    card = (write_release(decided, tmp_path / "r", build_info=info) / "README.md").read_text()
    assert "| round |" not in card and "Round 1 decided" not in card
    assert "Cohen's kappa 0.500 on the decision" in card and "junior `junior1`: a person" in card
