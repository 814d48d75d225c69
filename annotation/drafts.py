"""Drafts: answers an annotator changed on the screen but never submitted (or updated).

Label Studio keeps such a draft apart from the task's annotations: reopening the task shows the
draft's choices, but every export, the agreement and the validation file read the submitted
annotation only. A task's export lists its drafts' ids (``drafts``), so the tasks with a draft
are named to the coordinator, who asks the annotator to press Submit or Update.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hexainst.annotation.sync import ID_KEY


def with_drafts(export: Iterable[Mapping[str, Any]]) -> list[str]:
    """The instruction ids of the exported tasks that hold a draft, sorted."""
    out = []
    for task in export:
        if task.get("drafts"):
            data = task.get("data") or {}
            out.append(str(data.get(ID_KEY, f"task {task.get('id')}")))
    return sorted(out)


def warning(drafts: Mapping[str, list[str]], shown: int = 20) -> list[str]:
    """One warning line per annotator with drafts, naming the tasks (the first ``shown``)."""
    lines = []
    for name, ids in drafts.items():
        if not ids:
            continue
        more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
        lines.append(
            f"warning: {name} has {len(ids)} task(s) with changes not submitted (a draft; not counted here): "
            f"{', '.join(ids[:shown])}{more}; ask {name} to open each and press Submit or Update"
        )
    return lines
