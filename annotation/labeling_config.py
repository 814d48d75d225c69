"""The Label Studio labeling configs (XML) of the junior and the senior project.

Both ask the same four questions about one instruction shown with its claimed category (the
senior's screen also shows its origin, natural or synthetic; a junior's never does, nor does a
junior task's data hold it):
is the category correct, which errors are present, a corrected instruction (optional), and
the decision. The senior project also shows both junior verdicts side by side, as task data
(text): nothing is pre-selected for the senior. The choices and their UI labels come from
``labels.json`` (a registry: edit the table, not this code); each choice stores its token as
``alias``, so exports carry the token.

Two traps of the editor (Label Studio 1.23) that these configs avoid, and :func:`labels` guards:
an attribute value such as ``"true"``, ``"false"`` or ``"3"`` is read as a boolean or a number,
and a string-typed ``alias`` that is not a string makes the whole editor blank; and the editor
adds its own ``source`` field to every task, so ``$source`` would print the whole task (with
other people's annotation counts). Task-data keys of ours are therefore never ``source``.

The instruction is what the annotator judges character by character (code, indentation, line
breaks, spacing), so it is drawn in a monospace, whitespace-preserving block: a ``View`` of class
:data:`VERBATIM_CLASS`, styled by the config's ``<Style>`` tag (:data:`VERBATIM_CSS`; the editor's
``Text`` tag takes no style of its own). tests/annotation/test_browser.py checks the computed
style. The senior's two verdict panes use the same block, with the questions' labels
(:func:`describe_verdict`), never the stored tokens.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from hexainst.kernel.vocab import DECISIONS, ERROR_TYPES

#: Names of the control tags; they are the keys of an annotation's result items.
CATEGORY_CORRECT = "category_correct"
ERRORS = "errors"
CORRECTED = "corrected_instruction"
DECISION = "decision"
#: Name of the object tag that shows the instruction (every control points to it).
OBJECT = "instruction"

#: Task-data key of the candidate's source (natural/synthetic): not ``source``, which the editor owns.
ORIGIN = "origin"
#: Task-data keys of the junior project (no origin: juniors are blind to it); the senior project adds
#: :data:`SENIOR_EXTRA_KEYS`.
TASK_KEYS: tuple[str, ...] = ("hexainst_id", "instruction", "category")
#: Token of the category question's two choices (``category_correct`` true / false).
YES, NO = "yes", "no"
#: Attribute values the editor parses into booleans or numbers (never usable as an alias).
_NOT_A_STRING = re.compile(r"^(true|false|-?[0-9]+(\.[0-9]+)?)$", re.IGNORECASE)
SENIOR_EXTRA_KEYS: tuple[str, ...] = (ORIGIN, "junior_1", "junior_2", "reason")
#: CSS of a block shown exactly as written: monospace, every space and line break kept, long lines wrapped.
#: Class of every block shown verbatim, and its style sheet (a ``<Style>`` tag of the config).
#: Inside the Data Manager, Label Studio 1.23 sets ``.lsf-datamanager * {font-family: var(--font-sans)
#: !important}``, which beats any inline font-family: only a more specific ``!important`` rule wins.
VERBATIM_CLASS = "hexainst-verbatim"
VERBATIM_CSS = (
    f".{VERBATIM_CLASS}, .{VERBATIM_CLASS} *, .lsf-datamanager .{VERBATIM_CLASS}, .lsf-datamanager .{VERBATIM_CLASS} * "
    "{ font-family: ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace !important; "
    "white-space: pre-wrap !important; overflow-wrap: anywhere; tab-size: 4; }"
)
VERBATIM = "white-space: pre-wrap"  # inline too: the block keeps its spacing if the style sheet is not applied


@functools.cache
def labels() -> dict[str, dict[str, dict[str, str]]]:
    """The UI labels table (``annotation/labels.json``), checked against the vocabularies."""
    table = json.loads(resources.files("hexainst.annotation").joinpath("labels.json").read_text("utf-8"))
    table.pop("$comment", None)
    expected = {
        CATEGORY_CORRECT: {YES, NO},
        ERRORS: set(ERROR_TYPES),
        DECISION: set(DECISIONS),
    }
    for group, tokens in expected.items():
        got = set(table.get(group, {}))
        if got != tokens:
            raise ValueError(f"annotation/labels.json: group {group!r} has {sorted(got)}, expected {sorted(tokens)}")
    check_aliases(table)
    return table


def check_aliases(table: dict[str, dict[str, dict[str, str]]]) -> None:
    """Raise ``ValueError`` for a token the editor would read as a boolean or a number (a blank editor)."""
    for group, entries in table.items():
        for token in entries:
            if _NOT_A_STRING.match(token):
                raise ValueError(
                    f"annotation/labels.json: {group}: token {token!r} would be read as a boolean or a number "
                    "by the Label Studio editor, which then renders nothing; use a word"
                )


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


def _instruction_block(show_origin: bool) -> str:
    # Juniors never see whether a row is natural or synthetic (it biases them); the senior may.
    origin = f" (${ORIGIN})" if show_origin else ""
    return (
        f'    <Header value="Claimed category: $category{origin}" size="4"/>\n'
        f'    <View className="{VERBATIM_CLASS}" style="{VERBATIM}; font-size: 1.15em; padding: 0.6em 0.8em; margin: 0.3em 0 0.8em;'
        ' border: 1px solid #d0d0d0; border-radius: 4px; background: #f7f7f5">\n'
        f'      <Text name="{OBJECT}" value="${OBJECT}" granularity="word"/>\n'
        "    </View>"
    )


def _style() -> str:
    return f"  <Style>{escape(VERBATIM_CSS)}</Style>\n"


def junior_config() -> str:
    """The junior project's labeling config (one instruction, four questions)."""
    return (
        "<View>\n"
        f"{_style()}"
        '  <View style="padding: 0 1em">\n'
        f"{_instruction_block(show_origin=False)}\n"
        f"{_questions()}\n"
        "  </View>\n"
        "</View>\n"
    )


def senior_config() -> str:
    """The senior project's labeling config: the junior one plus both junior verdicts as data."""
    return (
        "<View>\n"
        f"{_style()}"
        '  <View style="padding: 0 1em">\n'
        f"{_instruction_block(show_origin=True)}\n"
        '    <Header value="Why this task needs you: $reason" size="6"/>\n'
        '    <View style="display: flex; gap: 1em">\n'
        f'      <View className="{VERBATIM_CLASS}" style="{VERBATIM}; flex: 1; '
        'border: 1px solid #d0d0d0; border-radius: 4px; padding: 0 0.6em">'
        '<Header value="Junior 1" size="6"/><Text name="junior_1" value="$junior_1" granularity="paragraph"/></View>\n'
        f'      <View className="{VERBATIM_CLASS}" style="{VERBATIM}; flex: 1; '
        'border: 1px solid #d0d0d0; border-radius: 4px; padding: 0 0.6em">'
        '<Header value="Junior 2" size="6"/><Text name="junior_2" value="$junior_2" granularity="paragraph"/></View>\n'
        "    </View>\n"
        f"{_questions()}\n"
        "  </View>\n"
        "</View>\n"
    )


def describe_verdict(verdict: Mapping[str, Any]) -> str:
    """One junior verdict as the senior's pane shows it: the screen's own labels, not the stored tokens."""
    table = labels()
    errors = [table[ERRORS][e]["label"] for e in verdict["errors"]]
    lines = [
        f"Annotator: {verdict['annotator']}",
        f"Decision: {table[DECISION][verdict['decision']]['label']}",
        f"Category: {table[CATEGORY_CORRECT][YES if verdict['category_correct'] else NO]['label']}",
        "Errors: " + ("; ".join(errors) if errors else "none"),
    ]
    if verdict.get("corrected_instruction"):
        lines += ["Corrected instruction:", str(verdict["corrected_instruction"])]
    return "\n".join(lines)


def verdict_to_result(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    """The Label Studio result items that encode ``verdict`` (what the screen stores; used by tests).

    ``verdict`` is a schema ``$defs/verdict`` dict; its annotator and identity are not part of a result
    (the instance and account it is stored under say who made it).
    """
    result: list[dict[str, Any]] = [
        _choice_item(CATEGORY_CORRECT, [YES if verdict["category_correct"] else NO]),
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
