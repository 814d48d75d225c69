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
