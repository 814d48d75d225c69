"""Full JSON exports of the projects, and the validation file built from them.

Label Studio's community edition drops annotation details from the SDK's ``as_json`` shortcut,
so exports go through ``projects.exports.create`` (a snapshot of every task, annotated or not)
and ``projects.exports.download``. :func:`parse_export` checks the export's shape and names the
task and annotation at fault; :func:`build_validation` turns the juniors' and the senior's
annotations into the document of ``validation.v3.schema.json`` (one round) (checked before anything is written).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx
from label_studio_sdk.core.api_error import ApiError

from hexainst.annotation.config import DEFAULTS
from hexainst.annotation.outcomes import Adjudication, Annotation, adjudicate
from hexainst.annotation.sync import ID_KEY, describe_error
from hexainst.annotation.verdicts import ExportError, result_to_verdict
from hexainst.kernel.validation_file import FORMAT, FORMAT_VERSION, check

ID_PATTERN = re.compile(r"^(classification|code|generalqa|generation|math|summarization)-(nat|syn)-[0-9a-f]{12}$")


def fetch_export(client, project_id: int, timeout: float = DEFAULTS.export_timeout_s, where: str | None = None) -> list[dict[str, Any]]:
    """Snapshot and download a project's full JSON export (every task, every annotation).

    ``where`` names the project in error messages (default: ``project <id>``).
    """
    name = where or f"project {project_id}"
    try:
        snapshot = client.projects.exports.create(
            project_id,
            title=f"hexainst-validation project {project_id}",
            task_filter_options={"only_with_annotations": False},
        )
        deadline = time.monotonic() + timeout
        while snapshot.status != "completed":
            if snapshot.status == "failed":
                raise ExportError(f"{name}: export {snapshot.id} failed on the server")
            if time.monotonic() > deadline:
                raise ExportError(f"{name}: export {snapshot.id} not ready after {timeout:.0f} s")
            time.sleep(1.0)
            snapshot = client.projects.exports.get(project_id, snapshot.id)
        raw = b"".join(client.projects.exports.download(project_id, snapshot.id, export_type="JSON"))
    except (httpx.TransportError, ApiError) as exc:
        raise ExportError(f"{name}: export failed: {describe_error(exc)}") from exc
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ExportError(f"{name}: the export is not JSON: {exc.msg} at char {exc.pos}") from exc


def _user_name(completed_by: Any, users: Mapping[int, str], where: str) -> str:
    if isinstance(completed_by, Mapping):
        if isinstance(completed_by.get("id"), int) and completed_by["id"] in users:
            return users[completed_by["id"]]
        if isinstance(completed_by.get("email"), str):
            return completed_by["email"]
    elif isinstance(completed_by, int) and not isinstance(completed_by, bool):
        return users.get(completed_by, f"user-{completed_by}")
    raise ExportError(f"{where}: 'completed_by' is {completed_by!r}, expected a user id")


def parse_export(
    export: Any, users: Mapping[int, str], project: str, identities: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[dict[str, list[Annotation]], dict[str, dict[str, Any]]]:
    """Check a Label Studio JSON export and read it by instruction id.

    Args:
        export: the decoded export (a list of task objects).
        users: Label Studio user id -> the name verdicts record.
        project: names the export in error messages (e.g. ``"junior project export"``).
        identities: annotator name -> identity (person or model) that the verdicts record; an
            account not in it (e.g. the toolkit's admin) gets identity ``unrecorded``.

    Returns:
        ``(annotations, data)``: ``annotations[id]`` lists every annotation of the instruction
        (tasks that repeat an id are merged), ``data[id]`` is its task data.
    """
    if not isinstance(export, list):
        raise ExportError(f"{project}: expected a list of tasks, got {type(export).__name__}")
    annotations: dict[str, list[Annotation]] = {}
    data: dict[str, dict[str, Any]] = {}
    for t, task in enumerate(export):
        where = f"{project} task {t}"
        if not isinstance(task, Mapping) or not isinstance(task.get("data"), Mapping):
            raise ExportError(f"{where}: not a task object with a 'data' object")
        iid = task["data"].get(ID_KEY)
        if not isinstance(iid, str) or not ID_PATTERN.match(iid):
            raise ExportError(f"{where} (Label Studio id {task.get('id')}): data.{ID_KEY} is {iid!r}, not an instruction id")
        where = f"{project} instruction {iid}"
        anns = task.get("annotations", [])
        if not isinstance(anns, list):
            raise ExportError(f"{where}: 'annotations' is {type(anns).__name__}, expected a list")
        data.setdefault(iid, dict(task["data"]))
        bucket = annotations.setdefault(iid, [])
        for ann in anns:
            if not isinstance(ann, Mapping) or not isinstance(ann.get("id"), int):
                raise ExportError(f"{where}: an annotation without an integer 'id'")
            here = f"{where} annotation {ann['id']}"
            created = ann.get("created_at")
            if not isinstance(created, str):
                raise ExportError(f"{here}: 'created_at' is {created!r}, expected a timestamp")
            annotator = _user_name(ann.get("completed_by"), users, here)
            cancelled = ann.get("was_cancelled", False)
            if not isinstance(cancelled, bool):
                raise ExportError(f"{here}: 'was_cancelled' is {cancelled!r}, expected true/false")
            identity = (identities or {}).get(annotator)
            verdict = None if cancelled else result_to_verdict(ann.get("result"), annotator, here, identity)
            bucket.append(Annotation(ann["id"], annotator, (created, ann["id"]), cancelled, verdict))
    return annotations, data


def build_validation(
    junior_annotations: Mapping[str, list[Annotation]],
    senior_annotations: Mapping[str, list[Annotation]],
    created_from: Mapping[str, str],
    junior_accounts: set[str] | None = None,
    senior_accounts: set[str] | None = None,
    annotators: list[Mapping[str, Any]] | None = None,
    round_number: int = 1,
) -> tuple[dict[str, Any], Adjudication]:
    """The validation document (checked against its schema) and the adjudication behind it.

    ``junior_annotations`` / ``senior_annotations``: instruction id -> annotations, as
    :func:`parse_export` reads them (the juniors' merged across their instances).
    ``annotators``: the round's annotators, ``{"annotator", "role", "identity"}`` each.
    The document holds one round, ``round_number`` (:func:`hexainst.kernel.validation_file.merge`
    puts it after the rounds of an earlier file); the ids still waiting for the senior are listed.
    """
    unknown = sorted(set(senior_annotations) - set(junior_annotations))
    if unknown:
        raise ExportError(f"senior project export: instruction {unknown[0]} is not in the junior projects ({len(unknown)} such)")
    result = adjudicate(junior_annotations, senior_annotations, junior_accounts, senior_accounts)
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "rounds": [{
            "round": round_number,
            "created_from": {k: created_from[k] for k in ("label_studio_version", "junior_project", "senior_project")},
            "annotators": [dict(a) for a in annotators or []],
            "agreement": result.agreement,
            "n_outcomes": len(result.outcomes),
            "awaiting_senior": sorted(result.awaiting_senior),
        }],
        "outcomes": [{"id": o["id"], "round": round_number, **{k: v for k, v in o.items() if k != "id"}}
                     for o in result.outcomes],
    }
    check(doc, "validation document")
    return doc, result
