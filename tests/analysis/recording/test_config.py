"""RecordingConfig: the one home of the recorder's defaults, range-checked, read by argparse and record()."""

from __future__ import annotations

import inspect

import pytest

from hexainst.analysis.recording.config import RecordingConfig, RecordingConfigError
from hexainst.analysis.recording.recorder import record
from hexainst.cli import build_parser


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
    ({"batch_size": 0}, "--batch-size must be an integer >= 1, got 0"),
    ({"batch_size": 2.5}, "--batch-size must be an integer >= 1"),
    ({"rows_per_shard": -1}, "--rows-per-shard must be an integer >= 1"),
    ({"dtype": "int8"}, "--dtype must be one of float32, bfloat16, float16"),
    ({"padding_side": "middle"}, "--padding-side must be one of right, left"),
    ({"device": " "}, "--device must name a torch device"),
])
def test_out_of_range_values_name_their_option(kwargs, message) -> None:
    with pytest.raises(RecordingConfigError, match=message.replace("(", r"\(")):
        RecordingConfig(**kwargs)


def test_record_checks_before_loading_anything(tmp_path) -> None:
    with pytest.raises(RecordingConfigError, match="--batch-size"):
        record("no/such/model", [{"id": "a", "category": "code", "instruction": "x"}], tmp_path / "s", batch_size=0)
    assert not (tmp_path / "s").exists()
