"""A validation round's whole steps, config in and result out: :func:`up`, :func:`serve`, :func:`stop`,
:func:`setup`, :func:`sync`, :func:`senior`, :func:`agreement` and :func:`export`.

What ``hexainst annotate`` runs (``import`` and ``judge`` land verdicts through
:mod:`~hexainst.annotation.importer` and :mod:`~hexainst.annotation.judge`): the shell parses the options into an
:class:`~hexainst.annotation.config.AnnotationConfig` (its ``candidates``, a :class:`Candidates`, are the
files the candidates come from), calls one of these with it and prints the result. Every check that can fail runs
before a server is started or asked (a mistake costs nothing); notes go to the ``hexainst`` logger.
A file or folder that a setting names and that cannot be used raises a
:class:`~hexainst.kernel.settings.SettingError` naming that setting (``out``, ``previous``, ...);
the command line prints it with the setting's flag.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hexainst.annotation.config import DEFAULTS, AnnotationConfig, Candidates
from hexainst.annotation.drafts import warning
from hexainst.annotation.outcomes import Adjudication, Triage
from hexainst.annotation.sampling import sample
from hexainst.annotation.server import LabelStudioServer, find_binary
from hexainst.annotation.session import Session
from hexainst.annotation.sync import SyncReport, junior_tasks, rows_from_release
from hexainst.kernel import validation_file
from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import read_jsonl
from hexainst.kernel.outputs import OutputSettingError
from hexainst.kernel.pools import read_pools
from hexainst.kernel.records import upgrade_row, validate_rows
from hexainst.kernel.settings import SettingError
from hexainst.kernel.validation_file import FORMAT

log = logging.getLogger(__name__)


@dataclass
class UpResult:
    """A round that serves: its session, the servers this call started (those already running are
    :attr:`Session.already_running`), and what each junior's project received (empty: no candidates)."""

    session: Session
    servers: list[LabelStudioServer]
    synced: dict[str, SyncReport] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote to ``out``: ``document`` (the earlier rounds and this one), this
    round's ``outcomes``, the ``adjudication`` behind them, and the earlier rounds' file it kept."""

    out: Path
    document: dict[str, Any]
    outcomes: list[dict[str, Any]]
    adjudication: Adjudication
    previous: dict[str, Any] | None

    @property
    def round(self) -> int:
        """This round's number in the file written."""
        return int(self.document["rounds"][-1]["round"])

    def counts(self) -> dict[str, int]:
        """This round's outcomes by status: accepted, revised, rejected."""
        return {s: sum(1 for o in self.outcomes if o["status"] == s) for s in ("accepted", "revised", "rejected")}


def read_candidates(candidates: Candidates, config: AnnotationConfig = DEFAULTS) -> list[dict[str, Any]]:
    """Every candidate row, checked (each row valid, every id unique) and, when ``config`` asks for
    a sample (``sample`` / ``sample_per_cell``), the round's seeded sample of them."""
    if not candidates.given:
        raise UserError("name the candidates: a release folder, candidate pool folders or rows files "
                        "(Candidates: release, pools or rows)")
    rows: list[dict[str, Any]] = []
    if candidates.release is not None:
        if not candidates.release.is_dir():
            raise SettingError("release", f"{candidates.release}: no such release folder")
        rows += rows_from_release(str(candidates.release))
    if candidates.pools:
        rows += [r for pool in read_pools(list(candidates.pools)).values() for r in pool]
    for file in candidates.rows:
        rows += validate_rows([upgrade_row(r) for r in read_jsonl(file, what="rows file")], str(file))
    junior_tasks(rows, "the candidates given")  # every row valid and every id unique, before any server is touched
    if config.sample is not None or config.sample_per_cell is not None:
        rows = sample(rows, n=config.sample, per_cell=config.sample_per_cell, seed=config.seed)
        log.info(f"round size: {len(rows)} candidates (seed {config.seed})")
    return rows


def _start(config: AnnotationConfig, create_missing: bool) -> UpResult:
    """The round in ``config.data_dir`` (a new one of ``config.juniors`` juniors if ``create_missing``),
    every instance that is not running started."""
    session = Session.load_or_create(config.data_dir, config.juniors)
    find_binary()  # before anything is written
    session.preflight(config.port, create_missing=create_missing)
    session.save()  # each instance's admin must be known before its first start makes it
    down = [i.name for i in session.instances if i.name not in session.running()]
    if down:
        log.info(f"starting {', '.join(down)}'s Label Studio in {config.data_dir} ...")
    servers = session.start(port=config.port, progress=config.progress, create_missing=create_missing)
    return UpResult(session, servers)


def up(config: AnnotationConfig) -> UpResult:
    """Start every annotator's Label Studio, set up each account and project, and send the
    candidates (``config.candidates``, if any) to every junior. On a failure, the servers this call
    started are stopped."""
    rows = read_candidates(config.candidates, config) if config.candidates.given else None  # a bad file: no server starts
    result = _start(config, create_missing=True)
    try:
        result.session.setup()
        result.session.save()
        if rows is not None:
            result.synced = result.session.sync_candidates(rows, batch_size=config.batch_size,
                                                           progress=config.progress)
    except BaseException:
        for server in result.servers:
            server.stop()
        raise
    return result


def serve(config: AnnotationConfig) -> UpResult:
    """Restart the round in ``config.data_dir``: every instance that is not running (none is recreated)."""
    Session.load(config.data_dir)  # serve restarts a round; 'up' starts one
    return _start(config, create_missing=False)


def keep_serving(servers: Sequence[LabelStudioServer], detach: bool) -> LabelStudioServer | None:
    """Leave ``servers`` running in the background (``detach``, or none started), or serve them in the
    foreground until Ctrl-C or until one exits, then stop them all. Returns the server that exited, if one did."""
    if detach or not servers:
        for server in servers:
            server.detach()
        return None
    log.info("serving; press Ctrl-C to stop")
    try:
        while True:
            for server in servers:
                if server.process is None or server.process.poll() is not None:
                    log.warning(f"{server.name} exited; see {server.log_path}; stopping the others")
                    return server
            time.sleep(1.0)
    except KeyboardInterrupt:
        return None
    finally:
        for server in servers:
            server.stop()


def stop(config: AnnotationConfig) -> list[str]:
    """Stop the round's detached servers (by their PID files); the names of the instances stopped."""
    return Session.load(config.data_dir).stop()


def setup(config: AnnotationConfig) -> Session:
    """Create (or log in) every annotator's account and project on the running round."""
    session = Session.load(config.data_dir)
    session.require_servers()
    session.setup()
    session.save()
    return session


def sync(config: AnnotationConfig) -> dict[str, SyncReport]:
    """Send ``config.candidates`` to every junior of the running round: only the ids a project lacks."""
    session = Session.load(config.data_dir)
    rows = read_candidates(config.candidates, config)
    session.require_servers()
    return session.sync_candidates(rows, batch_size=config.batch_size, progress=config.progress)


def senior(config: AnnotationConfig) -> tuple[SyncReport, Triage]:
    """Send the tasks the juniors disagree on to the senior (only those the senior's project lacks)."""
    session = Session.load(config.data_dir)
    session.require_servers()
    return session.sync_senior(progress=config.progress)


def _warn_drafts(session: Session) -> None:
    """Name the tasks whose changes were never submitted (Label Studio keeps them as drafts)."""
    for line in warning(session.drafts):
        log.warning(line)


def agreement(config: AnnotationConfig) -> Adjudication:
    """The running round's verdicts read back and adjudicated (agreement, progress); nothing written."""
    session = Session.load(config.data_dir)
    session.require_servers()
    _, result = session.adjudicate()
    _warn_drafts(session)
    return result


def _check_out(out: Path | None) -> Path:
    """``out`` must be a new file or an earlier validation file: never a folder or someone else's file."""
    if out is None:
        raise OutputSettingError("out", "must name the validation file to write")
    if out.is_dir():
        raise OutputSettingError("out", f"{out}: is a folder; name the validation file to write")
    if not out.parent.is_dir():
        raise OutputSettingError("out", f"{out}: the folder {out.parent} does not exist")
    if out.exists():
        try:
            known = json.loads(out.read_text("utf-8")).get("format") == FORMAT
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            known = False
        if not known:
            raise OutputSettingError("out", f"{out}: exists and is not a validation file; it is left as it is "
                                            "(name a new file)")
    return out


def export(config: AnnotationConfig) -> ExportResult:
    """Read every verdict of the running round back and write the validation file ``config.out``.

    ``config.previous``: the validation file of the earlier rounds, whose rounds are kept and after
    which this round is numbered (an id decided in both refuses); without it the file holds round 1.
    ``config.save_exports``: a folder that also keeps each annotator's raw Label Studio export. Every
    file named is checked before any server is asked.
    """
    out, previous, save_exports = _check_out(config.out), config.previous, config.save_exports
    if save_exports is not None and save_exports.exists() and not save_exports.is_dir():
        raise OutputSettingError("save_exports", f"{save_exports}: is a file; name a folder")
    earlier = None
    if previous is not None:  # read before any server is asked: a bad file costs nothing
        if previous.is_dir():
            raise SettingError("previous", f"{previous}: is a folder; name the earlier rounds' validation file")
        earlier = validation_file.read(previous, None)
    session = Session.load(config.data_dir)
    session.require_servers()
    doc, result = session.adjudicate(save_exports=save_exports)
    _warn_drafts(session)
    this_round = doc["outcomes"]
    if earlier is not None:
        try:
            doc = validation_file.merge(earlier, doc, str(previous))
        except validation_file.ValidationFileError as exc:  # the file the setting names holds an id decided again
            raise SettingError("previous", str(exc)) from None
    validation_file.write(out, doc)
    return ExportResult(out=out, document=doc, outcomes=this_round, adjudication=result, previous=earlier)
