"""``hexainst annotate ...``: run validation in a local Label Studio.

    hexainst annotate up --data-dir D [--release R | --pools P ...]   # server + setup + sync, prints logins
    hexainst annotate serve --data-dir D [--detach]                    # the server only
    hexainst annotate stop --data-dir D                                # stop a detached server
    hexainst annotate setup --data-dir D                               # accounts + both projects
    hexainst annotate sync --data-dir D (--release R | --pools P ... | --rows FILE ...)
    hexainst annotate senior --data-dir D                              # disagreements -> senior project
    hexainst annotate agreement --data-dir D [--json]
    hexainst annotate export --data-dir D --out validation.json

Every command but ``serve``/``up`` talks to a server that is already running (its URL is in the
data dir's state file). Commands are idempotent: rerun one after an interruption.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = Path("runs/label-studio")


def _friendly(handler):
    """Turn connection and API failures into one-line user errors that say what to do."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        from hexainst.kernel.errors import UserError

        try:
            return handler(args)
        except httpx.TransportError as exc:
            raise UserError(
                f"cannot reach the Label Studio server recorded in {args.data_dir} ({exc}); is it running? "
                f"start it with 'hexainst annotate serve --data-dir {args.data_dir} --detach'"
            ) from exc
        except ApiError as exc:
            raise UserError(f"Label Studio answered HTTP {exc.status_code}: {exc.body}") from exc

    return run


def register(subparsers: argparse._SubParsersAction) -> None:
    annotate = subparsers.add_parser(
        "annotate",
        help="validate candidates in a local Label Studio: two juniors, a senior, agreement, validation.json",
        description=(
            "Validation of HexaInst candidates (paper, Appendix B) in Label Studio "
            "(server from .ls-venv or $HEXAINST_LABEL_STUDIO): every candidate gets two junior verdicts; "
            "the senior decides where they disagree; 'export' writes validation.json for 'hexainst build release'."
        ),
    )
    commands = annotate.add_subparsers(dest="annotate_command", metavar="STEP", required=True)

    def add(name: str, help_text: str, handler, description: str | None = None) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=help_text, description=description or help_text)
        p.add_argument(
            "--data-dir", type=Path, default=DEFAULT_DATA_DIR,
            help=f"the server's data folder, which also keeps this round's state (default: {DEFAULT_DATA_DIR})",
        )  # fmt: skip
        p.set_defaults(handler=_friendly(handler))
        return p

    def add_candidates(p: argparse.ArgumentParser) -> None:
        p.add_argument("--release", type=Path, metavar="DIR", help="a release folder: its rows and its reserve")
        p.add_argument("--pools", type=Path, nargs="+", metavar="DIR",
                       help="candidate pool folders (<category>.<source>.jsonl for all 12 cells)")  # fmt: skip
        p.add_argument("--rows", type=Path, nargs="+", metavar="FILE", help="JSONL files of record-schema rows")
        p.add_argument("--batch-size", type=int, default=100, help="tasks per import request (default 100)")

    up = add(
        "up", "start the server, create accounts and projects, import candidates, print the URL and logins",
        _cmd_up,
        "Start Label Studio on 127.0.0.1, set up the junior and senior accounts and projects, import the "
        "candidates if given, print the URL and the logins, and keep serving until Ctrl-C (or --detach).",
    )
    up.add_argument("--port", type=int, help="port to listen on (default: a free one)")
    up.add_argument("--detach", action="store_true", help="leave the server running; stop it with 'annotate stop'")
    add_candidates(up)

    serve = add("serve", "start the Label Studio server (foreground until Ctrl-C, or --detach)", _cmd_serve)
    serve.add_argument("--port", type=int, help="port to listen on (default: a free one)")
    serve.add_argument("--detach", action="store_true", help="leave the server running; stop it with 'annotate stop'")

    add("stop", "stop a server started with --detach (by the PID in the data folder)", _cmd_stop)
    add("setup", "create (or log in) the junior and senior accounts; create or update both projects", _cmd_setup)
    sync = add("sync", "import candidates into the junior project (idempotent, keyed on instruction id)", _cmd_sync)
    add_candidates(sync)
    add("senior", "put the tasks the juniors disagree on into the senior project (idempotent)", _cmd_senior)
    agreement = add("agreement", "print junior agreement (Cohen's kappa) and progress", _cmd_agreement)
    agreement.add_argument("--json", action="store_true", help="print the agreement block as JSON")
    export = add("export", "export both projects and write the validation file", _cmd_export)
    export.add_argument("--out", type=Path, required=True, metavar="FILE", help="where to write validation.json")
    export.add_argument("--save-exports", type=Path, metavar="DIR",
                        help="also keep the raw Label Studio exports there (audit trail)")  # fmt: skip


# ---- handlers ----------------------------------------------------------------------------


def _start(args: argparse.Namespace):
    from hexainst.annotation.server import LabelStudioServer
    from hexainst.annotation.session import Session

    session = Session.load_or_new(args.data_dir)
    session.save(args.data_dir)  # the admin account must survive the first start
    server = LabelStudioServer(args.data_dir, session.admin, port=args.port)
    print(f"starting Label Studio in {server.data_dir} (first start runs migrations: up to a few minutes) ...",
          file=sys.stderr, flush=True)  # fmt: skip
    server.start()
    session.url = server.url
    session.save(args.data_dir)
    return server, session


def _serve_until_interrupted(server, detach: bool) -> int:
    if detach:
        print(f"server PID {server.process.pid}; stop it with: hexainst annotate stop --data-dir {server.data_dir}")
        server.process = None  # leave it running
        return 0
    print("serving; press Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        while server.process.poll() is None:
            time.sleep(1.0)
        print(f"Label Studio exited with status {server.process.returncode}; see {server.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def _print_logins(session) -> None:
    print(f"Label Studio: {session.url}")
    print(f"  admin   {session.admin.email}  password: {session.admin.password}")
    for account in session.accounts:
        print(f"  {account.role:<7} {account.email}  password: {account.password}")
    if session.junior_project is not None:
        print(f"  junior project: {session.url}/projects/{session.junior_project}/data")
        print(f"  senior project: {session.url}/projects/{session.senior_project}/data")
    sys.stdout.flush()


def _cmd_up(args: argparse.Namespace) -> int:
    server, session = _start(args)
    try:
        session.setup()
        session.save(args.data_dir)
        rows = _candidate_rows(args, required=False)
        if rows is not None:
            _print_sync(session.sync_candidates(rows, batch_size=args.batch_size))
    except BaseException:
        server.stop()
        raise
    _print_logins(session)
    return _serve_until_interrupted(server, args.detach)


def _cmd_serve(args: argparse.Namespace) -> int:
    server, session = _start(args)
    print(f"Label Studio: {session.url}  (admin {session.admin.email}, password {session.admin.password})", flush=True)
    return _serve_until_interrupted(server, args.detach)


def _cmd_stop(args: argparse.Namespace) -> int:
    from hexainst.annotation.server import stop_by_pid_file

    print("stopped" if stop_by_pid_file(args.data_dir) else f"no running server recorded in {args.data_dir}")
    return 0


def _cmd_setup(args: argparse.Namespace) -> int:
    from hexainst.annotation.session import Session

    session = Session.load(args.data_dir)
    session.require_server(args.data_dir)
    session.setup()
    session.save(args.data_dir)
    _print_logins(session)
    return 0


def _candidate_rows(args: argparse.Namespace, required: bool = True) -> list[dict[str, Any]] | None:
    from hexainst.kernel.errors import UserError

    rows: list[dict[str, Any]] = []
    given = False
    if args.release:
        from hexainst.annotation.sync import rows_from_release

        rows += rows_from_release(str(args.release))
        given = True
    if args.pools:
        from hexainst.kernel.pools import read_pools

        rows += [r for pool in read_pools(args.pools).values() for r in pool]
        given = True
    for file in args.rows or []:
        from hexainst.kernel.jsonfiles import read_jsonl

        rows += read_jsonl(file, what="rows file")
        given = True
    if not given:
        if required:
            raise UserError("name the candidates: --release DIR, --pools DIR ... or --rows FILE ...")
        return None
    return rows


def _print_sync(report) -> None:
    print(
        f"{report.n_wanted} candidates: {report.n_present_before} already in the project, "
        f"{report.n_imported} imported"
    )
    if report.duplicates_removed:
        print(f"removed {report.duplicates_removed} duplicate tasks without annotations")
    for iid, ids in report.duplicates_kept.items():
        print(f"warning: {iid} is in several annotated tasks {ids}; their annotations are merged at export")
    if report.changed_text:
        print(f"warning: {len(report.changed_text)} candidates changed text since import (first: {report.changed_text[0]}); "
              "their tasks keep the old text")  # fmt: skip
    if report.extra_in_project:
        print(f"note: {len(report.extra_in_project)} tasks in the project are not among these candidates")


def _cmd_sync(args: argparse.Namespace) -> int:
    from hexainst.annotation.session import Session

    session = Session.load(args.data_dir)
    rows = _candidate_rows(args)
    session.require_server(args.data_dir)
    _print_sync(session.sync_candidates(rows, batch_size=args.batch_size))
    return 0


def _cmd_senior(args: argparse.Namespace) -> int:
    from hexainst.annotation.session import Session

    session = Session.load(args.data_dir)
    session.require_server(args.data_dir)
    report, tri = session.sync_senior()
    print(
        f"{len(tri.juniors)} double-annotated, {len(tri.agreed)} agreed, {len(tri.disagreements)} disagreements, "
        f"{len(tri.revision_conflicts)} revision conflicts, {len(tri.awaiting_juniors)} awaiting juniors"
    )
    print(f"senior project: {report.n_present_before} tasks already there, {report.n_imported} added")
    if tri.extra_ignored:
        print(f"ignored {sum(tri.extra_ignored.values())} extra junior annotations on {len(tri.extra_ignored)} tasks")
    return 0


def _format_agreement(result) -> str:
    ag = result.agreement

    def k(value: float | None) -> str:
        return "undefined" if value is None else f"{value:.3f}"

    lines = [
        f"tasks: {ag['n_tasks']}, double-annotated: {ag['n_double_annotated']}, "
        f"awaiting juniors: {len(result.awaiting_juniors)}",
        f"Cohen's kappa, decision: {k(ag['kappa_decision'])}; category correct: {k(ag['kappa_category_correct'])}",
    ]
    for error, value in ag["error_type_agreement"].items():
        pct = "n/a" if value["percent"] is None else f"{value['percent']:.1f}%"
        lines.append(f"  {error:<15} kappa {k(value['kappa'])}, agreement {pct}")
    lines.append(
        f"disagreements: {ag['n_disagreements']}, revision conflicts: {len(result.revision_conflicts)}, "
        f"decided by the senior: {ag['n_senior_decided']}, awaiting the senior: {len(result.awaiting_senior)}"
    )
    lines.append(f"extra annotations ignored: {ag['extra_annotations_ignored']}")
    for iid, why in sorted(result.unusable_senior.items()):
        lines.append(f"  {iid}: {why}")
    return "\n".join(lines)


def _cmd_agreement(args: argparse.Namespace) -> int:
    from hexainst.annotation.session import Session

    session = Session.load(args.data_dir)
    session.require_server(args.data_dir)
    _, result = session.adjudicate()
    print(json.dumps(result.agreement, indent=1) if args.json else _format_agreement(result))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from hexainst.kernel import validation_file
    from hexainst.annotation.session import Session

    session = Session.load(args.data_dir)
    session.require_server(args.data_dir)
    doc, result = session.adjudicate(save_exports=args.save_exports)
    validation_file.write(args.out, doc)
    counts = {s: sum(1 for o in doc["outcomes"] if o["status"] == s) for s in ("accepted", "revised", "rejected")}
    print(_format_agreement(result))
    print(f"wrote {args.out}: {len(doc['outcomes'])} outcomes ({counts['accepted']} accepted, "
          f"{counts['revised']} revised, {counts['rejected']} rejected)")  # fmt: skip
    return 0
