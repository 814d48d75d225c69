"""The Label Studio labeling configs (XML) of the junior and the senior project.

Both ask the same four questions about one instruction shown with its claimed category:
is the category correct, which errors are present, a corrected instruction (optional), and
the decision. The senior project also shows both junior verdicts as task data. The choices
and their UI labels come from ``labels.json`` (a registry: edit the table, not this code);
each choice stores its vocabulary token as ``alias``, so exports carry the token.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any
from xml.sax.saxutils import quoteattr

from hexainst.kernel.vocab import DECISIONS, ERROR_TYPES

#: Names of the control tags; they are the keys of an annotation's result items.
CATEGORY_CORRECT = "category_correct"
ERRORS = "errors"
CORRECTED = "corrected_instruction"
DECISION = "decision"
#: Name of the object tag that shows the instruction (every control points to it).
OBJECT = "instruction"

#: Task-data keys of the junior project; the senior project adds :data:`SENIOR_EXTRA_KEYS`.
TASK_KEYS: tuple[str, ...] = ("hexainst_id", "instruction", "category", "source")
SENIOR_EXTRA_KEYS: tuple[str, ...] = ("junior_1", "junior_2", "reason")


@functools.cache
def labels() -> dict[str, dict[str, dict[str, str]]]:
    """The UI labels table (``annotation/labels.json``), checked against the vocabularies."""
    table = json.loads(resources.files("hexainst.annotation").joinpath("labels.json").read_text("utf-8"))
    table.pop("$comment", None)
    expected = {
        CATEGORY_CORRECT: {"true", "false"},
        ERRORS: set(ERROR_TYPES),
        DECISION: set(DECISIONS),
    }
    for group, tokens in expected.items():
        got = set(table.get(group, {}))
        if got != tokens:
            raise ValueError(f"annotation/labels.json: group {group!r} has {sorted(got)}, expected {sorted(tokens)}")
    return table


def _choices(name: str, choice: str, required: bool, title: str) -> str:
    items = "\n".join(
        f"      <Choice value={quoteattr(entry['label'])} alias={quoteattr(token)} hint={quoteattr(entry['hint'])}/>"
        for token, entry in labels()[name].items()
    )
    req = ' required="true"' if required else ""
    return (
        f'    <Header value={quoteattr(title)} size="5"/>\n'
        f'    <Choices name="{name}" toName="{OBJECT}" choice="{choice}"{req} showInline="false">\n'
        f"{items}\n"
        "    </Choices>"
    )


def _questions() -> str:
    return "\n".join(
        [
            _choices(CATEGORY_CORRECT, "single", True, "Is the claimed category correct?"),
            _choices(ERRORS, "multiple", False, "Which errors are present? (none, one or several)"),
            '    <Header value="Corrected instruction (only when you choose Revise)" size="5"/>',
            f'    <TextArea name="{CORRECTED}" toName="{OBJECT}" rows="4" maxSubmissions="1" editable="true"'
            ' placeholder="The full corrected instruction"/>',
            _choices(DECISION, "single", True, "Decision"),
        ]
    )


def _instruction_block() -> str:
    return (
        '    <Header value="Claimed category: $category ($source)" size="4"/>\n'
        f'    <Text name="{OBJECT}" value="${OBJECT}" granularity="word"/>'
    )


def junior_config() -> str:
    """The junior project's labeling config (one instruction, four questions)."""
    return (
        "<View>\n"
        '  <View style="padding: 0 1em">\n'
        f"{_instruction_block()}\n"
        f"{_questions()}\n"
        "  </View>\n"
        "</View>\n"
    )


def senior_config() -> str:
    """The senior project's labeling config: the junior one plus both junior verdicts as data."""
    return (
        "<View>\n"
        '  <View style="padding: 0 1em">\n'
        f"{_instruction_block()}\n"
        '    <Header value="Why this task needs you: $reason" size="6"/>\n'
        '    <View style="display: flex; gap: 1em">\n'
        '      <View style="flex: 1"><Header value="Junior 1" size="6"/>'
        '<Text name="junior_1" value="$junior_1" granularity="paragraph"/></View>\n'
        '      <View style="flex: 1"><Header value="Junior 2" size="6"/>'
        '<Text name="junior_2" value="$junior_2" granularity="paragraph"/></View>\n'
        "    </View>\n"
        f"{_questions()}\n"
        "  </View>\n"
        "</View>\n"
    )


def verdict_to_result(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    """The Label Studio result items that encode ``verdict`` (used for predictions and tests).

    ``verdict`` is a schema ``$defs/verdict`` dict; the annotator field is not part of a result.
    """
    result: list[dict[str, Any]] = [
        _choice_item(CATEGORY_CORRECT, ["true" if verdict["category_correct"] else "false"]),
        _choice_item(DECISION, [verdict["decision"]]),
    ]
    if verdict["errors"]:
        result.append(_choice_item(ERRORS, list(verdict["errors"])))
    if verdict.get("corrected_instruction"):
        result.append(
            {
                "from_name": CORRECTED,
                "to_name": OBJECT,
                "type": "textarea",
                "value": {"text": [verdict["corrected_instruction"]]},
            }
        )
    return result


def _choice_item(name: str, tokens: list[str]) -> dict[str, Any]:
    return {"from_name": name, "to_name": OBJECT, "type": "choices", "value": {"choices": tokens}}
