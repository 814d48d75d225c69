"""Verdicts made elsewhere, landed as annotations in one annotator's own Label Studio instance.

``hexainst annotate import --as junior1 FILE``: one file per annotator, JSON Lines, one verdict per
line in the validation verdict format::

    {"id": "math-syn-0123456789ab", "decision": "reject", "category_correct": true,
     "errors": ["unsound"], "corrected_instruction": null}

(an optional ``"annotator"`` key must name the slot imported into). Each verdict becomes an
annotation on that instruction's task in that annotator's project, created with that annotator's
own API token, so it is stored exactly as if they had clicked it: agreement, the senior project and
export read it unchanged. ``hexainst annotate judge`` lands its verdicts the same way.

Idempotent: a task that already holds an annotation by that annotator (a skip too) is left alone
and counted in the report; rerunning an import after an interruption creates only what is missing.
Annotations are created concurrently (``workers`` requests in flight; Label Studio's community
server has no endpoint that creates different annotations in one request); no request is retried
by the SDK, since a retry after a lost response would create the annotation twice (the next run
sees it and skips it instead).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from label_studio_sdk.core.api_error import ApiError
from tqdm import tqdm

from hexainst.annotation import labeling_config as lc
from hexainst.annotation.sync import describe_error, index_project
from hexainst.kernel.errors import UserError
from hexainst.kernel.identity import describe as describe_identity
from hexainst.kernel.identity import same_annotator
from hexainst.kernel.vocab import DECISIONS, ERROR_TYPES

#: The keys of one line of a verdict file (``annotator`` is optional).
VERDICT_KEYS: tuple[str, ...] = ("id", "decision", "category_correct", "errors", "corrected_instruction")
OPTIONAL_KEYS: tuple[str, ...] = ("annotator",)
#: Concurrent annotation requests (the server commits each on its own).
DEFAULT_WORKERS = 4


class VerdictImportError(UserError):
    """A verdict file is malformed, names an id its instance lacks, or targets the wrong slot."""


def parse_verdict(obj: Any, where: str) -> dict[str, Any]:
    """One line's object as ``{"id", "decision", "category_correct", "errors", "corrected_instruction"}``.

    Strict: every key present, no other key, values from the vocabularies; errors come back in
    vocabulary order and the corrected text stripped (``None`` when empty). ``where`` is ``FILE line N``.
    """
    if not isinstance(obj, Mapping):
        raise VerdictImportError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in VERDICT_KEYS if k not in obj]
    if missing:
        raise VerdictImportError(f"{where}: missing {', '.join(missing)} (a verdict has {', '.join(VERDICT_KEYS)})")
    extra = sorted(set(obj) - set(VERDICT_KEYS) - set(OPTIONAL_KEYS))
    if extra:
        raise VerdictImportError(f"{where}: unknown key {extra[0]!r} (a verdict has {', '.join(VERDICT_KEYS)})")
    iid = obj["id"]
    if not isinstance(iid, str) or not iid:
        raise VerdictImportError(f"{where}: id must be an instruction id, got {iid!r}")
    if obj["decision"] not in DECISIONS:
        raise VerdictImportError(f"{where} (id={iid}): decision {obj['decision']!r}; expected one of {', '.join(DECISIONS)}")
    if not isinstance(obj["category_correct"], bool):
        raise VerdictImportError(f"{where} (id={iid}): category_correct must be true or false, got {obj['category_correct']!r}")
    errors = obj["errors"]
    if not isinstance(errors, list) or any(e not in ERROR_TYPES for e in errors):
        bad = next((e for e in errors if e not in ERROR_TYPES), errors) if isinstance(errors, list) else errors
        raise VerdictImportError(f"{where} (id={iid}): errors must be a list of {', '.join(ERROR_TYPES)}; got {bad!r}")
    if len(set(errors)) != len(errors):
        raise VerdictImportError(f"{where} (id={iid}): errors repeats an error type: {errors!r}")
    corrected = obj["corrected_instruction"]
    if corrected is not None and not isinstance(corrected, str):
        raise VerdictImportError(f"{where} (id={iid}): corrected_instruction must be a string or null, got {corrected!r}")
    corrected = (corrected or "").strip() or None
    if obj["decision"] == "revise" and corrected is None:
        raise VerdictImportError(f"{where} (id={iid}): decision revise without a corrected_instruction")
    return {
        "id": iid,
        "decision": obj["decision"],
        "category_correct": obj["category_correct"],
        "errors": [e for e in ERROR_TYPES if e in errors],
        "corrected_instruction": corrected,
    }


def read_verdict_file(path: str | Path, slot: str) -> tuple[list[dict[str, Any]], str]:
    """Every verdict of a JSONL file for ``slot`` and the file's sha256; one clear error naming the line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise VerdictImportError(f"{path}: cannot read the verdict file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VerdictImportError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    verdicts: list[dict[str, Any]] = []
    first_line: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise VerdictImportError(f"{where}: not valid JSON: {exc.msg} at column {exc.colno}") from None
        verdict = parse_verdict(obj, where)
        named = obj.get("annotator")
        if named is not None and named != slot:
            raise VerdictImportError(
                f"{where} (id={verdict['id']}): the verdict is {named!r}'s; it cannot be imported as {slot!r} "
                "(each annotator imports into their own slot only)"
            )
        if verdict["id"] in first_line:
            raise VerdictImportError(f"{where}: id {verdict['id']} repeats line {first_line[verdict['id']]}")
        first_line[verdict["id"]] = n
        verdicts.append(verdict)
    if not verdicts:
        raise VerdictImportError(f"{path}: no verdict in the file")
    return verdicts, hashlib.sha256(raw).hexdigest()


@dataclass
class ImportReport:
    """What one import did in one annotator's project."""

    annotator: str
    n_verdicts: int
    n_created: int = 0
    already_annotated: list[str] = field(default_factory=list)  # ids that already had this annotator's verdict
    seconds: float = 0.0


def annotated_by(session, inst, index=None) -> set[str]:
    """Instruction ids whose task in ``inst``'s project holds an annotation by its annotator (a skip too).

    Read from the task listing (each task's annotators), not from an export: an export of a large
    project is slow and writes to the server's database.
    """
    index = index or index_project(session.client(inst), session.project(inst), f"{inst.name}'s project")
    uids = {uid for uid, name in session.users(inst).items() if name == inst.name}
    return {iid for iid, users in index.annotators.items() if users & uids}


def check_slot(session, inst, identity: Mapping[str, Any], file_sha256: str | None) -> None:
    """Refuse what would make one annotator fill two slots, before anything is written.

    A model identity (same model, same prompt) already recorded for another junior, or a verdict file
    already imported into another slot, is refused.
    """
    for other in session.instances:
        if other.name == inst.name:
            continue
        if identity["kind"] == "model" and other.role == inst.role == "junior" and same_annotator(other.identity, identity):
            raise VerdictImportError(
                f"{describe_identity(identity)} is already {other.name}; one annotator cannot fill two junior slots "
                "(use another model or another prompt for the other junior)"
            )
        if file_sha256 is not None and file_sha256 in other.imported:
            raise VerdictImportError(
                f"this verdict file (sha256 {file_sha256[:12]}...) was already imported as {other.name}; "
                f"{inst.name}'s verdicts must be {inst.name}'s own"
            )


def record_identity(inst, identity: Mapping[str, Any], has_verdicts: bool) -> None:
    """Set the slot's identity; a slot that holds verdicts keeps its annotator (only ``how`` may change)."""
    if not same_annotator(inst.identity, identity) and has_verdicts:
        raise VerdictImportError(
            f"{inst.name} already holds verdicts by {describe_identity(inst.identity)}; they cannot be "
            f"attributed to {describe_identity(identity)} (one slot, one annotator: start a new round)"
        )
    inst.identity = dict(identity)


def land_verdicts(
    session,
    name: str,
    verdicts: Sequence[Mapping[str, Any]],
    identity: Mapping[str, Any],
    *,
    file_sha256: str | None = None,
    workers: int = DEFAULT_WORKERS,
    progress: bool = True,
    on_created: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Create ``verdicts`` as annotations by ``name`` in ``name``'s own project (see the module doc).

    Every id must be a task of that project (checked first: nothing is created otherwise). The
    slot's identity is recorded in the round's state (saved) before the first annotation is made.
    """
    inst = session.instance(name)
    project = session.project(inst)
    admin = session.client(inst)
    where = f"{inst.name}'s project"
    check_slot(session, inst, identity, file_sha256)
    index = index_project(admin, project, where)
    unknown = [v["id"] for v in verdicts if v["id"] not in index.tasks]
    if unknown:
        what = "the senior's project holds only the tasks the juniors disagree on" if inst.role == "senior" else (
            "send the candidates first with 'hexainst annotate sync'")
        raise VerdictImportError(
            f"id {unknown[0]} is not a task of {where} ({len(unknown)} such ids; {what}); nothing was imported"
        )
    done = annotated_by(session, inst, index)
    record_identity(inst, identity, has_verdicts=bool(done))
    if file_sha256 is not None and file_sha256 not in inst.imported:
        inst.imported.append(file_sha256)
    session.save()
    todo = [v for v in verdicts if v["id"] not in done]
    report = ImportReport(inst.name, len(verdicts), already_annotated=sorted(v["id"] for v in verdicts if v["id"] in done))
    person = session.client(inst, as_person=True)  # the annotation is the annotator's own

    def create(verdict: Mapping[str, Any]) -> None:
        task_id = index.tasks[verdict["id"]][0]
        person.annotations.create(
            id=task_id, result=lc.verdict_to_result(verdict), request_options={"max_retries": 0}
        )

    start = time.monotonic()
    with tqdm(total=len(todo), desc=f"import into {where}", unit="verdict", disable=not progress or not todo) as bar, \
            ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # fmt: skip
        futures = [(v["id"], pool.submit(create, v)) for v in todo]
        failure: tuple[str, Exception] | None = None
        for iid, future in futures:
            try:
                future.result()
            except (httpx.TransportError, ApiError) as exc:
                failure = failure or (iid, exc)
                continue
            report.n_created += 1
            bar.update(1)
            if on_created is not None:
                on_created(report.n_created, len(todo))
    report.seconds = time.monotonic() - start
    if failure is not None:
        iid, exc = failure
        raise VerdictImportError(
            f"{where}: import stopped: {report.n_created} of {len(todo)} verdicts created, the first failure at {iid}: "
            f"{describe_error(exc)}; rerun the same command to create the rest (it skips what is already there)"
        )
    return report
