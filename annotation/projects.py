"""The two Label Studio projects: created (or found) by title, configured for the study.

Junior project: every candidate; two annotations wanted per task (``maximum_annotations=2``);
no collaborator predictions or annotation history shown, so a junior labelling in the UI does
not see the other junior's verdict. Senior project: only the instructions the juniors
disagree on (plus agreed revisions with conflicting texts), each with both junior verdicts as
task data and as predictions (``model_version`` ``junior-1:<name>`` / ``junior-2:<name>``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hexainst.annotation import labeling_config as lc
from hexainst.annotation.outcomes import Triage
from hexainst.annotation.sync import ID_KEY
from hexainst.annotation.verdicts import describe
from hexainst.kernel.errors import UserError

JUNIOR_TITLE = "HexaInst juniors"
SENIOR_TITLE = "HexaInst senior"

JUNIOR_SETTINGS: dict[str, Any] = {
    "description": "Two junior annotators check every HexaInst candidate independently (paper, Appendix B).",
    "expert_instruction": (
        "Read the instruction and its claimed category. Say whether the category is correct, mark every "
        "error present, and decide: accept it as it is, revise it (type the full corrected instruction), "
        "or reject it. Work alone: do not look at other annotators' work."
    ),
    "show_instruction": True,
    "maximum_annotations": 2,
    "show_collab_predictions": False,
    "show_annotation_history": False,
    "show_skip_button": True,
    "enable_empty_annotation": False,
    "sampling": "Sequential sampling",
}
SENIOR_SETTINGS: dict[str, Any] = {
    "description": "The senior annotator decides where the two juniors disagree. The senior's decision is final.",
    "expert_instruction": (
        "Both junior verdicts are shown beside the instruction (and as predictions). Give your own full "
        "verdict: it replaces theirs."
    ),
    "show_instruction": True,
    "maximum_annotations": 1,
    "show_collab_predictions": True,
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
        except Exception as exc:  # noqa: BLE001 - the server refuses configs that orphan annotations
            raise ProjectError(f"project {title!r} (id {pid}): cannot update its labeling config: {exc}") from exc
    client.projects.update(pid, **settings)
    return int(pid)


def ensure_junior_project(client, title: str = JUNIOR_TITLE) -> int:
    return ensure_project(client, title, lc.junior_config(), JUNIOR_SETTINGS)


def ensure_senior_project(client, title: str = SENIOR_TITLE) -> int:
    return ensure_project(client, title, lc.senior_config(), SENIOR_SETTINGS)


def senior_tasks(tri: Triage, junior_data: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The senior project's tasks: one per instruction needing the senior, in id order.

    ``junior_data`` maps instruction id to its junior task data (instruction, category, source).
    """
    tasks = []
    for iid, reason in sorted(tri.needs_senior.items()):
        data = junior_data[iid]
        verdicts = tri.juniors[iid]
        tasks.append(
            {
                "data": {
                    ID_KEY: iid,
                    "instruction": data["instruction"],
                    "category": data["category"],
                    "source": data["source"],
                    "junior_1": describe(verdicts[0]),
                    "junior_2": describe(verdicts[1]),
                    "reason": reason,
                },
                "predictions": [
                    {"model_version": f"junior-{n}:{v['annotator']}", "result": lc.verdict_to_result(v)}
                    for n, v in enumerate(verdicts, start=1)
                ],
            }
        )
    return tasks
