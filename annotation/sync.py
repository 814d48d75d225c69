"""Idempotent import of candidates into a Label Studio project, keyed on the instruction id.

Label Studio's SQLite database reuses task ids, so nothing here trusts them across runs: the
project's current tasks are listed and indexed by ``data.hexainst_id``, and only the ids
that are missing are imported, in batches. A batch is one request, committed by the server
as a whole or not at all; if the server goes away mid-import, the error says how far it got
and rerunning the same command imports the rest (no duplicate, none lost).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from label_studio_sdk.core.api_error import ApiError
from tqdm import tqdm

import hexainst
from hexainst.kernel.errors import UserError
from hexainst.kernel.features import decode_rows
from hexainst.kernel.records import validate_rows

ID_KEY = "hexainst_id"


class SyncError(UserError):
    """An import could not complete (the message says what was done and how to resume)."""


def task_data(row: Mapping[str, Any]) -> dict[str, Any]:
    """The Label Studio task data of one candidate row for a junior: no origin (juniors are blind to it)."""
    return {ID_KEY: row["id"], "instruction": row["instruction"], "category": row["category"]}


def origin_of(iid: str) -> str:
    """``natural`` or ``synthetic``, from an instruction id (``<category>-<nat|syn>-<hex>``)."""
    return {"nat": "natural", "syn": "synthetic"}[iid.split("-")[1]]


def rows_from_release(path: str) -> list[dict[str, Any]]:
    """Every candidate of a release folder: its rows (decoded) and then its reserve, in order."""
    rows = decode_rows(hexainst.load(path))
    return rows + [dict(r) for r in hexainst.load_reserve(path)]


@dataclass
class ProjectIndex:
    """The tasks of a project by instruction id: ``tasks[id]`` lists Label Studio task ids."""

    tasks: dict[str, list[int]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    annotated: dict[int, int] = field(default_factory=dict)  # task id -> total annotations
    unkeyed: list[int] = field(default_factory=list)  # tasks without a hexainst_id
    data: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> task data (of its first task)
    annotators: dict[str, set[int]] = field(default_factory=dict)  # id -> user ids with an annotation (skips too)

    @property
    def duplicates(self) -> dict[str, list[int]]:
        return {iid: ids for iid, ids in self.tasks.items() if len(ids) > 1}


def index_project(client, project_id: int, where: str | None = None) -> ProjectIndex:
    """List a project's tasks (paged, through the SDK) and index them by instruction id."""
    index = ProjectIndex()
    where = where or f"project {project_id}"
    try:
        for task in client.tasks.list(
            # fields="all" (narrowed by include): with "task_only" the server leaves 'annotators' empty.
            project=project_id, page_size=1000, fields="all", include="id,data,total_annotations,annotators"
        ):
            data = task.data or {}
            iid = data.get(ID_KEY)
            if not isinstance(iid, str):
                index.unkeyed.append(task.id)
                continue
            index.tasks.setdefault(iid, []).append(task.id)
            index.texts.setdefault(iid, data.get("instruction", ""))
            index.data.setdefault(iid, dict(data))
            index.annotated[task.id] = int(task.total_annotations or 0)
            index.annotators.setdefault(iid, set()).update(_user_ids(getattr(task, "annotators", None)))
    except (httpx.TransportError, ApiError) as exc:
        raise SyncError(f"{where}: cannot list tasks: {describe_error(exc)}") from exc
    for ids in index.tasks.values():
        ids.sort()
    return index


def _user_ids(annotators: Any) -> set[int]:
    """User ids of a task's ``annotators`` field (the community server sends ids; other editions objects)."""
    out: set[int] = set()
    for a in annotators or []:
        if isinstance(a, int) and not isinstance(a, bool):
            out.add(a)
        elif isinstance(a, Mapping):
            uid = a.get("id", a.get("user_id"))
            if isinstance(uid, int):
                out.add(uid)
    return out


@dataclass
class SyncReport:
    """What one sync did."""

    n_wanted: int
    n_present_before: int
    n_imported: int
    changed_text: list[str]  # ids whose text in Label Studio differs from the candidate's
    duplicates_removed: int
    duplicates_kept: dict[str, list[int]]  # duplicates that carry annotations (left alone)
    extra_in_project: list[str]  # ids in the project that are not among the wanted tasks


def remove_empty_duplicates(client, project_id: int, index: ProjectIndex) -> tuple[int, dict[str, list[int]]]:
    """Delete duplicate tasks that have no annotation (keep the lowest task id of each id)."""
    removed = 0
    kept: dict[str, list[int]] = {}
    for iid, ids in index.duplicates.items():
        survivors = [ids[0]]
        for tid in ids[1:]:
            if index.annotated.get(tid, 0) == 0:
                client.tasks.delete(str(tid))
                removed += 1
            else:
                survivors.append(tid)
        index.tasks[iid] = survivors
        if len(survivors) > 1:
            kept[iid] = survivors
    return removed, kept


def import_missing(
    client,
    project_id: int,
    tasks: Sequence[Mapping[str, Any]],
    batch_size: int = 100,
    on_batch: Callable[[int, int], None] | None = None,
    progress: bool = True,
    where: str | None = None,
) -> SyncReport:
    """Import the tasks whose ``data.hexainst_id`` the project lacks.

    Args:
        tasks: Label Studio task dicts ``{"data": {...}, "predictions": [...]?}``, each with a
            unique ``data.hexainst_id``.
        on_batch: called as ``on_batch(n_done, n_to_import)`` after each committed batch.
        where: names the project in messages and the progress bar (default ``project <id>``).

    Tasks already in the project (by instruction id) are never changed, annotated or not.
    """
    where = where or f"project {project_id}"
    if batch_size < 1:
        raise SyncError(f"the batch size must be at least 1, got {batch_size}")
    wanted: dict[str, Mapping[str, Any]] = {}
    for i, task in enumerate(tasks):
        iid = task["data"][ID_KEY]
        if iid in wanted:
            raise SyncError(f"task {i}: instruction id {iid!r} appears twice in the input")
        wanted[iid] = task
    index = index_project(client, project_id, where)
    present_before = sum(1 for iid in wanted if iid in index.tasks)
    removed, kept = remove_empty_duplicates(client, project_id, index)
    todo = [wanted[iid] for iid in wanted if iid not in index.tasks]
    changed = sorted(
        iid for iid, task in wanted.items() if iid in index.texts and index.texts[iid] != task["data"]["instruction"]
    )

    done = 0
    with tqdm(total=len(todo), desc=f"import into {where}", unit="task", disable=not progress or not todo) as bar:
        for start in range(0, len(todo), batch_size):
            batch = [dict(t) for t in todo[start : start + batch_size]]
            try:
                # No SDK retry for this POST: a retry after a lost response would import the batch
                # twice. A failed batch is redone by the next run, which skips what already landed.
                client.projects.import_tasks(project_id, request=batch, request_options={"max_retries": 0})
            except (httpx.TransportError, ApiError) as exc:
                raise SyncError(
                    f"{where}: import stopped after {done} of {len(todo)} new tasks "
                    f"({present_before} were already there): {describe_error(exc)}; rerun the same command "
                    "to import the rest (it skips what is already there)"
                ) from exc
            done += len(batch)
            bar.update(len(batch))
            if on_batch is not None:
                on_batch(done, len(todo))
    if todo:
        # Check what landed: every wanted id exactly once (and clean duplicates a concurrent run made).
        after = index_project(client, project_id, where)
        removed_after, kept = remove_empty_duplicates(client, project_id, after)
        removed += removed_after
        missing = [iid for iid in wanted if iid not in after.tasks]
        if missing:
            raise SyncError(
                f"{where}: {len(missing)} tasks missing after import (first: {missing[0]}); "
                "rerun the same command"
            )
        index = after
    return SyncReport(
        n_wanted=len(wanted),
        n_present_before=present_before,
        n_imported=done,
        changed_text=changed,
        duplicates_removed=removed,
        duplicates_kept=kept,
        extra_in_project=sorted(set(index.tasks) - set(wanted)),
    )


def junior_tasks(rows: Iterable[Mapping[str, Any]], where: str = "candidates") -> list[dict[str, Any]]:
    """Validate candidate rows (record schema, unique ids) and make their junior tasks."""
    return [{"data": task_data(row)} for row in validate_rows(list(rows), where)]


def describe_error(exc: Exception) -> str:
    """One line for an HTTP or API failure (an HTML error page is cut short)."""
    if isinstance(exc, ApiError):
        body = exc.body if not isinstance(exc.body, dict) else exc.body.get("detail") or exc.body
        text = f"HTTP {exc.status_code}: {body}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."
