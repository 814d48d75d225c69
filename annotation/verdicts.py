"""Turn Label Studio annotation results into verdicts, and verdicts into readable text.

A verdict is the record schema's ``$defs/verdict``: ``annotator``, ``identity`` (a person or a
model, see :mod:`hexainst.kernel.identity`), ``decision``, ``category_correct``, ``errors`` (in
vocabulary order) and ``corrected_instruction`` (stripped; ``None`` when empty). Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hexainst.annotation import labeling_config as lc
from hexainst.kernel.errors import UserError
from hexainst.kernel.identity import unrecorded
from hexainst.kernel.vocab import DECISIONS, ERROR_TYPES


class ExportError(UserError):
    """A Label Studio export (or one annotation in it) does not have the expected shape."""


def _token(group: str, value: Any, where: str) -> str:
    """Map a stored choice (the alias token, or the UI label as a fallback) to its token."""
    table = lc.labels()[group]
    if isinstance(value, str):
        if value in table:
            return value
        for token, entry in table.items():
            if entry["label"] == value:
                return token
    raise ExportError(f"{where}: {group}: unknown choice {value!r}; expected one of {', '.join(table)}")


def _choices_of(item: Mapping[str, Any], where: str) -> list[Any]:
    value = item.get("value")
    choices = value.get("choices") if isinstance(value, Mapping) else None
    if not isinstance(choices, list):
        raise ExportError(f"{where}: result {item.get('from_name')!r} has no 'value.choices' list")
    return choices


def result_to_verdict(
    result: Sequence[Mapping[str, Any]], annotator: str, where: str, identity: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Read one annotation's ``result`` list into a verdict.

    ``where`` names the annotation in error messages (project, instruction id, annotation id).
    ``identity``: who the annotator is (a person or a model); ``None``: not recorded.
    Raises :class:`ExportError` when the decision or the category answer is missing or unknown.
    """
    if not isinstance(result, list):
        raise ExportError(f"{where}: 'result' is {type(result).__name__}, expected a list")
    decision: str | None = None
    category_correct: bool | None = None
    errors: set[str] = set()
    corrected: str | None = None
    for item in result:
        if not isinstance(item, Mapping):
            raise ExportError(f"{where}: a result item is {type(item).__name__}, expected an object")
        name = item.get("from_name")
        if name == lc.DECISION:
            choices = _choices_of(item, where)
            if len(choices) != 1:
                raise ExportError(f"{where}: decision must be exactly one choice, got {choices!r}")
            decision = _token(lc.DECISION, choices[0], where)
        elif name == lc.CATEGORY_CORRECT:
            choices = _choices_of(item, where)
            if len(choices) != 1:
                raise ExportError(f"{where}: category_correct must be exactly one choice, got {choices!r}")
            category_correct = _token(lc.CATEGORY_CORRECT, choices[0], where) == lc.YES
        elif name == lc.ERRORS:
            errors.update(_token(lc.ERRORS, c, where) for c in _choices_of(item, where))
        elif name == lc.CORRECTED:
            value = item.get("value")
            texts = value.get("text") if isinstance(value, Mapping) else None
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ExportError(f"{where}: corrected_instruction has no 'value.text' list of strings")
            joined = "\n".join(texts).strip()
            corrected = joined or None
        # Anything else (e.g. a relation or a future control) is not part of the verdict.
    if decision is None:
        raise ExportError(f"{where}: the annotation has no decision (choose {'/'.join(DECISIONS)})")
    if category_correct is None:
        raise ExportError(f"{where}: the annotation does not say whether the category is correct")
    return {
        "annotator": annotator,
        "identity": dict(identity) if identity is not None else unrecorded(),
        "decision": decision,
        "category_correct": category_correct,
        "errors": [e for e in ERROR_TYPES if e in errors],
        "corrected_instruction": corrected,
    }


def describe(verdict: Mapping[str, Any]) -> str:
    """One verdict as a short text for the senior's screen."""
    errors = ", ".join(verdict["errors"]) or "none"
    lines = [
        f"Annotator: {verdict['annotator']}",
        f"Decision: {verdict['decision']}",
        f"Category correct: {'yes' if verdict['category_correct'] else 'no'}",
        f"Errors: {errors}",
    ]
    if verdict.get("corrected_instruction"):
        lines.append(f"Corrected instruction: {verdict['corrected_instruction']}")
    return "\n".join(lines)
