"""build all and build topup check what they can before any long work (the endpoint the synthetic stage will ask,
--out), and name the input that is wrong (--validation, --sources)."""

from __future__ import annotations

import os
from pathlib import Path

from workspace_files import write_pools

from hexainst.builders.natural.pipeline import OUTPUT_KIND as NATURAL_KIND
from hexainst.cli import main
from hexainst.kernel.outputs import write_marker

MIRROR = Path(os.environ.get("HEXAINST_SOURCES") or Path(__file__).resolve().parents[3] / "shared" / "sources")


def test_an_endpoint_that_is_down_is_named_before_the_natural_stage(tmp_path: Path, capsys) -> None:
    code = main(["build", "all", "--sources", str(MIRROR), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"),
                 "--base-url", "http://127.0.0.1:9/v1", "--model", "x"])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
    assert "endpoint 127.0.0.1 is not reachable (http://127.0.0.1:9/v1/models)" in captured.err
    assert "[natural] running" not in captured.out
    assert not (tmp_path / "w" / "natural").exists() and not (tmp_path / "o").exists()


def test_another_commands_output_as_out_is_refused_before_the_natural_stage(tmp_path: Path, capsys) -> None:
    pools = write_pools(tmp_path / "n2")
    write_marker(pools, NATURAL_KIND)
    before = {p: p.read_bytes() for p in pools.rglob("*") if p.is_file()}
    code = main(["build", "all", "--sources", str(MIRROR), "--work", str(tmp_path / "w"), "--out", str(pools)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"--out {pools.resolve()}: holds a 'natural pools' output, not a HexaInst release" in err
    assert not (tmp_path / "w" / "natural").exists()
    assert {p: p.read_bytes() for p in pools.rglob("*") if p.is_file()} == before


def test_inputs_that_are_not_there_are_named_as_such(tmp_path: Path, capsys) -> None:
    (tmp_path / "afile").write_text("mine\n")
    for argv, line in (
        (["build", "topup", "--out", str(tmp_path / "rel"), "--work", str(tmp_path / "w"), "--validation",
          str(tmp_path / "nov.json")], f"--validation {tmp_path / 'nov.json'}: the validation file does not exist"),
        (["build", "natural", "--sources", str(tmp_path / "afile"), "--out", str(tmp_path / "n9")],
         f"--sources {tmp_path / 'afile'}: the sources folder is a file, not a folder"),
        (["build", "natural", "--sources", str(tmp_path / "nowhere"), "--out", str(tmp_path / "n9")],
         f"--sources {tmp_path / 'nowhere'}: the sources folder does not exist"),
    ):
        assert main(argv) == 2
        assert capsys.readouterr().err.strip() == f"hexainst build: error: {line}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
