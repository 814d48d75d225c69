"""Which folders a command may replace: only its own earlier output, never an input, never a stranger's.

A command that writes a folder (pools, an analysis report, a dry-run upload, ...) calls
:func:`claim_output_dir` before any work, writes into :func:`hexainst.kernel.atomic.staged_dir`,
and leaves :data:`MARKER` in it with :func:`write_marker`. The next run recognises the folder as
its own by that marker. Anything else stops the command before it starts, with one line saying
what was found and what to do.

Release folders are recognised by their content instead (a HexaInst card, and nothing in
``data/`` or ``reserve/`` the release layout does not name; any other folder with something in it is
refused): see :func:`claim_release_dir`.

Each ``claim_*`` takes ``option``, what its errors call the output: the name of the setting that
holds it (``out_dir``, ``work``: an :class:`OutputSettingError`, which the command line prints with
the setting's flag), or a flag for callers that have no setting for it (default ``--out``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from hexainst.kernel import atomic
from hexainst.kernel.errors import UserError
from hexainst.kernel.release_layout import RELEASE_LAYOUT, recover_swap
from hexainst.kernel.settings import SettingError
from hexainst.kernel.version import __version__

#: The file that marks a folder as a toolkit output, and of which kind.
MARKER = ".hexainst-output.json"


class OutputError(UserError):
    """An output location the command must not write: a file, an input, or a folder it did not make."""


class OutputSettingError(OutputError, SettingError):
    """An :class:`OutputError` about the location a setting names: the message starts with the setting
    (``out_dir``), which the command line prints as its flag (``--out``)."""


def _refused(option: str, problem: str) -> OutputError:
    """The error for ``problem`` with the output named by ``option``: a setting's name (``out_dir``: an
    :class:`OutputSettingError`), or, from callers that name the flag themselves, the flag (``--out``)."""
    if option.startswith("-"):
        return OutputError(f"{option} {problem}")
    return OutputSettingError(option, problem)


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().resolve()


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def read_marker(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The marker of a toolkit output folder, or ``None`` when it has none (or an unreadable one)."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MARKER)


def write_marker(folder: str | os.PathLike[str], kind: str, details: Mapping[str, Any] | None = None, *,
                 complete: bool = True) -> Path:
    """Mark ``folder`` as the output of a ``kind`` command (e.g. ``"analysis report"``).

    ``complete``: the folder now holds everything the command writes (the marker is written last),
    so the marker lists its files, and a later run refuses to replace the folder if someone has
    added a file of their own to it. A folder that grows after its marker (an activation store being
    recorded) passes ``complete=False``.
    """
    folder = Path(folder)
    doc = {"kind": kind, "written_by": f"hexainst {__version__}", **dict(details or {})}
    if complete:
        doc["files"] = _files_in(folder)
    return atomic.write_text(folder / MARKER, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _check_location(out: Path, inputs: Iterable[str | os.PathLike[str]], option: str) -> None:
    if out.exists() and not out.is_dir():
        raise _refused(option, f"{out}: is a file, not a folder; name a folder")
    for given in inputs:
        if given is None:
            continue
        inp = _resolved(given)
        if _inside(inp, out):
            raise _refused(option, f"{out}: it holds this command's input {inp}; choose another folder")
        if _inside(out, inp) and inp.is_dir():
            raise _refused(option, f"{out}: it lies inside this command's input {inp}; choose a folder outside it")
    parent = next((p for p in [out, *out.parents] if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise _refused(option, f"{out}: {parent} is a file, so no folder can be made under it; name a folder")
    if parent is None or not _can_write_in(parent):
        raise _refused(option, f"{out}: cannot write there ({parent} is not writable)")


def _can_write_in(folder: Path) -> bool:
    """Whether a file can be made in ``folder`` (see :func:`_write_refusal`)."""
    return _write_refusal(folder) is None


def _write_refusal(folder: Path) -> str | None:
    """Why no file can be made in ``folder``, or ``None``: a real (unnamed, at once removed) file is made,
    not ``os.access`` asked, which root passes on file systems that still refuse it (``/sys``, a read-only mount)."""
    if not folder.is_dir():
        return "no such folder"
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def claim_output_file(
    path: str | os.PathLike[str],
    *,
    is_own: Callable[[Path], bool],
    own: str,
    inputs: Iterable[tuple[str, str | os.PathLike[str]]] = (),
    option: str = "--out",
) -> Path:
    """Check, before any work, that a command may (re)place the file ``path``; return it resolved.

    Allowed: a new file in a writable folder, or a file ``is_own`` recognises as ``own`` (e.g. "an earlier
    assembly report"). Refused: a folder; a file inside one of ``inputs`` (pairs of a description, e.g.
    "a --pools folder", and a path); any other existing file; a folder that refuses a new file.
    """
    out = _resolved(path)
    for what, given in inputs:
        folder = _resolved(given)
        if _inside(out, folder):
            raise _refused(option, f"{path}: lies inside {what} ({folder}); write it elsewhere")
    if out.is_dir():
        raise _refused(option, f"{path}: is a folder, not a file")
    if out.exists() and not is_own(out):
        raise _refused(option, f"{path}: the file exists and is not {own}; choose a new file")
    if not out.parent.is_dir():
        raise _refused(option, f"{path}: the folder {out.parent} does not exist")
    refusal = _write_refusal(out.parent)
    if refusal is not None:
        raise _refused(option, f"{path}: cannot write into {out.parent} ({refusal})")
    return out


def claim_output_dir(
    path: str | os.PathLike[str],
    kind: str,
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    option: str = "--out",
) -> Path:
    """Check, before any work, that a ``kind`` command may (re)place the folder ``path``; return it resolved.

    Allowed: a folder that does not exist, an empty folder, or a folder whose marker says ``kind``.
    Refused: a file; a folder that is, contains or lies inside one of ``inputs``; any other folder.
    """
    out = _resolved(path)
    _check_location(out, inputs, option)
    atomic.clean_stale_temp_dirs(out)  # a killed run's staged folders; a folder it had moved aside goes back
    if out.is_dir() and any(out.iterdir()):
        marker = read_marker(out)
        if marker is None and _card_is_hexainst(out / "README.md"):
            raise _refused(
                option, f"{out}: holds a HexaInst release, not a {kind!r} output; choose a new or empty folder"
            )
        if marker is None:
            raise _refused(
                option, f"{out}: the folder exists and was not written by hexainst (no {MARKER}); "
                "choose a new or empty folder, or move it away yourself"
            )
        if marker.get("kind") != kind:
            raise _refused(
                option, f"{out}: holds a {marker.get('kind')!r} output, not a {kind!r} one; choose another folder"
            )
        if isinstance(marker.get("files"), list):
            added = sorted(set(_files_in(out)) - set(marker["files"]))
            if added:
                shown = ", ".join(added[:3]) + (f" and {len(added) - 3} more" if len(added) > 3 else "")
                raise _refused(
                    option, f"{out}: holds files hexainst did not write there ({shown}); "
                    "move them away first, or choose another folder"
                )
    return out


# --------------------------------------------------------------------------- release folders


def _card_is_hexainst(readme: Path) -> bool:
    """Whether ``readme`` is a HexaInst dataset card (its YAML names the HexaInst schema)."""
    try:
        text = readme.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if not text.startswith("---"):
        return False
    header = text.split("---", 2)[1] if text.count("---") >= 2 else ""
    return "pretty_name: HexaInst" in header


def _is_ours(file: Path, name: str) -> bool:
    """Whether a release's ``validation.json`` / ``topup.json`` is the toolkit's (a release replaces it)."""
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if name == "validation.json":
        return isinstance(doc, dict) and doc.get("format") == "hexainst-validation"
    return isinstance(doc, dict) and set(doc) == {"extra"} and isinstance(doc["extra"], dict)


def foreign_release_entries(folder: str | os.PathLike[str]) -> list[str]:
    """Files in ``folder``'s release entries that a HexaInst release would not have written.

    A release writes ``README.md``, ``LICENSE.md``, ``croissant.json``, ``data/<category>.parquet``,
    ``reserve/reserve.jsonl`` and ``generations/*.jsonl``; everything else in the folder (code, notes) is left alone by the
    writer, but a stranger's file inside ``data/`` or ``reserve/``, or a README that is not a
    HexaInst card, means the folder is not a release this toolkit made.
    """
    folder = Path(folder)
    foreign: list[str] = []
    readme = folder / "README.md"
    if readme.exists() and not _card_is_hexainst(readme):
        foreign.append("README.md (not a HexaInst dataset card)")
    for name, kind in (("validation.json", "a HexaInst validation file"), ("topup.json", "a HexaInst top-up record")):
        if (folder / name).exists() and not _is_ours(folder / name, name):
            foreign.append(f"{name} (not {kind})")
    for sub, allowed in RELEASE_LAYOUT.items():
        base = folder / sub
        if base.is_file():
            foreign.append(sub)
            continue
        if not base.is_dir():
            continue
        for file in sorted(base.rglob("*")):
            rel = file.relative_to(base)
            if file.is_dir() or any(rel.match(p) for p in allowed):
                continue
            foreign.append(f"{sub}/{rel}")
    return foreign


def claim_release_dir(path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str] | None] = (),
                      option: str = "--out") -> Path:
    """Check, before any work, that a release may be written into ``path``; return it resolved.

    Allowed: a new or empty folder, or an earlier HexaInst release: a HexaInst card (``README.md``) whose
    release entries are all HexaInst's own (the folder may hold other things, such as the package's code
    or a user's notes: the writer never touches them). Refused: another command's output (its marker),
    and any other folder with something in it, which a release written there would mix with, or replace.
    """
    out = _resolved(path)
    _check_location(out, inputs, option)
    atomic.clean_stale_temp_dirs(out)
    if out.is_dir():
        recover_swap(out)
        marker = read_marker(out)
        if marker is not None:
            raise _refused(option, f"{out}: holds a {marker.get('kind')!r} output, not a HexaInst release; "
                                   "choose a new or empty folder")
        foreign = foreign_release_entries(out)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise _refused(
                option, f"{out}: not a HexaInst release folder ({shown}); writing the release there would "
                "replace them: choose a new or empty folder"
            )
        held = sorted(p.name for p in out.iterdir())
        if held and not (out / "README.md").is_file():
            shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
            raise _refused(option, f"{out}: the folder is not empty ({shown}) and is not an earlier HexaInst release "
                                   "(no README.md card); choose a new or empty folder, or move its files away yourself")
    return out
