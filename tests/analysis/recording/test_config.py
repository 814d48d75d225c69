"""RecordingConfig: the one home of the recorder's defaults, range-checked, read by argparse and record()."""

from __future__ import annotations

import inspect

import pytest

from hexainst.analysis.recording.config import RecordingConfig
from hexainst.analysis.recording.recorder import record
from hexainst.cli import build_parser, main
from hexainst.kernel.settings import SettingError


def test_the_command_line_and_record_read_their_defaults_here() -> None:
    cfg = RecordingConfig()
    args = build_parser().parse_args(["record", "--model", "m", "--out", "o"])
    assert (args.batch_size, args.dtype, args.device, args.device_map, args.rows_per_shard, args.padding_side) == (
        cfg.batch_size, cfg.dtype, cfg.device, cfg.device_map, cfg.rows_per_shard, cfg.padding_side)
    base = build_parser().parse_args(["baseline", "llama2-7b", "--out", "o"])
    assert (base.batch_size, base.dtype, base.device) == (cfg.batch_size, cfg.dtype, cfg.device)
    defaults = {k: p.default for k, p in inspect.signature(record).parameters.items()}
    assert (defaults["batch_size"], defaults["dtype"], defaults["rows_per_shard"], defaults["padding_side"]) == (
        8, "float32", 64, "right")


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
    ({"batch_size": 2.5}, "batch_size must be a whole number >= 1"),
    ({"rows_per_shard": -1}, "rows_per_shard must be >= 1"),
    ({"dtype": "int8"}, "dtype must be one of float32, bfloat16, float16"),
    ({"padding_side": "middle"}, "padding_side must be one of right, left"),
    ({"device": " "}, "device must name a torch device"),
    ({"random_init": -1}, "random_init must be >= 0, got -1"),
    ({"input_policy": "turns"}, "input_policy must be one of raw, chat"),
])
def test_out_of_range_values_name_their_setting(kwargs, message) -> None:
    with pytest.raises(SettingError, match=message.replace("(", r"\(")) as caught:
        RecordingConfig(**kwargs)
    assert caught.value.setting == next(iter(kwargs))


def _record(tmp_path, argv: list[str]) -> int:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"id": "a", "category": "code", "instruction": "x"}\n', "utf-8")
    try:
        return main(["record", "--model", "m", "--rows", str(rows), "--out", str(tmp_path / "s"), *argv])
    except SystemExit as stop:  # argparse refuses the value while parsing
        return int(stop.code)


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (["--rows-per-shard", "0"], "argument --rows-per-shard: must be >= 1, got 0"),
    (["--device", " "], "hexainst record: error: --device must name a torch device such as cpu or cuda, got ' '"),
])
def test_the_command_line_names_the_flag(argv, message, tmp_path, capsys) -> None:
    assert _record(tmp_path, argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_record_checks_before_loading_anything(tmp_path) -> None:
    with pytest.raises(SettingError, match="batch_size"):
        record("no/such/model", [{"id": "a", "category": "code", "instruction": "x"}], tmp_path / "s", batch_size=0)
    assert not (tmp_path / "s").exists()
