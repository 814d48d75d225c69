"""Options built from a config's settings: one declaration gives the flag, type, range, help and the error."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from hexainst.cli.options import add_settings, config_from, flag_for, help_of
from hexainst.kernel.settings import SettingError, check_ranges, setting


@dataclass(frozen=True)
class Made:
    candidates: int = setting(2, "candidates per slot", low=1, high=16)
    temperature: float | None = setting(None, "sampling temperature (default: per category)", low=0, high=2)
    top_p: float = setting(0.9, "nucleus mass", low=0, high=1, low_open=True)
    timeout: float = setting(120.0, "seconds per request", low=0, low_open=True)
    dtype: str = setting("auto", "weights", choices=("auto", "float32"))
    cache: Path | None = setting(None, "request cache folder")
    progress: bool = setting(True, "no progress bar")
    offline: bool = setting(False, "replay from the cache alone")
    internal: int = 3  # not a setting: never an option


NAMES = ["candidates", "temperature", "top_p", "timeout", "dtype", "cache", "progress", "offline"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="t")
    add_settings(p, Made, NAMES, flags={"cache": "--cache-dir"})
    return p


def test_defaults_types_and_the_config_come_from_the_declaration() -> None:
    args = _parser().parse_args([])
    assert config_from(args, Made) == Made()
    args = _parser().parse_args(["--candidates", "5", "--temperature", "0.4", "--cache-dir", "c", "--no-progress",
                                 "--offline", "--dtype", "float32"])
    made = config_from(args, Made, internal=7)
    assert made == Made(candidates=5, temperature=0.4, cache=Path("c"), progress=False, offline=True, dtype="float32",
                        internal=7)
    assert isinstance(made.candidates, int) and isinstance(made.cache, Path)


def test_help_shows_the_fields_help_and_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--candidates CANDIDATES candidates per slot (default 2)" in text
    assert "--timeout TIMEOUT seconds per request (default 120)" in text
    assert "sampling temperature (default: per category)" in text and "(default None)" not in text
    assert "--no-progress no progress bar" in text and "--offline replay" in text


@pytest.mark.parametrize(("argv", "message"), [
    (["--candidates", "0"], "argument --candidates: must be in 1..16, got 0"),
    (["--candidates", "x"], "argument --candidates: expected a whole number, got 'x'"),
    (["--top-p", "0"], "argument --top-p: must be in (0, 1], got 0.0"),
    (["--timeout", "0"], "argument --timeout: must be > 0, got 0.0"),
    (["--temperature", "nan"], "argument --temperature: must be in [0, 2], got nan"),
    (["--dtype", "int8"], "argument --dtype: must be one of auto, float32, got 'int8'"),
])
def test_a_value_out_of_range_is_refused_at_parse_time_naming_the_flag(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        _parser().parse_args(argv)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_the_config_checks_ranges_naming_the_setting_and_the_shell_names_the_flag() -> None:
    with pytest.raises(SettingError) as caught:
        check_ranges(Made(top_p=1.5))
    assert str(caught.value) == "top_p must be in (0, 1], got 1.5"
    check_ranges(Made(temperature=None))  # None means "not set": no range applies
    args = _parser().parse_args([])
    assert caught.value.naming(flag_for(args, caught.value.setting)) == "--top-p must be in (0, 1], got 1.5"
    with pytest.raises(SettingError) as cache:
        raise SettingError("cache", "must be a folder")
    assert cache.value.naming(flag_for(args, "cache")) == "--cache-dir must be a folder"
    assert flag_for(argparse.Namespace(), "max_slots_factor") == "--max-slots-factor"


def test_a_field_not_declared_as_a_setting_cannot_become_an_option() -> None:
    with pytest.raises(TypeError, match="Made.internal"):
        add_settings(argparse.ArgumentParser(), Made, ["internal"])


def test_options_in_a_group_report_their_flags_to_the_parser() -> None:
    p = argparse.ArgumentParser()
    add_settings(p.add_argument_group("g"), Made, ["candidates"], flags={"candidates": "--n"})
    add_settings(p, Made, ["timeout"])
    args = p.parse_args(["--n", "3"])
    assert args.candidates == 3
    assert flag_for(args, "candidates") == "--n" and flag_for(args, "timeout") == "--timeout"


@dataclass(frozen=True)
class Lists:
    eps: float = setting(0.01, "a fraction", low=0, high=1, low_open=True, high_open=True)
    sweep: tuple[float, ...] = setting((0.005, 0.01), "fractions", low=0, high=1, low_open=True, high_open=True)
    ids: tuple[str, ...] = setting((), "ids")
    seeds: tuple[int, ...] = setting((0, 1, 2), "seeds", low=0)
    variant: str | None = setting(None, "arm", choices=("tuned", "control"))


def _lists() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="t")
    add_settings(p, Lists, ["eps", "sweep", "ids", "seeds", "variant"], flags={"ids": "--id"}, repeated=["ids"],
                 spaced=["seeds"], required=["variant"])
    return p


def test_list_settings_open_ranges_and_required_options(capsys: pytest.CaptureFixture[str]) -> None:
    args = _lists().parse_args(["--variant", "tuned"])
    assert config_from(args, Lists) == Lists(variant="tuned")
    args = _lists().parse_args(["--variant", "control", "--sweep", "0.1,0.2", "--id", "a", "--id", "b",
                                "--seeds", "3", "4"])
    assert config_from(args, Lists) == Lists(sweep=(0.1, 0.2), ids=("a", "b"), seeds=(3, 4), variant="control")
    with pytest.raises(SettingError, match=r"eps must be in \(0, 1\), got 1"):
        check_ranges(Lists(eps=1))
    with pytest.raises(SettingError, match=r"sweep must be in \(0, 1\), got 1.5"):
        check_ranges(Lists(sweep=(0.1, 1.5)))
    for argv, message in ((["--variant", "tuned", "--sweep", "0.1,1"], "argument --sweep: must be in (0, 1), got 1.0"),
                          (["--variant", "tuned", "--seeds", "1", "-2"], "argument --seeds: must be >= 0, got -2"),
                          ([], "the following arguments are required: --variant")):
        with pytest.raises(SystemExit):
            _lists().parse_args(argv)
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _lists().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--sweep SWEEP fractions (default 0.005,0.01)" in text and "--id ID ids" in text


def test_a_hand_written_option_takes_its_help_from_the_setting() -> None:
    """help_of: an option the shell writes itself (a repeatable one, say) still has its help declared once."""
    assert help_of(Made, "cache") == "request cache folder"
    with pytest.raises(TypeError, match="Made.internal is not declared"):
        help_of(Made, "internal")
