"""The gate and the score on hand-picked instructions (expected values set by hand, not by the code)."""

from __future__ import annotations

import pytest

from hexainst.builders.synthetic import ranking
from hexainst.builders.synthetic.prompts import Slot


@pytest.mark.parametrize(("category", "text", "reason"), [
    ("generalqa", "Which river flows through Vienna and Budapest?", None),
    ("generalqa", "The Danube is a long river in Europe.", "not_instruction"),
    ("generalqa", "Write a poem about the Danube.", "wrong_category"),
    ("math", "A jacket costs $80 and is 25% off. What is the sale price?", None),
    ("math", "Explain why mathematics is beautiful.", "wrong_category"),
    ("code", "Write a Python function that reverses a string.", None),
    ("code", "Write a short story about a programmer.", "wrong_category"),
    ("code", "Describe your favourite holiday.", "wrong_category"),
    ("classification", 'Is this review positive or negative? "The soup was cold and bland."', None),
    ("classification", "Classify the sentiment of the following review.", "missing_text"),
    ("summarization", 'Summarize in one sentence: "The council met on Monday to discuss the new bus routes and '
                      'agreed to keep the old route for six more months."', None),
    ("summarization", "Summarize this article in one sentence.", "missing_text"),
    ("summarization", "What is the capital of France?", "wrong_category"),
    ("generation", "Write a limerick about a cat who loves rain.", None),
    ("generation", "Fix the bug in the function below.", "wrong_category"),
    ("generation", "Identify three simple things people do to raise awareness about climate change.", None),
    ("code", "Given two strings, determine whether they are anagrams of each other in Python.", None),
])
def test_gate(category, text, reason):
    assert ranking.gate(category, text) == reason


def test_a_pointer_to_a_missing_text_is_rejected_in_any_category():
    assert ranking.gate("code", "Fix the bug in the function below.") == "missing_text"
    assert ranking.gate("code", "Fix the bug in this function: def f(x): return x +* 1") is None


def test_score_prefers_the_complete_on_topic_candidate():
    s = Slot("math", 0, "percentages", "shopping")
    good = ranking.score(s, "A shirt in a shop costs $40 and is sold at 15% off. What is the new price?")
    cut = ranking.score(s, "A shirt in a shop costs $40 and is sold at 15% off, and then the")
    off_topic = ranking.score(s, "A train travels 60 km in 2 hours. What is its speed?")
    loop = ranking.score(s, "What is 5% of 5% of 5% of 5% of 5% of 5% of 5% of 5%?")
    assert good.score > cut.score and good.score > off_topic.score and good.score > loop.score
    assert good.components["complete"] == 1.0 and cut.components["complete"] == 0.4
    assert good.components["topic"] > 0 and off_topic.components["topic"] == 0.0
    assert 0.0 <= loop.components["fluency"] < 0.5
    assert set(good.components) == set(ranking.WEIGHTS) and abs(sum(ranking.WEIGHTS.values()) - 1) < 1e-9


def test_a_leaked_answer_costs_its_component():
    s = Slot("generalqa", 0, "geography", "rivers and lakes")
    assert ranking.components(s, "Which river flows through Vienna? The answer is the Danube.")["no_answer"] == 0.0
    assert ranking.components(s, "Which river flows through Vienna?")["no_answer"] == 1.0
