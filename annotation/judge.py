"""A model answers one annotator's screen: ``hexainst annotate judge --as junior1 --base-url URL --model NAME``.

Any OpenAI-compatible endpoint (the ``openai`` client) gets, per task, the guidelines as its system
instructions and only the task's claimed category and instruction: never the origin (natural or
synthetic), never another annotator's verdict, never the row's provenance. It answers the screen's
four questions as one JSON object, which is parsed strictly (:func:`parse_answer`); a malformed
answer is asked again a bounded number of times, then the task is left unannotated and named.
The verdicts land exactly as an import does (:func:`hexainst.annotation.importer.land_verdicts`),
under identity kind ``model`` with the model's name and the sha256 of the whole prompt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import openai
from tqdm import tqdm

from hexainst.annotation.guidelines import guidelines_markdown
from hexainst.annotation.importer import VerdictImportError, annotated_by, check_slot, land_verdicts, parse_verdict
from hexainst.annotation.sync import index_project
from hexainst.kernel.identity import describe as describe_identity
from hexainst.kernel.identity import same_annotator
from hexainst.kernel.vocab import DECISIONS, ERROR_TYPES

#: The answer format, appended to the guidelines in the system message.
ANSWER_FORMAT = f"""\

# How to answer

You see one instruction and the category it claims. Answer the four questions of the screen as ONE
JSON object and nothing else (no prose, no code fence):

{{"category_correct": true or false,
 "errors": a list of zero or more of {json.dumps(list(ERROR_TYPES))},
 "corrected_instruction": the full corrected instruction (a string) when your decision is "revise", else null,
 "decision": one of {json.dumps(list(DECISIONS))}}}
"""

USER_TEMPLATE = "Claimed category: {category}\n\nInstruction:\n{instruction}"
#: What the verdicts record as ``how`` unless told otherwise.
DEFAULT_HOW = (
    "hexainst annotate judge: one chat request per task; saw the guidelines and the task's claimed category "
    "and instruction only (not its origin, not another annotator's verdict)"
)
#: What a task's reason says when its answers were cut off: the setting to raise (the command line names its flag).
RAISE_MAX_TOKENS = "raise max_tokens"
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.DOTALL)


def system_prompt() -> str:
    """The system message: the annotation guidelines, then the answer format."""
    return guidelines_markdown().rstrip() + "\n" + ANSWER_FORMAT


def prompt_text() -> str:
    """Everything fixed that the model is given (system message and user template): its sha256 is recorded."""
    return system_prompt() + "\n---\n" + USER_TEMPLATE


def user_message(task_data: Mapping[str, Any]) -> str:
    """The task as the model sees it: claimed category and instruction, nothing else."""
    return USER_TEMPLATE.format(category=task_data["category"], instruction=task_data["instruction"])


class AnswerError(ValueError):
    """A model's answer is not one well-formed verdict."""


def parse_answer(content: str | None, iid: str) -> dict[str, Any]:
    """The verdict in a model's answer, or :class:`AnswerError` saying what is wrong.

    Accepted: one JSON object with exactly the four keys, optionally after a closed ``<think>`` block
    or inside one ``json`` code fence. Anything else (prose around it, two objects, a missing key, a
    token outside the vocabulary) is malformed.
    """
    if not content or not content.strip():
        raise AnswerError("empty answer")
    text = _THINK.sub("", content).strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnswerError(f"not one JSON object ({exc.msg} at char {exc.pos})") from None
    if not isinstance(obj, dict):
        raise AnswerError(f"expected a JSON object, got {type(obj).__name__}")
    if "id" in obj or "annotator" in obj:
        raise AnswerError("the answer has keys the screen does not ask for (id/annotator)")
    try:
        return parse_verdict({**obj, "id": iid}, "answer")
    except VerdictImportError as exc:
        raise AnswerError(str(exc).replace(f"answer (id={iid}): ", "").replace("answer: ", "")) from None


@dataclass
class JudgeResult:
    """The verdicts a model gave and the tasks it could not answer (id -> the last problem)."""

    verdicts: list[dict[str, Any]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    requests: int = 0


def judge_tasks(
    tasks: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    base_url: str,
    model: str,
    api_key: str = "not-needed",
    attempts: int = 3,
    temperature: float = 0.0,
    max_tokens: int = 1024,
    timeout: float = 300.0,
    workers: int = 4,
    progress: bool = True,
    client: Any = None,
    on_done: Callable[[str, dict[str, Any] | None], None] | None = None,
) -> JudgeResult:
    """Ask the model about every ``(instruction id, task data)``; at most ``attempts`` requests per task.

    Transport and server errors are retried by the ``openai`` client itself (its own back-off); a
    malformed answer is asked again, up to ``attempts`` answers in all, then the task is left out and
    named in ``failed``. Verdicts come back in the order of ``tasks``.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    client = client or openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=3)
    system = system_prompt()
    result = JudgeResult()
    answers: dict[str, dict[str, Any]] = {}

    def ask(iid: str, data: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None, str, int]:
        problem = ""
        for attempt in range(1, attempts + 1):
            try:
                reply = client.chat.completions.create(
                    model=model, temperature=temperature, max_tokens=max_tokens,
                    messages=[{"role": "system", "content": system}, {"role": "user", "content": user_message(data)}],
                )  # fmt: skip
            except openai.APIError as exc:
                return iid, None, f"the endpoint failed: {type(exc).__name__}: {exc}", attempt
            choice = reply.choices[0] if reply.choices else None
            if choice is None:
                problem = "no choice in the answer"
                continue
            if choice.finish_reason == "length":
                problem = f"the answer was cut off (finish_reason length; {RAISE_MAX_TOKENS})"
                continue
            try:
                return iid, parse_answer(choice.message.content, iid), "", attempt
            except AnswerError as exc:
                problem = str(exc)
        return iid, None, f"{problem} (after {attempts} answers)", attempts

    with tqdm(total=len(tasks), desc=f"judge with {model}", unit="task", disable=not progress or not tasks) as bar, \
            ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # fmt: skip
        for iid, verdict, problem, n in pool.map(lambda t: ask(*t), tasks):
            result.requests += n
            if verdict is None:
                result.failed[iid] = problem
            else:
                answers[iid] = verdict
            bar.update(1)
            if on_done is not None:
                on_done(iid, verdict)
    result.verdicts = [answers[iid] for iid, _ in tasks if iid in answers]
    return result


def unannotated_tasks(session, name: str) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """``(instruction id, task data)`` of the tasks in ``name``'s project without ``name``'s annotation, in id
    order, and how many tasks the project holds. Only the claimed category and the instruction are kept."""
    inst = session.instance(name)
    index = index_project(session.client(inst), session.project(inst), f"{inst.name}'s project")
    done = annotated_by(session, inst, index)
    tasks = [(iid, {"category": index.data[iid]["category"], "instruction": index.data[iid]["instruction"]})
             for iid in sorted(index.tasks) if iid not in done]
    return tasks, len(index.tasks)


@dataclass
class SlotReport:
    """What one ``judge`` run did for one annotator."""

    annotator: str
    identity: dict[str, Any]
    n_tasks: int = 0
    n_landed: int = 0
    requests: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def judge_slot(
    session,
    name: str,
    identity: Mapping[str, Any],
    *,
    limit: int | None = None,
    chunk: int = 50,
    progress: bool = True,
    **ask: Any,
) -> SlotReport:
    """Judge ``name``'s unannotated tasks with a model and land the verdicts, ``chunk`` tasks at a time.

    ``ask`` goes to :func:`judge_tasks` (``base_url``, ``model``, ``api_key``, ``attempts``...). The slot is
    checked before the first request (a slot holding another annotator's verdicts, or a model already
    filling another junior slot, is refused); each chunk's verdicts land before the next is asked, so an
    interrupted run keeps what it landed and a rerun asks only about the rest.
    """
    inst = session.instance(name)
    check_slot(session, inst, identity, None)
    tasks, n_project = unannotated_tasks(session, name)
    if not same_annotator(inst.identity, identity) and len(tasks) < n_project:
        raise VerdictImportError(
            f"{inst.name} already holds verdicts by {describe_identity(inst.identity)}; they cannot be attributed to "
            f"{describe_identity(identity)} (one slot, one annotator: start a new round)"
        )
    if limit is not None:
        tasks = tasks[:limit]
    report = SlotReport(inst.name, dict(identity), n_tasks=len(tasks))
    for start in range(0, len(tasks), max(1, chunk)):
        part = tasks[start : start + max(1, chunk)]
        result = judge_tasks(part, progress=progress, **ask)
        report.requests += result.requests
        report.failed.update(result.failed)
        if result.verdicts:
            landed = land_verdicts(session, name, result.verdicts, identity, progress=False)
            report.n_landed += landed.n_created
    return report

