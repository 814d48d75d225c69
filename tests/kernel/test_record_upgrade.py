"""Rows of record schema 1 (verdicts without identity, no 'unsound') still read, as version 2."""

from __future__ import annotations

import copy
import json

import datasets
import pytest

from hexainst.kernel.features import release_features
from hexainst.kernel.records import RecordError, synthetic_row, upgrade_row, validate_row
from hexainst.kernel.release import _read_parquet_rows, read_reserve

UNRECORDED = {"kind": "unrecorded", "model": None, "prompt": None, "how": None}


def _v1_row() -> dict:
    row = synthetic_row(category="math", instruction="What is 2 + 2?", generator_model="m", endpoint_host="h",
                        prompt_id="p", prompt_version="1", seed=0, request_hash="0" * 16, item_index=0)
    v = {"annotator": "junior1", "decision": "reject", "category_correct": True, "errors": ["unclear"],
         "corrected_instruction": None}
    row["validation"] = {"status": "rejected", "original_instruction": None,
                         "juniors": [v, {**v, "annotator": "junior2"}], "senior": {**v, "annotator": "senior"}}
    return row


def test_a_version_1_row_fails_version_2_until_upgraded():
    row = _v1_row()
    with pytest.raises(RecordError, match="identity"):
        validate_row(row)
    new = upgrade_row(row)
    validate_row(new)
    assert [v["identity"] for v in new["validation"]["juniors"]] == [UNRECORDED, UNRECORDED]
    assert new["validation"]["senior"]["identity"] == UNRECORDED
    assert "identity" not in row["validation"]["juniors"][0]  # the input is left as it was
    assert upgrade_row(new) == new


def test_a_version_1_parquet_and_reserve_read_as_version_2(tmp_path):
    # The features a version-1 release was written with: verdicts without the identity struct.
    v1 = copy.deepcopy(release_features())
    for key in ("juniors", "senior"):
        verdict = v1["validation"][key]
        inner = verdict.feature if hasattr(verdict, "feature") else verdict
        inner.pop("identity")
    file = tmp_path / "math.parquet"
    datasets.Dataset.from_list([_v1_row()], features=datasets.Features(v1)).to_parquet(str(file))
    (row,) = _read_parquet_rows(file)
    validate_row(row)
    assert row["validation"]["senior"]["identity"] == UNRECORDED

    (tmp_path / "README.md").write_text("card\n")
    (tmp_path / "reserve").mkdir()
    (tmp_path / "reserve" / "reserve.jsonl").write_text(json.dumps(_v1_row()) + "\n")
    (reserved,) = read_reserve(tmp_path)
    assert reserved["validation"]["juniors"][1]["identity"] == UNRECORDED
