"""Constraints reach every route, and bootstrapped prompts draw real examples per slot."""

from __future__ import annotations

import json
import re

import pytest

from hexainst.builders.synthetic import prompts
from hexainst.builders.synthetic.config import SyntheticConfig
from hexainst.builders.synthetic.endpoint import Endpoint
from hexainst.builders.synthetic.examples import ExamplePool
from hexainst.builders.synthetic.parsing import parse_list_continuation
from hexainst.builders.synthetic.pipeline import Planner
from hexainst.kernel.vocab import CATEGORIES

# A natural pool as the natural builder writes it: one line each, some too long or multi-line.
NATURAL = {
    "generalqa": {f"q{i}": f"Which city hosted event number {i} of the old regatta series?" for i in range(40)},
    "math": {f"m{i}": f"A farmer has {i + 3} cows and buys {i} more. How many cows does he have?" for i in range(40)},
    "code": {"h0": "Complete the Python function `f` below so that it does what its docstring describes."},
    "classification": {"c0": 'Is this review positive or negative? "Great food."',
                       "c1": "Line one\nline two of a dialogue: classify it."},
    "summarization": {"s0": "Summarize: " + "word " * 200},
}


def _text(payload) -> str:
    return payload if isinstance(payload, str) else "\n".join(m["content"] for m in payload)


@pytest.mark.parametrize("route", ["completions", "chat"])
def test_every_rendered_request_carries_category_task_type_and_topic(route):
    pool = ExamplePool.from_natural(NATURAL)
    endpoint = Endpoint(None if route == "completions" else "http://127.0.0.1:1/v1", "m", route=route)
    planner = Planner(endpoint, SyntheticConfig(seed=7), pool)
    table = prompts.metaprompts()["categories"]
    for c in CATEGORIES:
        n_slots = len(table[c]["task_types"]) * len(table[c]["topics"])
        for k in range(n_slots):  # every slot of one full cycle of the seeded plan
            s = prompts.slot(c, k, 7)
            req = planner.request(s, candidate=0, attempt=0)
            text = _text(req.payload)
            # what the model is asked for comes last: the constraint sits in the final ask
            ask = text.rsplit("\n", 1)[-1] if route == "completions" else req.payload[-1]["content"]
            assert table[c]["category_label"] in text.lower() or table[c]["category_label"] in text, (c, k)
            assert s.task_type in ask and s.topic in ask, (c, k, ask)


def test_bootstrapped_prompts_draw_different_real_examples_per_slot():
    pool = ExamplePool.from_natural(NATURAL)
    spec = prompts.metaprompts()["categories"]
    curated = {c: {ex["instruction"] for ex in spec[c]["examples"]} for c in CATEGORIES}
    draws = [pool.draw("math", k, 0) for k in range(6)]
    assert draws == [pool.draw("math", k, 0) for k in range(6)]  # seeded
    assert draws != [pool.draw("math", k, 1) for k in range(6)]
    for d in draws:
        assert len(d) == spec["math"]["shots"]
        natural = [t for t in d if t in NATURAL["math"].values()]
        assert d[: spec["math"]["min_curated"]] == [ex["instruction"] for ex in spec["math"]["examples"]][: spec["math"]["min_curated"]]
        assert len(natural) == spec["math"]["shots"] - spec["math"]["min_curated"]
        assert len([t for t in d if t in curated["math"]]) == spec["math"]["min_curated"]
    naturals = [frozenset(t for t in d if t not in curated["math"]) for d in draws]
    assert len(set(naturals)) == len(naturals)  # consecutive slots see different real examples
    # the prompt shows them as a numbered list, then the slot's constraint
    s = prompts.slot("math", 0, 0)
    text = prompts.completion_prompt(s, draws[0])
    for i, t in enumerate(draws[0], 1):
        assert f"\n{i}. {t}\n" in text
    assert text.endswith(f"{len(draws[0]) + 1}. {prompts.constraint(s)}")


def test_code_uses_curated_examples_only_and_long_or_multiline_rows_are_not_shown():
    pool = ExamplePool.from_natural(NATURAL)
    curated = {ex["instruction"] for ex in prompts.metaprompts()["categories"]["code"]["examples"]}
    for k in range(10):
        assert set(pool.draw("code", k, 0)) <= curated
    assert pool.natural["classification"] == ['Is this review positive or negative? "Great food."']
    assert pool.natural["summarization"] == []  # 201 words > natural_max_words


def test_without_natural_pools_the_prompt_shows_curated_examples():
    pool = ExamplePool.from_natural({})
    for c in CATEGORIES:
        spec = prompts.metaprompts()["categories"][c]
        d = pool.draw(c, 3, 0)
        assert len(d) == min(spec["shots"], len(spec["examples"]))
        assert set(d) <= {ex["instruction"] for ex in spec["examples"]}


@pytest.mark.parametrize(("raw", "expected"), [
    (" Which planet has the most moons?", "Which planet has the most moons?"),
    ("7. Write a limerick about a cat.", "Write a limerick about a cat."),
    (" (history question about ancient Rome) Who founded Rome?", "Who founded Rome?"),
    ("8. 9. Name a prime number.", "Name a prime number."),
])
def test_list_continuation_strips_repeated_numbers_and_tags(raw, expected):
    assert parse_list_continuation(raw, "stop").instruction == expected


def test_curated_examples_are_well_formed_for_the_gate_and_score_high():
    from hexainst.builders.synthetic import ranking

    for c in CATEGORIES:
        for ex in prompts.metaprompts()["categories"][c]["examples"]:
            text = ex["instruction"]
            assert ranking.gate(c, text) is None, (c, text)
            s = prompts.Slot(c, 0, ex["task_type"], ex["topic"])
            assert ranking.shape(c, text) >= 0.9, (c, text)
            assert ranking.score(s, text).score >= 0.75, (c, text, ranking.score(s, text))
            assert not re.search(r"\s{2}", text) and json.dumps(text)


def test_openers_start_the_instruction_and_the_model_continues_it():
    s = prompts.Slot("classification", 0, "sentiment", "a hotel review")
    start = prompts.opener(s)
    assert start == 'Classify the sentiment of this hotel review as positive, negative or neutral: "'
    assert prompts.completion_prompt(s, ["Is it spam?"]).endswith(f"2. {prompts.constraint(s)} {start}")
    got = parse_list_continuation('The room was tiny but the staff were lovely.\n3. Next one', "stop", start)
    assert got.instruction == start + 'The room was tiny but the staff were lovely."'  # the opened quote is closed
    g = prompts.Slot("generation", 0, "a poem", "autumn")
    assert parse_list_continuation(" in four lines.", "stop", prompts.opener(g)).instruction == \
        "Write a poem about autumn in four lines."
    assert parse_list_continuation("\n", "stop", prompts.opener(g)).reason == "empty"
    for c in ("math", "generalqa"):
        assert prompts.opener(prompts.slot(c, 0, 0)) == ""  # these continue after the constraint alone
