"""Helpers that simulate annotators through the API (each with their own account)."""

from __future__ import annotations

from typing import Any

from hexainst.annotation import labeling_config as lc
from hexainst.annotation.sync import index_project


class Annotators:
    """Post verdicts as a given account onto the task of an instruction id."""

    def __init__(self, session, which: str = "junior") -> None:
        self.session = session
        self.project = session.junior_project if which == "junior" else session.senior_project
        self.refresh()

    def refresh(self) -> None:
        self.tasks = index_project(self.session.client(), self.project).tasks

    def annotate(self, account: str, iid: str, verdict: dict[str, Any]) -> int:
        (task_id,) = self.tasks[iid]
        created = self.session.client(account).annotations.create(id=task_id, result=lc.verdict_to_result(verdict))
        return int(created.id)
