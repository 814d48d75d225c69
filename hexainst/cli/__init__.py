"""The ``hexainst`` command line: the shell, the one place that imports the stages.

One module per top-level command, named after it (``build`` is a package with one module per
subcommand as typed); each parses its arguments, calls a stage's plain-Python API and prints.
Options are built from the stage's config (``hexainst.cli.options.add_settings``), so a setting's
default, range and help have one home. Heavy third-party packages (torch, transformers, datasets)
are imported where they are used, so that ``hexainst --help`` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence
from pathlib import Path

from hexainst import __version__
from hexainst.cli import (
    analyze,
    annotate,
    baseline,
    build,
    finetune,
    info,
    publish,
    record,
    record_info,
    record_merge,
    validate,
)
from hexainst.cli.options import flag_for, shows_progress
from hexainst.cli.pipes import guard_stdout
from hexainst.kernel.disk_space import disk_full_cause, disk_full_message
from hexainst.kernel.errors import UserError, one_line
from hexainst.kernel.log import configure
from hexainst.kernel.settings import SettingError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hexainst",
        description=(
            "HexaInst: build, validate, annotate and load a balanced dataset of 1,200 instructions "
            "(6 categories x 100 natural + 100 synthetic), and run SPARCOM, the analysis of "
            "instruction-specific neurons and experts in causal LMs."
        ),
        epilog="Run 'hexainst COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"hexainst {__version__}")
    # What the library's messages show (hexainst.kernel.log); before the command: hexainst --quiet build all.
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1, default=0,
                       help="also show debug messages")
    shown.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1,
                       help="show only warnings and errors, and no progress bars (as each command's --no-progress)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for module in (build, publish, validate, info, annotate, record, record_merge, record_info, analyze, baseline,
                   finetune):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    guard_stdout()
    try:
        return _run(argv)
    finally:
        sys.stdout.flush()  # while the guard can still swallow a reader that has gone


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure(args.verbosity)
    shows_progress(args)
    try:
        return int(args.handler(args) or 0)  # the library takes the writers' locks where it writes
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the CLI's one place to turn errors into messages
        if isinstance(exc, SettingError):
            print(f"hexainst {args.command}: error: {one_line(exc.naming(flag_for(args, exc.setting)))}", file=sys.stderr)
            return 2
        if isinstance(exc, UserError):
            print(f"hexainst {args.command}: error: {exc if exc.multiline else one_line(str(exc))}", file=sys.stderr)
            return 2
        full = _disk_full_line(args, exc)
        if full is not None:
            print(f"hexainst {args.command}: error: {one_line(full)}", file=sys.stderr)
            return 2
        if _is_the_file_systems_answer(exc):  # a folder without write permission, a file where a folder goes, ...
            paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
            print(f"hexainst {args.command}: error: {one_line(paths)}: {exc.strerror}", file=sys.stderr)
            return 2
        raise


def _disk_full_line(args: argparse.Namespace, exc: BaseException) -> str | None:
    """One line for a write that ran out of space: the output folder it was for (the one of ``--out``,
    ``--work``, ``--cache`` that holds the file, else ``--out``) and the file, when known."""
    cause = disk_full_cause(exc)
    if cause is None:
        return None
    file = Path(cause.filename).resolve() if isinstance(cause.filename, str) else None
    folders = [Path(value).expanduser().resolve() for option in ("out", "out_dir", "work", "cache_dir")
               if isinstance(value := getattr(args, option, None), (str, Path))]
    folder = next((f for f in folders if file is not None and (file == f or f in file.parents)),
                  folders[0] if folders else None)
    return disk_full_message(folder, file)


#: Errors the file system gives for what the user pointed a command at (permissions, a file in a
#: folder's place, a full or read-only disk), when they name the path: one line, not a traceback.
_FILE_SYSTEM_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.ENOSPC, errno.EROFS,
                                 errno.EDQUOT, errno.ENAMETOOLONG})


def _is_the_file_systems_answer(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _FILE_SYSTEM_ERRNOS and exc.filename is not None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
