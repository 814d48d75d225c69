"""docs/validation/blind.py: what a model annotator's sheet shows, and how its verdicts come back to ids."""

from __future__ import annotations

import importlib.util
import json
import stat
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _blind():
    spec = importlib.util.spec_from_file_location("blind", REPO / "docs" / "validation" / "blind.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ROWS = [{"id": f"math-{'nat' if i % 2 else 'syn'}-{i:012x}", "category": "math", "source": "x",
         "instruction": f"What is {i} + {i}?"} for i in range(10)]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_sheet_shows_neither_id_nor_origin_and_each_annotator_has_own_keys_and_order(tmp_path: Path) -> None:
    blind = _blind()
    blind.sheets(ROWS, "junior1", tmp_path, chunks=3, salt="t")
    blind.sheets(ROWS, "junior2", tmp_path, chunks=1, salt="t")
    sheet1 = [t for i in range(1, 4) for t in _lines(tmp_path / "junior1" / f"sheet-{i}.jsonl")]
    sheet2 = _lines(tmp_path / "junior2" / "sheet-1.jsonl")
    assert len(sheet1) == len(sheet2) == len(ROWS)
    for task in sheet1 + sheet2:
        assert set(task) == {"key", "category", "instruction"}
        assert "nat" not in task["key"] and "syn" not in task["key"]
    assert {t["key"] for t in sheet1}.isdisjoint({t["key"] for t in sheet2})
    assert [t["instruction"] for t in sheet1] != [t["instruction"] for t in sheet2]
    # the key map and the sheets are readable by their owner only
    for path in (tmp_path / "keys" / "junior1.keys.jsonl", tmp_path / "junior1" / "sheet-1.jsonl"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_unblind_maps_verdicts_to_ids_and_refuses_another_annotators_key(tmp_path: Path) -> None:
    blind = _blind()
    blind.sheets(ROWS, "junior1", tmp_path, chunks=1, salt="t")
    blind.sheets(ROWS, "junior2", tmp_path, chunks=1, salt="t")
    tasks = _lines(tmp_path / "junior1" / "sheet-1.jsonl")
    by_text = {r["instruction"]: r["id"] for r in ROWS}
    verdicts = tmp_path / "v.jsonl"
    verdicts.write_text("".join(json.dumps({"key": t["key"], "category_correct": True, "errors": [],
                                            "decision": "accept", "corrected_instruction": None}) + "\n"
                                for t in tasks))
    out = tmp_path / "ids.jsonl"
    blind.unblind(tmp_path / "keys" / "junior1.keys.jsonl", [verdicts], out)
    mapped = _lines(out)
    assert {v["id"] for v in mapped} == {r["id"] for r in ROWS}
    for task in tasks:  # each verdict lands on the row its sheet showed
        assert any(v["id"] == by_text[task["instruction"]] for v in mapped)
    foreign = tmp_path / "foreign.jsonl"
    other = _lines(tmp_path / "junior2" / "sheet-1.jsonl")[0]["key"]
    foreign.write_text(json.dumps({"key": other, "category_correct": True, "errors": [], "decision": "accept",
                                   "corrected_instruction": None}) + "\n")
    with pytest.raises(SystemExit, match="is not in"):
        blind.unblind(tmp_path / "keys" / "junior1.keys.jsonl", [foreign], tmp_path / "x.jsonl")
    twice = tmp_path / "twice.jsonl"
    twice.write_text(verdicts.read_text().splitlines()[0] + "\n" + verdicts.read_text().splitlines()[0] + "\n")
    with pytest.raises(SystemExit, match="a second verdict"):
        blind.unblind(tmp_path / "keys" / "junior1.keys.jsonl", [twice], tmp_path / "y.jsonl")


def _verdict(iid: str, decision: str, category_correct: bool = True, corrected: str | None = None,
             errors: list[str] | None = None) -> dict:
    return {"id": iid, "category_correct": category_correct, "errors": errors or [], "decision": decision,
            "corrected_instruction": corrected}


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


SENIOR_ROWS = [{**r, "source": "natural" if "-nat-" in r["id"] else "synthetic"} for r in ROWS]


def test_the_seniors_sheet_holds_exactly_what_triage_sends_to_the_senior(tmp_path: Path) -> None:
    from hexainst.annotation.outcomes import REASON_CATEGORY, REASON_CORRECTIONS_DIFFER, REASON_DECISION

    blind = _blind()
    ids = [r["id"] for r in SENIOR_ROWS]
    j1 = [_verdict(ids[0], "accept"), _verdict(ids[1], "accept"), _verdict(ids[2], "reject", errors=["unsound"]),
          _verdict(ids[3], "accept"), _verdict(ids[4], "revise", corrected="One text."),
          _verdict(ids[5], "revise", corrected="Same text."), _verdict(ids[6], "accept")]
    j2 = [_verdict(ids[0], "accept"), _verdict(ids[1], "reject", errors=["unsound"]), _verdict(ids[2], "reject"),
          _verdict(ids[3], "accept", category_correct=False), _verdict(ids[4], "revise", corrected="Other text."),
          _verdict(ids[5], "revise", corrected="Same text.")]  # ids[6]: junior2 has not judged it yet
    juniors = {"junior1": _write(tmp_path / "j1.jsonl", j1), "junior2": _write(tmp_path / "j2.jsonl", j2)}
    out = tmp_path / "out"
    needs = blind.senior(SENIOR_ROWS, juniors, out, chunks=1, salt="t")
    assert needs == {ids[1]: REASON_DECISION, ids[3]: REASON_CATEGORY, ids[4]: REASON_CORRECTIONS_DIFFER}
    sheet = _lines(out / "senior" / "sheet-1.jsonl")
    keys = {k["key"]: k["id"] for k in _lines(out / "keys" / "senior.keys.jsonl")}
    assert sorted(keys.values()) == sorted(needs) and {t["key"] for t in sheet} == set(keys)
    by_id = {r["id"]: r for r in SENIOR_ROWS}
    text = (out / "senior" / "sheet-1.jsonl").read_text()
    assert "junior1" not in text and "junior2" not in text and "identity" not in text  # no names, no identities
    for task in sheet:
        iid = keys[task["key"]]
        assert iid[-12:] not in task["key"] and set(task) == {
            "key", "category", "origin", "instruction", "reason", "verdict A", "verdict B"}
        assert (task["category"], task["origin"], task["instruction"], task["reason"]) == (
            by_id[iid]["category"], by_id[iid]["source"], by_id[iid]["instruction"], needs[iid])
        mine = [{k: v for k, v in x.items() if k != "id"} for x in (*j1, *j2) if x["id"] == iid]
        assert sorted(json.dumps(v, sort_keys=True) for v in (task["verdict A"], task["verdict B"])) == sorted(
            json.dumps(v, sort_keys=True) for v in mine)
    for path in (out / "keys" / "senior.keys.jsonl", out / "senior" / "sheet-1.jsonl"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # the senior's verdicts come back through the senior's own keys
    answers = _write(tmp_path / "s.jsonl", [{"key": t["key"], "category_correct": True, "errors": [],
                                             "decision": "reject", "corrected_instruction": None} for t in sheet])
    blind.unblind(out / "keys" / "senior.keys.jsonl", [answers], tmp_path / "senior-ids.jsonl")
    assert sorted(v["id"] for v in _lines(tmp_path / "senior-ids.jsonl")) == sorted(needs)


def test_the_seniors_sheet_refuses_bad_junior_files_and_writes_nothing(tmp_path: Path) -> None:
    blind = _blind()
    ids = [r["id"] for r in SENIOR_ROWS]
    good = _write(tmp_path / "j1.jsonl", [_verdict(ids[0], "accept")])
    unknown = _write(tmp_path / "u.jsonl", [_verdict("math-syn-ffffffffffff", "accept")])
    twice = _write(tmp_path / "t.jsonl", [_verdict(ids[0], "accept"), _verdict(ids[0], "reject")])
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"u.jsonl:1: id 'math-syn-ffffffffffff' is not a row"):
        blind.senior(SENIOR_ROWS, {"junior1": good, "junior2": unknown}, out, chunks=1, salt="t")
    with pytest.raises(SystemExit, match=r"t.jsonl:2: a second verdict of junior2"):
        blind.senior(SENIOR_ROWS, {"junior1": good, "junior2": twice}, out, chunks=1, salt="t")
    with pytest.raises(SystemExit, match="exactly two juniors"):
        blind.senior(SENIOR_ROWS, {"junior1": good}, out, chunks=1, salt="t")
    assert not out.exists()
