"""``hexainst annotate ...``: validation in Label Studio, one instance per annotator (juniors blind).

    hexainst annotate up --data-dir D [--release R | --pools P ... | --rows F ...]  # all servers + setup + sync
    hexainst annotate serve --data-dir D [--detach]                    # the servers only
    hexainst annotate stop --data-dir D                                # stop detached servers
    hexainst annotate setup --data-dir D                               # accounts + projects
    hexainst annotate sync --data-dir D (--release R | --pools P ... | --rows FILE ...)   # also a top-up
    hexainst annotate import --data-dir D --as junior1 FILE [--annotator-kind model --model M --prompt P --how TEXT]
    hexainst annotate judge --data-dir D --as junior1 --base-url URL --model NAME  # a model answers the screen
    hexainst annotate senior --data-dir D                              # disagreements -> the senior
    hexainst annotate agreement --data-dir D [--json]
    hexainst annotate export --data-dir D --out validation.json [--previous earlier-validation.json]

Every command but ``serve``/``up`` talks to servers that are already running (their URLs are in
the round's state file). Commands are idempotent: rerun one after an interruption. Each handler
builds an :class:`~hexainst.annotation.config.AnnotationConfig` from the options, calls the step in
:mod:`hexainst.annotation.round` (``import`` and ``judge``: the importer and the judge) and prints.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

from hexainst.annotation.config import AnnotationConfig, Candidates
from hexainst.cli.options import add_progress, add_settings, config_from, flag_for
from hexainst.kernel import environment, identity
from hexainst.kernel.errors import UserError


def _friendly(handler):
    """Turn connection and API failures into one-line user errors that say what to do."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        import httpx  # deferred: httpx (~0.1 s); `hexainst --help` imports this module
        from label_studio_sdk.core.api_error import ApiError  # deferred: keeps the SDK out of `hexainst --help`

        from hexainst.annotation.sync import describe_error  # deferred: loads label_studio_sdk and httpx

        try:
            return handler(args)
        except httpx.TransportError as exc:
            raise UserError(
                f"lost the connection to a Label Studio server of the round in {args.data_dir} ({describe_error(exc)}); "
                f"is it running? start it with 'hexainst annotate serve --data-dir {args.data_dir} --detach'"
            ) from None
        except ApiError as exc:
            raise UserError(f"Label Studio answered {describe_error(exc)}") from None

    return run


def register(subparsers: argparse._SubParsersAction) -> None:
    annotate = subparsers.add_parser(
        "annotate",
        help="validate candidates in Label Studio: two blind juniors, a senior, agreement, validation.json",
        description=(
            "Validation of HexaInst candidates (paper, Appendix B) in Label Studio (server from .ls-venv "
            "or $HEXAINST_LABEL_STUDIO). Each annotator gets a Label Studio instance of their own (own "
            "server, database and login), so no junior can see another's verdict; the toolkit sends the "
            "candidates to every junior, the disagreements to the senior, and reads the verdicts back. "
            "'export' writes validation.json for 'hexainst build release'. Guidelines: docs/annotation-guidelines.md."
        ),
    )
    steps = annotate.add_subparsers(dest="annotate_command", metavar="STEP", required=True)
    for add in (_add_up, _add_serve, _add_stop, _add_setup, _add_sync, _add_import, _add_judge, _add_senior,
                _add_agreement, _add_export):
        add(steps)


# ---- the parser, one function per step -----------------------------------------------------


def _step(steps: argparse._SubParsersAction, name: str, help_text: str, handler,
          description: str | None = None) -> argparse.ArgumentParser:
    """The step's parser, with ``--data-dir`` and its handler (connection failures made one line)."""
    p = steps.add_parser(name, help=help_text, description=description or help_text)
    add_settings(p, AnnotationConfig, ["data_dir"])
    p.set_defaults(handler=_friendly(handler))
    return p


def _add_candidates(p: argparse.ArgumentParser) -> None:
    add_settings(p, Candidates, ["release", "pools", "rows"], spaced=["pools", "rows"])
    add_settings(p, AnnotationConfig, ["batch_size"])
    add_settings(p.add_mutually_exclusive_group(), AnnotationConfig, ["sample", "sample_per_cell"])
    add_settings(p, AnnotationConfig, ["seed"])


def _add_identity(p: argparse.ArgumentParser, model_only: bool = False) -> None:
    p.add_argument("--as", dest="annotator", required=True, metavar="NAME",
                   help="the annotator's slot: junior1, junior2, ... or senior")  # fmt: skip
    if not model_only:
        add_settings(p, AnnotationConfig, ["annotator_kind"])
        p.add_argument("--model", metavar="NAME", help="with --annotator-kind model: the model's name")
        p.add_argument("--prompt", type=Path, metavar="FILE",
                       help="with --annotator-kind model: the prompt it was given (its name and sha256 are recorded)")  # fmt: skip
    p.add_argument("--how", metavar="TEXT",
                   help="free text recorded with every verdict: how they were made, what the annotator saw "
                        "(e.g. 'independent agent session, saw only its own tasks and the guidelines')")  # fmt: skip


def _add_up(steps: argparse._SubParsersAction) -> None:
    up = _step(
        steps, "up", "start every annotator's Label Studio, set up accounts and projects, import candidates, print logins",
        _cmd_up,
        "Start one Label Studio per annotator on 127.0.0.1 (the first start of a round creates the database "
        "once, about two minutes), set up each annotator's account and project, import the candidates if "
        "given, print each annotator's URL and login, and keep serving until Ctrl-C (or --detach).",
    )
    add_settings(up, AnnotationConfig, ["juniors", "port", "detach"])
    _add_candidates(up)
    add_progress(up)


def _add_serve(steps: argparse._SubParsersAction) -> None:
    serve = _step(steps, "serve", "start every annotator's Label Studio (foreground until Ctrl-C, or --detach)",
                  _cmd_serve)
    add_settings(serve, AnnotationConfig, ["port", "detach"])
    add_progress(serve)


def _add_stop(steps: argparse._SubParsersAction) -> None:
    _step(steps, "stop", "stop the servers started with --detach (by the PID files in the round's folder)", _cmd_stop)


def _add_setup(steps: argparse._SubParsersAction) -> None:
    _step(steps, "setup", "create (or log in) every annotator's account and project", _cmd_setup)


def _add_sync(steps: argparse._SubParsersAction) -> None:
    sync = _step(
        steps, "sync", "send candidates to every junior: only new ids are imported (also a top-up batch)", _cmd_sync,
        "Import the candidates whose ids a junior's project lacks, into every junior's project, and report "
        "how many were new. Tasks already there (annotated or not) are never changed, so a new batch of "
        "candidates (a top-up of the reserve) can be sent at any time.",
    )
    _add_candidates(sync)
    add_progress(sync)


def _add_import(steps: argparse._SubParsersAction) -> None:
    imp = _step(
        steps, "import", "land verdicts made elsewhere (one JSONL file per annotator) in that annotator's own project",
        _cmd_import,
        "Create each verdict of FILE as an annotation by the annotator of --as, with that annotator's own "
        "account, in their own Label Studio instance: stored exactly as if they had answered the screen, so "
        "agreement, 'senior' and 'export' read it unchanged. FILE is JSON Lines, one verdict per line: "
        '{"id": ..., "decision": "accept|revise|reject", "category_correct": true|false, "errors": [...], '
        '"corrected_instruction": "..." or null} (errors from grammar, redundancy, wrong_category, unclear, '
        "unsound; an optional \"annotator\" must equal --as). Idempotent: tasks that already hold this "
        "annotator's verdict are skipped and counted. The slot records who made the verdicts: a person "
        "(default) or a model (--annotator-kind model --model NAME --prompt FILE [--how TEXT]); a slot that "
        "already holds verdicts keeps its annotator, and the same model and prompt (or the same file) cannot "
        "fill two junior slots.",
    )
    imp.add_argument("file", type=Path, metavar="FILE", help="the annotator's verdicts, JSON Lines")
    _add_identity(imp)
    add_settings(imp, AnnotationConfig, ["workers"])
    add_progress(imp)


def _add_judge(steps: argparse._SubParsersAction) -> None:
    judge = _step(
        steps, "judge", "a model (any OpenAI-compatible endpoint) answers one annotator's unannotated tasks",
        _cmd_judge,
        "Ask a model, through any OpenAI-compatible endpoint, the screen's four questions for every task of "
        "--as's project that has no verdict of theirs yet. System message: the annotation guidelines "
        "(annotation/guidelines.md) and the answer format; user message: the task's claimed category and "
        "instruction only (never its origin, never another annotator's verdict). Answers are parsed strictly "
        "(one JSON object with category_correct, errors, corrected_instruction, decision); a malformed answer "
        "is asked again, at most --attempts answers per task, then the task is left unannotated and named (exit "
        "status 1; rerun to try those again). Verdicts land as 'import' lands them, under identity kind model: "
        "--model and the sha256 of the whole fixed prompt. For a careful round use the strongest model you "
        "can run: a small model cannot tell a false premise.",
    )
    _add_identity(judge, model_only=True)
    judge.add_argument("--base-url", required=True, metavar="URL", help="the endpoint, e.g. http://127.0.0.1:8000/v1")
    judge.add_argument("--model", required=True, metavar="NAME", help="the model name the endpoint serves")
    add_settings(judge, AnnotationConfig, ["api_key_env", "attempts", "max_tokens", "limit", "judge_workers",
                                           "timeout"], flags={"judge_workers": "--workers"})
    add_progress(judge)


def _add_senior(steps: argparse._SubParsersAction) -> None:
    add_progress(_step(steps, "senior", "send the tasks the juniors disagree on to the senior (idempotent)", _cmd_senior))


def _add_agreement(steps: argparse._SubParsersAction) -> None:
    agreement = _step(steps, "agreement", "print junior agreement (Cohen's kappa) and progress", _cmd_agreement)
    agreement.add_argument("--json", action="store_true", help="print the agreement block as JSON")


def _add_export(steps: argparse._SubParsersAction) -> None:
    export = _step(steps, "export", "read every verdict back and write the validation file", _cmd_export)
    add_settings(export, AnnotationConfig, ["out", "save_exports", "previous"], required=["out"])


# ---- handlers: parse, call the annotation stage, print -----------------------------------
# deferred (every handler): the annotation stage loads label_studio_sdk and httpx (0.3 s), which
# 'hexainst --help' and the other commands do without.


def _config(args: argparse.Namespace, **values: Any) -> AnnotationConfig:
    return config_from(args, AnnotationConfig, **values)




def _print_live(session, servers) -> None:
    """Which URL serves which annotator, and whether this command started it (the same URL as before)."""
    started = {server.data_dir.name for server in servers}
    print("Live:")
    for inst in session.instances:
        how = "started" if inst.name in started else "already running"
        print(f"  {inst.name:<9} {inst.url}  ({how})")
    sys.stdout.flush()


def _print_logins(session) -> None:
    print("Each annotator works in a Label Studio of their own (open the URL, log in):")
    for inst in session.instances:
        project = session.projects.get(inst.name)
        where = f"{inst.url}/projects/{project}/data" if project is not None else inst.url
        print(f"  {inst.role:<7} {inst.name:<9} {where}  login: {inst.account.email}  password: {inst.account.password}")
    print(f"The toolkit's own admin logins are in {session.data_dir / 'hexainst-annotation.json'} (mode 0600).")
    sys.stdout.flush()


def _serve(result, detach: bool) -> int:
    """Print the logins and the live URLs, then serve until Ctrl-C (1 if a server exited) or leave them running."""
    from hexainst.annotation.round import keep_serving  # deferred: loads label_studio_sdk and httpx

    _print_logins(result.session)
    _print_live(result.session, result.servers)
    exited = keep_serving(result.servers, detach)
    if detach or not result.servers:
        print(f"servers left running; stop them with: hexainst annotate stop --data-dir {result.session.data_dir}")
    return 1 if exited is not None else 0


def _cmd_up(args: argparse.Namespace) -> int:
    from hexainst.annotation.round import up  # deferred: loads label_studio_sdk and httpx

    result = up(_config(args, candidates=config_from(args, Candidates)))
    _print_sync(result.synced)
    return _serve(result, args.detach)


def _cmd_serve(args: argparse.Namespace) -> int:
    from hexainst.annotation.round import serve  # deferred: loads label_studio_sdk and httpx

    return _serve(serve(_config(args)), args.detach)


def _cmd_stop(args: argparse.Namespace) -> int:
    from hexainst.annotation.round import stop  # deferred: loads label_studio_sdk and httpx

    stopped = stop(_config(args))
    print(f"stopped: {', '.join(stopped)}" if stopped else f"no running server recorded in {args.data_dir}")
    return 0


def _cmd_setup(args: argparse.Namespace) -> int:
    from hexainst.annotation.round import setup  # deferred: loads label_studio_sdk and httpx

    _print_logins(setup(_config(args)))
    return 0


def _print_sync(reports) -> None:
    for name, report in reports.items():
        print(
            f"{name}: {report.n_wanted} candidates, {report.n_present_before} already in the project, "
            f"{report.n_imported} new (imported)"
        )
        if report.duplicates_removed:
            print(f"{name}: removed {report.duplicates_removed} duplicate tasks without annotations")
        for iid, ids in report.duplicates_kept.items():
            print(f"{name}: warning: {iid} is in several annotated tasks {ids}; their annotations are merged at export")
        if report.changed_text:
            print(f"{name}: warning: {len(report.changed_text)} candidates changed text since import "
                  f"(first: {report.changed_text[0]}); their tasks keep the old text")  # fmt: skip
        if report.extra_in_project:
            print(f"{name}: note: {len(report.extra_in_project)} tasks in the project are not among these candidates")


def _cmd_sync(args: argparse.Namespace) -> int:
    from hexainst.annotation.round import sync  # deferred: loads label_studio_sdk and httpx

    candidates = config_from(args, Candidates)
    if not candidates.given:  # 'up' may start a round without candidates; 'sync' has nothing to send
        raise UserError("name the candidates: --release DIR, --pools DIR ... or --rows FILE ...")
    _print_sync(sync(_config(args, candidates=candidates)))
    return 0


def _identity_of(args: argparse.Namespace) -> dict[str, Any]:
    if args.annotator_kind == "person":
        if args.model or args.prompt:
            raise UserError("--model and --prompt describe a model annotator: add --annotator-kind model")
        return identity.person(args.how)
    if not args.model or not args.prompt:
        raise UserError("--annotator-kind model needs --model NAME and --prompt FILE (the prompt it was given)")
    return identity.model(args.model, identity.prompt_ref(args.prompt), args.how)


def _cmd_import(args: argparse.Namespace) -> int:
    from hexainst.annotation.importer import (  # deferred: loads label_studio_sdk and httpx
        land_verdicts,
        read_verdict_file,
    )
    from hexainst.annotation.session import Session  # deferred: loads label_studio_sdk and httpx

    session = Session.load(args.data_dir)
    session.instance(args.annotator)  # an unknown slot is named before the file is read
    who = _identity_of(args)
    verdicts, sha = read_verdict_file(args.file, args.annotator)
    session.require_servers()
    report = land_verdicts(session, args.annotator, verdicts, who, file_sha256=sha, workers=args.workers,
                           progress=args.progress)
    print(f"{report.annotator}: {report.n_verdicts} verdicts in {args.file}: {report.n_created} created "
          f"in {report.seconds:.1f} s, {len(report.already_annotated)} already there (skipped)")  # fmt: skip
    if report.already_annotated:
        print(f"{report.annotator}: skipped (already annotated): {', '.join(report.already_annotated[:5])}"
              + (" ..." if len(report.already_annotated) > 5 else ""))  # fmt: skip
    return 0


def _cmd_judge(args: argparse.Namespace) -> int:
    from hexainst.annotation.judge import (  # deferred: loads label_studio_sdk and httpx
        DEFAULT_HOW,
        RAISE_MAX_TOKENS,
        judge_slot,
        prompt_text,
    )
    from hexainst.annotation.session import Session  # deferred: loads label_studio_sdk and httpx

    session = Session.load(args.data_dir)
    session.instance(args.annotator)
    who = identity.model(args.model, identity.text_ref("hexainst-judge-prompt", prompt_text()), args.how or DEFAULT_HOW)
    session.require_servers()
    report = judge_slot(
        session, args.annotator, who, limit=args.limit, base_url=args.base_url, model=args.model,
        api_key=environment.named(args.api_key_env) or "not-needed", attempts=args.attempts,
        max_tokens=args.max_tokens, workers=args.judge_workers, timeout=args.timeout, progress=args.progress,
    )  # fmt: skip
    print(f"{report.annotator} ({identity.describe(who)}): {report.n_tasks} tasks asked, {report.n_landed} verdicts "
          f"landed, {len(report.failed)} left unannotated, {report.requests} requests")  # fmt: skip
    for iid, why in sorted(report.failed.items()):
        why = why.replace(RAISE_MAX_TOKENS, f"raise {flag_for(args, 'max_tokens')}")  # the setting, as typed
        print(f"  unannotated {iid}: {why}")
    return 1 if report.failed else 0


def _cmd_senior(args: argparse.Namespace) -> int:
    from hexainst.annotation.round import senior  # deferred: loads label_studio_sdk and httpx

    report, tri = senior(_config(args))
    print(
        f"{len(tri.juniors)} double-annotated, {len(tri.agreed)} agreed, {len(tri.disagreements)} disagreements, "
        f"{len(tri.revision_conflicts)} revision conflicts, {len(tri.awaiting_juniors)} awaiting juniors"
    )
    print(f"senior's project: {report.n_present_before} tasks already there, {report.n_imported} added")
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
    from hexainst.annotation.round import agreement  # deferred: loads label_studio_sdk and httpx

    result = agreement(_config(args))
    print(json.dumps(result.agreement, indent=1) if args.json else _format_agreement(result))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from hexainst.annotation.round import export  # deferred: loads label_studio_sdk and httpx

    result = export(_config(args))
    counts = result.counts()
    print(_format_agreement(result.adjudication))
    if result.adjudication.awaiting_senior:
        print("awaiting the senior: " + ", ".join(sorted(result.adjudication.awaiting_senior)))
    print(f"round {result.round}: {len(result.outcomes)} outcomes ({counts['accepted']} accepted, "
          f"{counts['revised']} revised, {counts['rejected']} rejected)")  # fmt: skip
    if result.previous is not None:
        print(f"kept from {args.previous}: rounds {', '.join(str(r['round']) for r in result.previous['rounds'])}, "
              f"{len(result.previous['outcomes'])} outcomes")
    print(f"wrote {result.out}: {len(result.document['rounds'])} round(s), {len(result.document['outcomes'])} outcomes")
    return 0
