"""Helpers that simulate annotators through the API, each with their own token on their own instance."""

from __future__ import annotations

from typing import Any

from hexainst.annotation import labeling_config as lc
from hexainst.annotation.sync import index_project


class Annotators:
    """Post a person's verdict onto the task of an instruction id, in that person's own project."""

    def __init__(self, session) -> None:
        self.session = session

    def task_id(self, name: str, iid: str) -> int:
        inst = self.session.instance(name)
        (task_id,) = index_project(self.session.client(inst), self.session.project(inst)).tasks[iid]
        return task_id

    def annotate(self, name: str, iid: str, verdict: dict[str, Any]) -> int:
        client = self.session.client(name, as_person=True)
        created = client.annotations.create(id=self.task_id(name, iid), result=lc.verdict_to_result(verdict))
        return int(created.id)
