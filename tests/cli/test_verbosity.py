"""``hexainst --quiet`` / ``--verbose``: what the library's messages show, for every command.

A real synthetic build (against the in-process stub endpoint, over HTTP) through the command
line's ``main``: its INFO summary line shows by default, is gone with ``--quiet``, and its DEBUG
line (the generator and cache it resolved) shows only with ``--verbose``. Its progress bar shows
by default and is gone with ``--quiet``, as with ``--no-progress``, which every command that shows
bars takes.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from hexainst.builders.synthetic.stub_server import StubServer
from hexainst.cli import build_parser, main
from hexainst.kernel.log import STDOUT, configure

SUMMARY = "synthetic: 12 kept in"  # 2 per category x 6 (INFO, standard error)
DEBUG = "synthetic: generator stub-model (route "


@pytest.fixture
def stub(monkeypatch):
    for k in ("HEXAINST_BASE_URL", "HEXAINST_MODEL", "OPENAI_API_KEY", "DEEPSEEK_API_KEY"):
        monkeypatch.delenv(k, raising=False)
    with StubServer(latency=0.0) as server:
        yield server


BAR = "synthetic kept"  # the synthetic build's progress bar (tqdm, standard error)


def _build(stub: StubServer, tmp_path: Path, capsys, *flags: str, bars: bool = False) -> tuple[str, str]:
    out = tmp_path / f"pools{len(list(tmp_path.iterdir()))}"
    code = main([*flags, "build", "synthetic", *(() if bars else ("--no-progress",)), "--out", str(out),
                 "--base-url", stub.base_url, "--model", "stub-model", "--per-category", "2",
                 "--cache", str(tmp_path / "cache")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out, captured.err


def test_a_library_message_shows_by_default_and_not_with_quiet(stub, tmp_path, capsys):
    out, err = _build(stub, tmp_path, capsys)
    assert SUMMARY in err and SUMMARY not in out
    summary = next(line for line in err.splitlines() if SUMMARY in line)
    assert summary.startswith("synthetic: ")  # the message as print showed it: no level or logger name
    assert DEBUG not in err

    out, err = _build(stub, tmp_path, capsys, "--quiet")
    assert SUMMARY not in err and SUMMARY not in out


def test_verbose_shows_debug_messages(stub, tmp_path, capsys):
    _, err = _build(stub, tmp_path, capsys, "--verbose")
    assert DEBUG in err and SUMMARY in err
    assert str(tmp_path / "cache") in next(line for line in err.splitlines() if DEBUG in line)


def test_quiet_and_verbose_together_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--quiet", "--verbose", "info"])
    assert exit_.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_messages_go_to_the_stream_their_print_used_and_warnings_survive_quiet(capsys):
    log = logging.getLogger("hexainst.analysis.some_stage")
    configure(-1)
    log.info("hidden")
    log.warning("still shown")
    configure(0)
    log.info("on stdout", extra=STDOUT)
    log.info("on stderr")
    log.debug("not by default")
    captured = capsys.readouterr()
    assert captured.out == "on stdout\n"
    assert captured.err == "still shown\non stderr\n"


def test_the_command_line_shows_them_in_a_fresh_process(stub, tmp_path):
    # the real entry point, not main() under pytest's handlers: nothing configures logging but the CLI
    args = [sys.executable, "-m", "hexainst", "build", "synthetic", "--no-progress", "--out", str(tmp_path / "p"),
            "--base-url", stub.base_url, "--model", "stub-model", "--per-category", "2", "--cache",
            str(tmp_path / "cache")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert SUMMARY in done.stderr


def test_quiet_also_hides_the_progress_bars(stub, tmp_path, capsys):
    _, err = _build(stub, tmp_path, capsys, bars=True)
    assert BAR in err and SUMMARY in err
    _, err = _build(stub, tmp_path, capsys, "-q", bars=True)
    assert BAR not in err and SUMMARY not in err
    _, err = _build(stub, tmp_path, capsys, "--verbose", bars=True)
    assert BAR in err


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command as typed, its parser) for every command and subcommand of ``parser``."""
    if path:
        yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


#: The commands that show progress bars (each stage that draws one with tqdm, through its config's ``progress``).
WITH_BARS = {"build natural", "build synthetic", "build all", "build topup", "record", "analyze", "baseline",
             "annotate up", "annotate serve", "annotate sync", "annotate senior", "annotate import", "annotate judge",
             "finetune run", "finetune record", "finetune evaluate"}


def test_every_command_with_bars_takes_no_progress_and_quiet_turns_them_off():
    from hexainst.cli.options import shows_progress

    commands = dict(_commands(build_parser()))
    with_progress = {name for name, p in commands.items() if any(a.dest == "progress" for a in p._actions)}
    # 'finetune path' shows no bar but shares finetune's options (hexainst/cli/finetune.py)
    assert with_progress >= WITH_BARS and with_progress - WITH_BARS <= {"finetune path"}
    for name in sorted(WITH_BARS):
        options = {o: a for a in commands[name]._actions for o in a.option_strings}
        assert options["--no-progress"].dest == "progress" and options["--no-progress"].default is True, name
        for verbosity, shown in ((-1, False), (0, True), (1, True)):
            args = argparse.Namespace(verbosity=verbosity, progress=True)
            shows_progress(args)
            assert args.progress is shown


def test_the_old_quiet_after_a_command_is_the_global_quiet():
    """``analyze --quiet`` (once its --no-progress) means what ``hexainst -q analyze`` means."""
    parser = build_parser()
    for argv in (["-q", "analyze", "--store", "s", "--out", "o"], ["analyze", "--store", "s", "--out", "o", "--quiet"]):
        args = parser.parse_args(argv)
        assert args.verbosity == -1, argv
    assert parser.parse_args(["analyze", "--store", "s", "--out", "o"]).verbosity == 0
