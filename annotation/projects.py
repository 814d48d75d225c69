"""The two kinds of Label Studio project: created (or found) by title, configured for the study.

Each junior works in a Label Studio instance of their own (see ``session.py``), in a junior
project holding every candidate, one annotation per task. The senior's instance holds the senior
project: only the instructions the juniors disagree on (plus agreed revisions with conflicting
texts), each with both junior verdicts shown side by side as text. The senior project has no
predictions, so nothing is pre-selected: the senior's answer is the senior's own. Every project
shows the annotation guidelines (``guidelines.md``) in its instructions panel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hexainst.annotation import labeling_config as lc
from hexainst.annotation.guidelines import guidelines_html
from hexainst.annotation.outcomes import Triage
from hexainst.annotation.sync import ID_KEY, origin_of
from hexainst.kernel.errors import UserError

JUNIOR_TITLE = "HexaInst juniors"
SENIOR_TITLE = "HexaInst senior"


def junior_settings() -> dict[str, Any]:
    return {
        "description": "Check every HexaInst candidate on your own (paper, Appendix B). Guidelines: the Instructions button.",
        "expert_instruction": guidelines_html(),
        "show_instruction": True,
        "maximum_annotations": 1,
        "show_collab_predictions": False,
        "show_annotation_history": False,
        "show_skip_button": True,
        "enable_empty_annotation": False,
        "sampling": "Sequential sampling",
    }


def senior_settings() -> dict[str, Any]:
    return {
        "description": "Decide where the two juniors disagree; your verdict is final. Guidelines: the Instructions button.",
        "expert_instruction": guidelines_html(),
        "show_instruction": True,
        "maximum_annotations": 1,
        "show_collab_predictions": False,
        "show_annotation_history": False,
        "show_skip_button": False,
        "enable_empty_annotation": False,
        "sampling": "Sequential sampling",
    }


class ProjectError(UserError):
    """A project cannot be found or set up."""


def find_project(client, title: str) -> int | None:
    """The id of the (single) project titled ``title``, or None."""
    found = [p.id for p in client.projects.list(search=title, page_size=100) if p.title == title]
    if len(found) > 1:
        raise ProjectError(f"{len(found)} projects are titled {title!r} (ids {sorted(found)}); keep one")
    return found[0] if found else None


def ensure_project(client, title: str, label_config: str, settings: Mapping[str, Any]) -> int:
    """Create the project, or bring an existing one's settings up to date; return its id."""
    pid = find_project(client, title)
    if pid is None:
        return int(client.projects.create(title=title, label_config=label_config, **settings).id)
    project = client.projects.get(pid)
    if (project.label_config or "").strip() != label_config.strip():
        try:
            client.projects.update(pid, label_config=label_config)
        except Exception as exc:  # the server refuses configs that orphan annotations
            raise ProjectError(f"project {title!r} (id {pid}): cannot update its labeling config: {exc}") from exc
    client.projects.update(pid, **settings)
    return int(pid)


def ensure_junior_project(client, title: str = JUNIOR_TITLE) -> int:
    return ensure_project(client, title, lc.junior_config(), junior_settings())


def ensure_senior_project(client, title: str = SENIOR_TITLE) -> int:
    return ensure_project(client, title, lc.senior_config(), senior_settings())


def senior_tasks(tri: Triage, junior_data: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The senior project's tasks: one per instruction needing the senior, in id order.

    ``junior_data`` maps instruction id to its junior task data (instruction, category).
    No predictions: the senior's choices start empty.
    """
    tasks = []
    for iid, reason in sorted(tri.needs_senior.items()):
        data = junior_data[iid]
        # Shown in the juniors' name order, so that "Junior 1" is junior1's verdict on every task.
        verdicts = sorted(tri.juniors[iid], key=lambda v: v["annotator"])
        tasks.append(
            {
                "data": {
                    ID_KEY: iid,
                    "instruction": data["instruction"],
                    "category": data["category"],
                    lc.ORIGIN: origin_of(iid),  # the senior may see it; junior tasks do not hold it
                    "junior_1": lc.describe_verdict(verdicts[0]),
                    "junior_2": lc.describe_verdict(verdicts[1]),
                    "reason": reason,
                },
            }
        )
    return tasks
