"""The release format: write, load through datasets and hexainst.load, reject bad rows, atomicity."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

import hexainst
from hexainst.cli import main
from hexainst.kernel.records import RecordError
from hexainst.kernel.release import ReleaseError, write_release
from hexainst.kernel.vocab import CATEGORIES


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_release_loads_through_datasets_and_hexainst_load(tmp_path, rows):
    out = write_release(rows, tmp_path / "rel")

    everything = datasets.load_dataset(str(out), split="train")
    assert len(everything) == len(rows)
    assert everything.features["category"].names == [
        "classification",
        "code",
        "generalqa",
        "generation",
        "math",
        "summarization",
    ]
    assert everything.features["source"].names == ["natural", "synthetic"]

    code = datasets.load_dataset(str(out), "code", split="train")
    assert len(code) == 4
    assert {code.features["category"].int2str(c) for c in code["category"]} == {"code"}

    loaded = hexainst.load(out)
    assert sorted(loaded["id"]) == sorted(r["id"] for r in rows)
    by_id = {r["id"]: r for r in rows}
    for got in loaded:
        want = by_id[got["id"]]
        assert got["instruction"] == want["instruction"]
        assert loaded.features["category"].int2str(got["category"]) == want["category"]
        assert got["provenance"] == want["provenance"]
    assert len(hexainst.load(out, category="math")) == 4


def test_configs_cover_default_and_each_present_category(tmp_path, rows):
    out = write_release(rows, tmp_path / "rel")
    names = datasets.get_dataset_config_names(str(out))
    assert set(names) == {"default", "classification", "code", "math"}


@pytest.mark.parametrize(
    ("break_row", "field"),
    [
        (lambda r: r.pop("license"), "license"),
        (lambda r: r.update(category="poetry"), "category"),
        (lambda r: r.update(instruction=""), "instruction"),
        (lambda r: r.update(instruction="   "), "instruction"),
    ],
    ids=["missing-field", "unknown-category", "empty-instruction", "blank-instruction"],
)
def test_invalid_row_rejected_before_anything_is_written(tmp_path, rows, break_row, field):
    bad = copy.deepcopy(rows)
    break_row(bad[3])
    out = tmp_path / "rel"
    with pytest.raises(RecordError) as err:
        write_release(bad, out)
    message = str(err.value)
    assert "row 3" in message
    assert field in message
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_duplicate_ids_rejected(tmp_path, rows):
    bad = copy.deepcopy(rows)
    bad[4]["id"] = bad[0]["id"]
    bad[4]["category"], bad[4]["source"] = bad[0]["category"], bad[0]["source"]
    bad[4]["provenance"] = bad[0]["provenance"]
    with pytest.raises(RecordError, match=r"row 4: field 'id': duplicate id .*first at row 0"):
        write_release(bad, tmp_path / "rel")
    assert not (tmp_path / "rel").exists()


def test_two_writes_are_byte_identical(tmp_path, rows):
    a = tree_hashes(write_release(rows, tmp_path / "a"))
    b = tree_hashes(write_release(list(reversed(rows)), tmp_path / "b"))
    assert a == b
    assert {"README.md", "LICENSE.md", "data/code.parquet", "reserve/reserve.jsonl"} <= set(a)


def test_interrupted_write_leaves_previous_release_intact(tmp_path, rows, monkeypatch):
    out = write_release(rows, tmp_path / "rel")
    before = tree_hashes(out)

    calls = {"n": 0}
    real = datasets.Dataset.to_parquet

    def fail_on_second_file(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full (simulated)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(datasets.Dataset, "to_parquet", fail_on_second_file)
    changed = copy.deepcopy(rows)
    changed[0]["instruction"] = "A different instruction."
    with pytest.raises(OSError, match="simulated"):
        write_release(changed, out)
    assert calls["n"] == 2
    assert tree_hashes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel"], "temporary folder left behind"


def test_rewrite_replaces_release_and_keeps_other_files(tmp_path, rows):
    out = tmp_path / "pkg"
    write_release(rows, out)
    (out / "module.py").write_text("x = 1\n")  # code beside the release, as in the package folder
    write_release(rows[:6], out)
    assert (out / "module.py").read_text() == "x = 1\n"
    assert len(hexainst.load(out)) == 6
    assert not (out / "data" / "math.parquet").exists(), "a category that left the release must disappear"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_reader_names_file_and_row_of_a_corrupt_row(tmp_path, rows):
    out = write_release(rows, tmp_path / "rel")
    file = out / "data" / "code.parquet"
    table = pq.read_table(file)
    data = table.to_pylist()
    data[1]["instruction"] = ""
    pq.write_table(table.from_pylist(data, schema=table.schema), file)
    with pytest.raises(RecordError, match=r"data/code\.parquet row 1 \(id=code-.*field 'instruction'"):
        hexainst.load(out)


def test_reader_rejects_folder_without_card(tmp_path):
    with pytest.raises(ReleaseError, match="not a HexaInst release"):
        hexainst.load(tmp_path)


def test_reserve_round_trips_in_order(tmp_path, rows):
    release, reserve = rows[:6], rows[6:]
    out = write_release(release, tmp_path / "rel", reserve=reserve)
    got = hexainst.load_reserve(out)
    order = sorted(range(len(reserve)), key=lambda i: (CATEGORIES.index(reserve[i]["category"]), reserve[i]["source"]))
    assert [r["id"] for r in got] == [reserve[i]["id"] for i in order]


def test_card_yaml_numbers_equal_the_data(tmp_path, rows):
    from huggingface_hub import DatasetCard

    out = write_release(rows, tmp_path / "rel")
    data = DatasetCard.load(out / "README.md").data.to_dict()
    assert data["license"] == "other"
    infos = {i["config_name"]: i["splits"][0]["num_examples"] for i in data["dataset_info"]}
    assert infos == {"default": 12, "classification": 4, "code": 4, "math": 4}


def test_cli_validate_and_info(tmp_path, rows, capsys):
    out = write_release(rows, tmp_path / "rel", croissant=lambda folder: {"@type": "sc:Dataset"})  # validate wants one
    assert main(["validate", str(out)]) == 1  # made-up rows are not 100 + 100 per category
    assert "unbalanced" in capsys.readouterr().out
    assert main(["validate", str(out), "--allow-unbalanced"]) == 0
    assert main(["info", str(out), "--json"]) == 0
    info = capsys.readouterr().out
    assert '"rows": 12' in info
    assert main(["validate", str(tmp_path / "missing")]) == 2
    assert f"{tmp_path / 'missing'}: not a HexaInst release (the folder does not exist)" in capsys.readouterr().err
    (tmp_path / "afile").write_text("mine\n")
    assert main(["info", str(tmp_path / "afile")]) == 2
    assert f"{tmp_path / 'afile'}: not a HexaInst release (a file, not a folder)" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["validate", str(tmp_path / "empty")]) == 2
    assert "empty: not a HexaInst release (no README.md with the card)" in capsys.readouterr().err


def test_card_mentions_membership_scores_only_when_rows_carry_them(rows, tmp_path):
    plain = (write_release(rows, tmp_path / "plain") / "README.md").read_text("utf-8")
    assert "Min-K%++" not in plain
    scored = [dict(r) for r in rows]
    values = iter([-3.25, 0.5, -1.0])
    for r in scored:
        if r["provenance"]["synthetic"] is not None:
            r["provenance"] = {**r["provenance"], "synthetic": {**r["provenance"]["synthetic"],
                                                                "membership_score": next(values, -2.0)}}
    card = (write_release(scored, tmp_path / "scored") / "README.md").read_text("utf-8")
    n_synthetic = sum(r["provenance"]["synthetic"] is not None for r in rows)
    assert f"{n_synthetic} synthetic rows carry a Min-K%++ membership score" in card
    assert "from -3.250 to 0.500" in card


def test_load_checks_what_validate_checks(tmp_path, rows):
    """A missing category file, a card whose counts disagree, or a broken card YAML is an error naming it."""
    import shutil

    import hexainst
    from hexainst.kernel.release import ReleaseError

    out = write_release(rows, tmp_path / "rel")
    assert len(hexainst.load(out)) == len(rows)

    missing = shutil.copytree(out, tmp_path / "missing")
    (missing / "data" / "code.parquet").unlink()
    with pytest.raises(ReleaseError, match=r"config 'code' names 'data/code.parquet', which matches no file"):
        hexainst.load(missing)

    counts = shutil.copytree(out, tmp_path / "counts")
    card = (counts / "README.md").read_text()
    (counts / "README.md").write_text(card.replace(f"num_examples: {len(rows)}", f"num_examples: {len(rows) + 1}", 1))
    with pytest.raises(ReleaseError, match=rf"declares num_examples={len(rows) + 1}, data has {len(rows)}"):
        hexainst.load(counts)

    broken = shutil.copytree(out, tmp_path / "broken")
    (broken / "README.md").write_text(card.replace("configs:", "configs: [\n  - {", 1))
    with pytest.raises(ReleaseError, match=r"README.md: the dataset card's YAML header cannot be read"):
        hexainst.load(broken)


def test_card_says_the_paper_used_r1_and_quotes_a_blind_read_only_for_its_generator(tmp_path, rows):
    review = {"generator_model": "made-up-model", "rows": 90, "per_cell": 15, "document": "docs/quality-review.md",
              "well_formed": 0.8, "in_category": 0.9333, "answer_leaked": 0.0111}
    card = (write_release(rows, tmp_path / "a", build_info={"mode": "mirror", "quality_review": review})
            / "README.md").read_text()
    assert "The paper generated its synthetic half with DeepSeek R1 (`deepseek-reasoner`); this build did not" in card
    assert "`made-up-model`" in card
    assert "judged by 1 judge without" in card
    assert "found on average 80% well-formed and self-contained, 93% in their category, and 1% leaking their answer" in card
    other = dict(review, generator_model="another-model")
    card = (write_release(rows, tmp_path / "b", build_info={"mode": "mirror", "quality_review": other})
            / "README.md").read_text()
    assert "this build did not" in card and "well-formed and self-contained" not in card


def test_a_parquet_file_whose_text_is_damaged_is_one_line_for_validate_and_info(tmp_path, rows, capsys):
    """A damaged page that the parquet reader still opens, holding bytes that are not UTF-8, is the same one
    line as any other unreadable parquet ("cannot read parquet (...)"), not a UnicodeDecodeError traceback."""
    out = write_release(rows, tmp_path / "rel", croissant=lambda folder: {"@type": "sc:Dataset"})
    file = out / "data" / "math.parquet"
    pq.write_table(pq.read_table(file), file, compression="none", use_dictionary=False)  # the text stored as is
    data = file.read_bytes()
    text = b"Made-up natural math instruction number 1."
    assert data.count(text) == 1
    file.write_bytes(data.replace(text, b"\xff" + text[1:]))  # one byte of the page damaged
    for command in ("validate", "info"):
        assert main([command, str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"hexainst {command}: error: {file}: cannot read parquet (") and "\n" not in err
        assert "can't decode byte 0xff" in err
