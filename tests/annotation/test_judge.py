"""'hexainst annotate judge': what the model is shown, how its answers are parsed, bounded retries.

Against the programmable stub (a real HTTP server speaking the OpenAI wire format) and, marked slow,
the embedded chat model; the live test lands the verdicts in a real round of Label Studio.
"""

from __future__ import annotations

import json

import pytest
from annotation_helpers import nat, syn

from hexainst.annotation.guidelines import guidelines_markdown
from hexainst.annotation.judge import (
    RAISE_MAX_TOKENS,
    AnswerError,
    judge_tasks,
    parse_answer,
    system_prompt,
    user_message,
)
from hexainst.builders.synthetic.stub_server import Fault, StubServer

GOOD = {"category_correct": False, "errors": ["unsound", "grammar"], "corrected_instruction": None, "decision": "reject"}
IID = "math-syn-0000000000a1"


def test_a_well_formed_answer_is_parsed_in_vocabulary_order():
    assert parse_answer(json.dumps(GOOD), IID) == {"id": IID, "decision": "reject", "category_correct": False,
                                                  "errors": ["grammar", "unsound"], "corrected_instruction": None}
    # A closed reasoning block and one json fence are tolerated; nothing else around the object is.
    assert parse_answer("<think>hmm</think>\n```json\n" + json.dumps(GOOD) + "\n```", IID)["decision"] == "reject"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty answer"),
        ("Sure! " + json.dumps(GOOD), "not one JSON object"),
        (json.dumps(GOOD) + json.dumps(GOOD), "not one JSON object"),
        ("[1]", "expected a JSON object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "decision"}), "missing decision"),
        (json.dumps({**GOOD, "confidence": 0.9}), "unknown key 'confidence'"),
        (json.dumps({**GOOD, "id": "code-nat-0000000000b2"}), "keys the screen does not ask for"),
        (json.dumps({**GOOD, "errors": ["false_premise"]}), "got 'false_premise'"),
        (json.dumps({**GOOD, "decision": "Reject"}), "decision 'Reject'"),
        (json.dumps({**GOOD, "decision": "revise"}), "revise without a corrected_instruction"),
        ("<think>" + json.dumps(GOOD), "not one JSON object"),
    ],
)
def test_a_malformed_answer_is_refused_with_its_reason(content, message):
    with pytest.raises(AnswerError, match=message):
        parse_answer(content, IID)


def _capture(stub):
    bodies = []
    stub.state.rule = lambda index, body: bodies.append(body)  # records, never injects a fault
    return bodies


def test_the_model_sees_the_guidelines_and_only_category_and_instruction():
    rows = [syn("math", 1, "What is 2 + 3?"), nat("code", 2, "Reverse a list in Python."),
            syn("summarization", 3, "Summarize: the cat sat on the mat all day.")]
    tasks = [(r["id"], {"category": r["category"], "instruction": r["instruction"]}) for r in rows]
    with StubServer(mode="verdict") as stub:
        bodies = _capture(stub)
        result = judge_tasks(tasks, base_url=stub.base_url, model="stub-model", progress=False, workers=2)
    assert result.failed == {} and [v["id"] for v in result.verdicts] == [r["id"] for r in rows]
    assert result.requests == 3 and len(bodies) == 3
    assert guidelines_markdown().strip()[:200] in system_prompt()
    users = set()
    for body in bodies:
        system, user = body["messages"]
        assert system == {"role": "system", "content": system_prompt()}
        users.add(user["content"])
        for secret in ("natural", "synthetic", "-syn-", "-nat-", "origin", "junior"):
            assert secret not in user["content"]
    assert users == {user_message(t[1]) for t in tasks}
    assert user_message(tasks[0][1]) == f"Claimed category: math\n\nInstruction:\n{rows[0]['instruction']}"


def test_malformed_answers_are_retried_a_bounded_number_of_times_then_the_task_is_named():
    tasks = [(r["id"], {"category": r["category"], "instruction": r["instruction"]}) for r in (syn("math", 4), syn("code", 5))]
    with StubServer(mode="verdict") as stub:
        stub.add_faults([Fault("not_json"), Fault("length")])  # the first task's two first answers are unusable
        result = judge_tasks(tasks, base_url=stub.base_url, model="m", attempts=3, progress=False, workers=1)
    assert result.failed == {} and len(result.verdicts) == 2 and result.requests == 4
    with StubServer(mode="content") as stub:  # answers {"instruction": ...}: never a verdict
        result = judge_tasks(tasks, base_url=stub.base_url, model="m", attempts=2, progress=False)
        assert len(stub.requests) == 4
    assert result.verdicts == [] and set(result.failed) == {t[0] for t in tasks}
    assert all("missing" in why and "(after 2 answers)" in why for why in result.failed.values())


def test_an_answer_cut_off_every_time_names_the_setting_to_raise():
    """The reason names the setting (``max_tokens``), never a flag: 'annotate judge' prints it as --max-tokens."""
    task = syn("math", 4)
    tasks = [(task["id"], {"category": task["category"], "instruction": task["instruction"]})]
    with StubServer(mode="verdict") as stub:
        stub.add_faults([Fault("length"), Fault("length")])
        result = judge_tasks(tasks, base_url=stub.base_url, model="m", attempts=2, progress=False, workers=1)
    why = result.failed[task["id"]]
    assert why == f"the answer was cut off (finish_reason length; {RAISE_MAX_TOKENS}) (after 2 answers)"
    assert RAISE_MAX_TOKENS == "raise max_tokens" and "--" not in why


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_embedded_chat_model_answers_are_parsed_or_named():
    """The embedded 135M model as a judge: it runs end to end; each task is a strict verdict or named."""
    from hexainst.builders.synthetic.embedded import EmbeddedServer

    rows = [syn("math", 6), nat("generation", 7)]
    tasks = [(r["id"], {"category": r["category"], "instruction": r["instruction"]}) for r in rows]
    with EmbeddedServer("smollm2-135m-instruct", threads=1) as server:
        result = judge_tasks(tasks, base_url=server.base_url, model="smollm2-135m-instruct", attempts=2,
                             max_tokens=200, progress=False, workers=2)
    assert len(result.verdicts) + len(result.failed) == 2
    assert result.requests <= 4
    for verdict in result.verdicts:
        assert verdict["decision"] in ("accept", "revise", "reject")
    print(f"\nembedded judge: {len(result.verdicts)} parsed, failed: {result.failed}")
