"""The labeling configs and the reading of annotation results into verdicts."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from annotation_helpers import verdict

from hexainst.annotation import labeling_config as lc
from hexainst.annotation.verdicts import ExportError, result_to_verdict
from hexainst.kernel.vocab import DECISIONS, ERROR_TYPES


def _choices(root: ET.Element, name: str) -> list[str]:
    (tag,) = [e for e in root.iter("Choices") if e.get("name") == name]
    return [c.get("alias") for c in tag.iter("Choice")]


@pytest.mark.parametrize("config", [lc.junior_config(), lc.senior_config()])
def test_configs_ask_the_four_questions_with_vocabulary_aliases(config):
    root = ET.fromstring(config)
    assert _choices(root, "decision") == list(DECISIONS)
    assert _choices(root, "errors") == list(ERROR_TYPES)
    assert _choices(root, "category_correct") == ["yes", "no"]
    (decision,) = [e for e in root.iter("Choices") if e.get("name") == "decision"]
    assert decision.get("choice") == "single" and decision.get("required") == "true"
    (errors,) = [e for e in root.iter("Choices") if e.get("name") == "errors"]
    assert errors.get("choice") == "multiple"
    (area,) = list(root.iter("TextArea"))
    assert area.get("name") == "corrected_instruction" and area.get("required") is None
    assert "$category" in config and "$instruction" in config
    # The editor adds its own "source" to every task: $source would print the whole task.
    assert "$source" not in config
    # Every attribute the editor types as a string holds a word (an alias "true" blanks the editor).
    for element in root.iter():
        for attribute in ("alias", "value", "name"):
            text = element.get(attribute)
            assert text is None or text.lower() not in ("true", "false"), (element.tag, attribute, text)


def test_juniors_never_see_the_origin_the_senior_may():
    from annotation_helpers import syn

    from hexainst.annotation.sync import task_data

    assert "$origin" not in lc.junior_config() and "$source" not in lc.junior_config()
    assert "$origin" in lc.senior_config()
    row = syn("math", 1)
    assert set(task_data(row)) == set(lc.TASK_KEYS) and "origin" not in task_data(row)
    assert "synthetic" not in task_data(row).values() and "natural" not in task_data(row).values()


def test_unsound_is_an_error_choice_with_its_label():
    assert lc.labels()["errors"]["unsound"]["label"] == (
        "Unsound: false premise, no definite answer, contradictory numbers, or an incoherent passage")
    root = ET.fromstring(lc.junior_config())
    assert "unsound" in _choices(root, "errors")


def test_only_the_senior_sees_junior_verdicts_and_nothing_is_preselected():
    assert "$junior_1" not in lc.junior_config()
    assert "$junior_1" in lc.senior_config() and "$junior_2" in lc.senior_config()
    for config in (lc.junior_config(), lc.senior_config()):
        root = ET.fromstring(config)
        assert all(c.get("selected") is None for c in root.iter("Choice"))
        assert all(t.get("value") is None for t in root.iter("TextArea"))


@pytest.mark.parametrize("token", ["true", "False", "1", "0.5"])
def test_a_token_the_editor_would_read_as_a_boolean_or_number_is_refused(token):
    table = {"decision": {token: {"label": "x", "hint": "y"}}}
    with pytest.raises(ValueError, match=f"token '{token}' would be read as a boolean or a number"):
        lc.check_aliases(table)
    lc.check_aliases({"decision": {"accept": {"label": "x", "hint": "y"}}})  # a word is fine


@pytest.mark.parametrize(
    "v",
    [
        verdict("a", "accept"),
        verdict("a", "revise", True, ["grammar", "unclear"], "Better."),
        verdict("a", "reject", False, ["wrong_category", "redundancy"]),
        verdict("a", "reject", True, ["unsound"], identity={"kind": "model", "model": "m", "prompt": "p sha256:1", "how": None}),
    ],
)
def test_result_round_trip(v):
    got = result_to_verdict(lc.verdict_to_result(v), "a", "test", v["identity"])
    # errors come back in vocabulary order
    assert got == {**v, "errors": [e for e in ERROR_TYPES if e in v["errors"]]}


def test_ui_labels_are_accepted_and_text_is_stripped():
    label = lc.labels()["decision"]["reject"]["label"]
    result = [
        {"from_name": "decision", "value": {"choices": [label]}},
        {"from_name": "category_correct", "value": {"choices": ["no"]}},
        {"from_name": "corrected_instruction", "value": {"text": ["   "]}},
    ]
    got = result_to_verdict(result, "x", "test")
    assert got["decision"] == "reject" and got["category_correct"] is False
    assert got["corrected_instruction"] is None


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ([{"from_name": "category_correct", "value": {"choices": ["yes"]}}], "no decision"),
        ([{"from_name": "decision", "value": {"choices": ["accept"]}}], "category is correct"),
        ([{"from_name": "decision", "value": {"choices": ["maybe"]}}], "unknown choice 'maybe'"),
        ([{"from_name": "decision", "value": {"choices": ["accept", "reject"]}}], "exactly one"),
        ([{"from_name": "decision", "value": "accept"}], "value.choices"),
        ("accept", "expected a list"),
    ],
)
def test_bad_results_name_the_annotation(result, message):
    with pytest.raises(ExportError, match=f"junior project instruction X annotation 7: .*{message}"):
        result_to_verdict(result, "a", "junior project instruction X annotation 7")


def test_senior_panes_show_labels_not_tokens():
    verdict = {"annotator": "junior2", "decision": "revise", "category_correct": False,
               "errors": ["wrong_category", "unclear"], "corrected_instruction": "def f(x):\n    return x"}  # fmt: skip
    text = lc.describe_verdict(verdict)
    table = lc.labels()
    assert f"Decision: {table['decision']['revise']['label']}" in text
    assert table["errors"]["wrong_category"]["label"] in text and table["errors"]["unclear"]["label"] in text
    assert "wrong_category" not in text and "category_correct" not in text
    assert text.endswith("Corrected instruction:\ndef f(x):\n    return x")  # its indentation kept


def test_instruction_and_verdicts_are_in_a_verbatim_block():
    for config in (lc.junior_config(), lc.senior_config()):
        root = ET.fromstring(config)
        parents = {child: parent for parent in root.iter() for child in parent}
        for text in root.iter("Text"):
            assert parents[text].get("className") == lc.VERBATIM_CLASS, text.get("name")
        (style,) = root.iter("Style")
        assert style.text == lc.VERBATIM_CSS and "monospace !important" in style.text
