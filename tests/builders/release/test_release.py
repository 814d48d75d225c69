"""The release stage: seeded balanced selection, the ordered reserve, validation outcomes applied."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from stage_runs import release_from
from validation_docs import outcome, validation_doc
from workspace_files import snapshot, strangers_folders

import hexainst
from hexainst.builders.natural.pipeline import OUTPUT_KIND as NATURAL_KIND
from hexainst.builders.release import ReleaseError, select_cell
from hexainst.builders.release.select import rank_key
from hexainst.kernel.outputs import write_marker
from hexainst.kernel.records import natural_row, synthetic_row
from hexainst.kernel.vocab import CATEGORIES, SOURCES


def made_up_pool(category: str, source: str, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        text = f"Made-up {source} {category} instruction {i} about item {i * 7 % 13}."
        if source == "natural":
            rows.append(
                natural_row(category=category, instruction=text, license="MIT", source_name=f"made_up_{category}",
                            dataset_id="example/made-up", revision="sha256:" + "1" * 64, config=None, split="test",
                            row_id=str(i), task_name=None, pattern_id="made_up.v1")
            )
        else:
            rows.append(
                synthetic_row(category=category, instruction=text, generator_model="made-up-model",
                              endpoint_host="127.0.0.1:9", prompt_id=category, prompt_version="v1", seed=0,
                              request_hash=f"{i:016x}", item_index=0)
            )
    return rows


def write_pools(folder: Path, n: int = 115) -> dict[tuple[str, str], list[dict]]:
    folder.mkdir(parents=True, exist_ok=True)
    pools = {}
    for c in CATEGORIES:
        for s in SOURCES:
            pools[(c, s)] = made_up_pool(c, s, n)
            with open(folder / f"{c}.{s}.jsonl", "w") as fh:
                for row in pools[(c, s)]:
                    fh.write(json.dumps(row) + "\n")
    return pools


def test_selection_is_seeded_and_independent_of_pool_order():
    pool = made_up_pool("math", "natural", 130)
    a = select_cell("math", "natural", pool, seed=3)
    b = select_cell("math", "natural", list(reversed(pool)), seed=3)
    c = select_cell("math", "natural", pool, seed=4)
    assert [r["id"] for r in a.release] == [r["id"] for r in b.release]
    assert [r["id"] for r in a.reserve] == [r["id"] for r in b.reserve]
    assert {r["id"] for r in a.release} != {r["id"] for r in c.release}
    assert len(a.release) == 100 and len(a.reserve) == 30
    # the reserve is ranked: its order is the hash rank, and every released row outranks it
    ranks = [rank_key(3, r["id"]) for r in a.reserve]
    assert ranks == sorted(ranks)
    assert max(rank_key(3, r["id"]) for r in a.release) < ranks[0]


def test_reserve_is_capped_and_takes_the_next_rows_by_rank():
    pool = made_up_pool("math", "synthetic", 140)
    full = select_cell("math", "synthetic", pool, seed=1)
    capped = select_cell("math", "synthetic", pool, seed=1, reserve_size=5)
    assert [r["id"] for r in capped.release] == [r["id"] for r in full.release]
    assert [r["id"] for r in capped.reserve] == [r["id"] for r in full.reserve[:5]]


def test_a_short_cell_is_reported_with_its_shortfall():
    from hexainst.builders.release.select import shortfall_error

    pool = made_up_pool("code", "synthetic", 102)
    ranked = sorted(pool, key=lambda r: rank_key(0, r["id"]))
    outcomes = {r["id"]: outcome(r["id"], "rejected") for r in ranked[:3]}
    sel = select_cell("code", "synthetic", pool, seed=0, outcomes=outcomes)
    assert sel.shortfall == 1 and len(sel.release) == 99
    full = select_cell("math", "natural", made_up_pool("math", "natural", 101), seed=0)
    assert full.shortfall == 0
    assert shortfall_error([full]) is None
    error = shortfall_error([sel, full])
    assert "validation leaves 1 cell short: code/synthetic by 1 (102 candidates, 3 rejected)" in str(error)
    assert "hexainst build topup" in str(error)


def test_release_names_every_short_cell_at_once(tmp_path):
    write_pools(tmp_path / "pools", n=101)
    pools = {(c, s): [json.loads(line) for line in (tmp_path / "pools" / f"{c}.{s}.jsonl").read_text().splitlines()]
             for c in CATEGORIES for s in SOURCES}
    rejected = []
    for cell, n in ((("code", "synthetic"), 3), (("math", "natural"), 2)):
        ranked = sorted(pools[cell], key=lambda r: rank_key(0, r["id"]))
        rejected += [outcome(r["id"], "rejected") for r in ranked[:n]]
    (tmp_path / "v.json").write_text(json.dumps(validation_doc(rejected)))
    with pytest.raises(ReleaseError, match=r"leaves 2 cells short: code/synthetic by 2 .*, math/natural by 1 "):
        release_from(tmp_path / "pools", tmp_path / "rel", validation=tmp_path / "v.json")
    assert not (tmp_path / "rel").exists()


def test_pools_too_small_without_validation_are_named_as_such(tmp_path):
    write_pools(tmp_path / "pools", n=101)
    pool = tmp_path / "pools" / "math.synthetic.jsonl"
    pool.write_text("".join(pool.read_text().splitlines(keepends=True)[:97]))
    with pytest.raises(ReleaseError, match=r"^the pools leave 1 cell short: math/synthetic by 3 \(97 candidates, "
                                            r"0 rejected\); build more candidates"):
        release_from(tmp_path / "pools", tmp_path / "rel")
    assert not (tmp_path / "rel").exists()


def test_release_balanced_with_reserve(tmp_path):
    from hexainst.builders.release.config import ReleaseConfig

    write_pools(tmp_path / "pools")
    report = release_from(tmp_path / "pools", tmp_path / "rel", config=ReleaseConfig(reserve=15))
    ds = hexainst.load(tmp_path / "rel")
    assert len(ds) == 1200
    cats = ds.features["category"].int2str(ds["category"])
    srcs = ds.features["source"].int2str(ds["source"])
    for c in CATEGORIES:
        for s in SOURCES:
            assert sum(1 for a, b in zip(cats, srcs) if (a, b) == (c, s)) == 100
    assert set(ds["validation"][0].keys()) >= {"status"}
    assert {v["status"] for v in ds["validation"]} == {"pending"}
    assert len(hexainst.load_reserve(tmp_path / "rel")) == 12 * 15
    cell = report["cells"]["math/natural"]
    assert {k: cell[k] for k in ("pool", "release", "reserve", "rejected", "revised", "replacements", "shortfall")} == {
        "pool": 115, "release": 100, "reserve": 15, "rejected": 0, "revised": 0, "replacements": 0, "shortfall": 0}
    card = (tmp_path / "rel" / "README.md").read_text()
    assert "Validation pending" in card
    croissant = tmp_path / "rel" / "croissant.json"
    mlcroissant = Path(sys.executable).parent / "mlcroissant"
    done = subprocess.run([str(mlcroissant), "validate", "--jsonld", str(croissant)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "error" not in done.stderr.lower().replace("0 error", "")


def test_validation_rejects_replaced_from_reserve_in_order_and_revisions_keep_original(tmp_path):
    from hexainst.builders.release.config import ReleaseConfig
    from hexainst.kernel.validation_file import write as write_validation

    pools = write_pools(tmp_path / "pools")
    # A reserve of 15 (the whole rest of each 115-row pool), whatever rates the toolkit bundles: no row left to refill it.
    config = ReleaseConfig(reserve=15)
    release_from(tmp_path / "pools", tmp_path / "before", config=config)
    before = {r["id"]: r for r in hexainst.load(tmp_path / "before").to_list()}
    reserve_before = [r for r in hexainst.load_reserve(tmp_path / "before")
                      if (r["category"], r["source"]) == ("generation", "synthetic")]

    cell = sorted(pools[("generation", "synthetic")], key=lambda r: rank_key(0, r["id"]))
    released = [r for r in cell[:100]]
    rejected = [r["id"] for r in released[5:15]]  # 10 rows of one cell
    revised = released[20]
    outcomes = [outcome(i, "rejected") for i in rejected]
    outcomes.append(outcome(revised["id"], "revised", "  A clearer, corrected instruction.  "))
    outcomes.append(outcome(released[30]["id"], "accepted"))
    write_validation(tmp_path / "validation.json", validation_doc(outcomes))

    report = release_from(tmp_path / "pools", tmp_path / "after", validation=tmp_path / "validation.json", config=config)
    after = {r["id"]: r for r in hexainst.load(tmp_path / "after").to_list()}
    assert len(after) == 1200
    gen_syn = [r for r in after.values() if (r["category"], r["source"]) == (3, 1)]
    assert len(gen_syn) == 100
    assert not set(rejected) & set(after)
    replacements = [r["id"] for r in reserve_before[:10]]
    assert set(replacements) <= set(after), "replacements come from the head of the reserve, in order"
    assert report["replacements"]["generation/synthetic"] == replacements
    assert set(after) - set(before) == set(replacements)

    row = after[revised["id"]]
    assert row["instruction"] == "A clearer, corrected instruction."
    assert row["validation"]["status"] == "revised"
    assert row["validation"]["original_instruction"] == revised["instruction"]
    assert after[released[30]["id"]]["validation"]["status"] == "accepted"
    reserve_after = [r for r in hexainst.load_reserve(tmp_path / "after")
                     if (r["category"], r["source"]) == ("generation", "synthetic")]
    assert [r["id"] for r in reserve_after] == [r["id"] for r in reserve_before[10:]]
    card = (tmp_path / "after" / "README.md").read_text()
    assert "Cohen's kappa 0.500 on the decision" in card


def test_unknown_id_in_validation_file_applies_nothing(tmp_path):
    from hexainst.kernel.validation_file import ValidationFileError
    from hexainst.kernel.validation_file import write as write_validation

    write_pools(tmp_path / "pools")
    release_from(tmp_path / "pools", tmp_path / "rel")
    before = (tmp_path / "rel" / "data" / "code.parquet").read_bytes()
    write_validation(tmp_path / "v.json", validation_doc([outcome("code-nat-000000000000", "rejected")]))
    with pytest.raises(ValidationFileError, match="code-nat-000000000000"):
        release_from(tmp_path / "pools", tmp_path / "rel", validation=tmp_path / "v.json")
    assert (tmp_path / "rel" / "data" / "code.parquet").read_bytes() == before


def test_pool_with_bad_row_names_file_and_line(tmp_path):
    write_pools(tmp_path / "pools", n=101)
    file = tmp_path / "pools" / "math.synthetic.jsonl"
    lines = file.read_text().splitlines()
    bad = json.loads(lines[6])
    bad["instruction"] = ""
    lines[6] = json.dumps(bad)
    file.write_text("\n".join(lines) + "\n")
    with pytest.raises(Exception, match=r"math\.synthetic\.jsonl line 7 .*instruction"):
        release_from(tmp_path / "pools", tmp_path / "rel")
    assert not (tmp_path / "rel").exists()


def test_publish_dry_run_writes_exactly_the_release_files(tmp_path):
    from hexainst.cli import main

    write_pools(tmp_path / "pools", n=100)
    out = tmp_path / "pkg"
    release_from(tmp_path / "pools", out)
    (out / "code.py").write_text("print('not data')\n")  # the package's code beside its release
    assert main(["publish", "--repo", "someone/hexainst", "--path", str(out), "--dry-run", str(tmp_path / "up")]) == 0
    uploaded = sorted(str(p.relative_to(tmp_path / "up")) for p in (tmp_path / "up").rglob("*") if p.is_file())
    expected = [".hexainst-output.json", "LICENSE.md", "README.md", "croissant.json", "rejection_rates.json",
                "reserve/reserve.jsonl", "upload-manifest.json"]
    expected += [f"data/{c}.parquet" for c in CATEGORIES]
    assert uploaded == sorted(expected)
    manifest = json.loads((tmp_path / "up" / "upload-manifest.json").read_text())
    assert manifest["repo"] == "someone/hexainst"
    for entry in manifest["files"]:
        assert (tmp_path / "up" / entry["path"]).read_bytes() == (out / entry["path"]).read_bytes()
    assert main(["publish", "--repo", "not-a-repo", "--path", str(out), "--dry-run", str(tmp_path / "x")]) == 2


def test_build_release_refuses_a_users_folder_with_release_names_and_changes_nothing(tmp_path, capsys):
    """A folder without a card that holds files named as a release's (the user's own) is refused in one line
    naming it, before any work: nothing in it is replaced. So is a folder holding only notes, and a pools folder."""
    from hexainst.cli import main

    write_pools(tmp_path / "pools", n=100)
    user, notes = strangers_folders(tmp_path)
    natural = tmp_path / "n2"  # a natural stage's output: its pools and its marker
    write_pools(natural, n=100)
    write_marker(natural, NATURAL_KIND)
    for folder, problem in ((user, "the folder is not empty (LICENSE.md, croissant.json, reserve) and is not an "
                                   "earlier HexaInst release (no README.md card)"),
                            (notes, "the folder is not empty (notes.txt) and is not an earlier HexaInst release"),
                            (natural, "holds a 'natural pools' output, not a HexaInst release")):
        before = snapshot(folder)
        assert main(["build", "release", "--pools", str(tmp_path / "pools"), "--out", str(folder)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert f"--out {folder.resolve()}: {problem}" in err
        assert snapshot(folder) == before
    # an earlier release with the user's notes beside it is rebuilt in place, the notes kept
    assert main(["build", "release", "--pools", str(tmp_path / "pools"), "--out", str(tmp_path / "rel")]) == 0
    (tmp_path / "rel" / "notes.txt").write_text("mine\n")
    assert main(["build", "release", "--pools", str(tmp_path / "pools"), "--out", str(tmp_path / "rel"),
                 "--seed", "7"]) == 0
    assert (tmp_path / "rel" / "notes.txt").read_text() == "mine\n"


def _validate(folder, capsys) -> tuple[int, list[str]]:
    from hexainst.cli import main

    code = main(["validate", str(folder)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, [line[len("error: "):] for line in captured.out.splitlines() if line.startswith("error: ")]


def test_validate_checks_the_files_croissant_lists_and_what_the_card_says_ships_beside_the_data(tmp_path, capsys):
    """A rewritten data file fails validate on its croissant.json checksum (and publish refuses it); an emptied
    reserve, which croissant.json does not list, fails on the reserve's row count the card gives; a deleted
    validation.json fails when the card says the release ships it."""
    import hashlib

    import pyarrow.parquet as pq

    from hexainst.builders.release.config import ReleaseConfig
    from hexainst.cli import main
    from hexainst.kernel.validation_file import write as write_validation

    pools = write_pools(tmp_path / "pools")
    first = sorted(pools[("math", "natural")], key=lambda r: rank_key(0, r["id"]))[0]["id"]
    write_validation(tmp_path / "v.json", validation_doc([outcome(first, "accepted")]))
    release_from(tmp_path / "pools", tmp_path / "rel", validation=tmp_path / "v.json", config=ReleaseConfig(reserve=15))
    assert _validate(tmp_path / "rel", capsys) == (0, [])
    croissant = json.loads((tmp_path / "rel" / "croissant.json").read_text())
    listed = [d["contentUrl"] for d in croissant["distribution"] if "sha256" in d]
    assert listed == [f"data/{c}.parquet" for c in CATEGORIES]  # the reserve is not listed: item 4 needs the card

    for damage, problem in (
        ("data", "croissant.json says sha256 {old} for data/math.parquet, the file has {new}"),
        ("reserve", "README.md: the card says the reserve holds 180 rows, reserve/reserve.jsonl has 0"),
        ("validation", "validation.json: missing (the card says the release ships the validation file"),
    ):
        rel = tmp_path / f"rel-{damage}"
        shutil.copytree(tmp_path / "rel", rel)
        file = rel / "data" / "math.parquet"
        old = hashlib.sha256(file.read_bytes()).hexdigest()
        if damage == "data":  # a different instruction, the rest of the release as it was
            table = pq.read_table(file)
            data = table.to_pylist()
            data[0]["instruction"] = "Another instruction, put here by hand."
            pq.write_table(table.from_pylist(data, schema=table.schema), file)
        elif damage == "reserve":
            (rel / "reserve" / "reserve.jsonl").write_text("")
        else:
            (rel / "validation.json").unlink()
        code, errors = _validate(rel, capsys)
        new = hashlib.sha256(file.read_bytes()).hexdigest()
        assert code == 1
        assert [e for e in errors if e.startswith(problem.format(old=old, new=new))], errors
    assert main(["publish", "--repo", "someone/hexainst", "--path", str(tmp_path / "rel-data"), "--dry-run",
                 str(tmp_path / "up")]) == 2
    assert "croissant.json says sha256" in capsys.readouterr().err and not (tmp_path / "up").exists()
