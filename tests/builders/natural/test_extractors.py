"""Extractors for HumanEval, TriviaQA, Alpaca and MATH-500 on made-up rows."""

from __future__ import annotations

import pytest

from hexainst.builders.natural.extractors import EXTRACTORS, Dropped, RowError, clean_question, contains_answer
from hexainst.builders.natural.registry import load_registry


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def run(registry, source_name, row):
    source = registry.source(source_name)
    return EXTRACTORS[source.extractor](row, source, None)


# --- CODE ----------------------------------------------------------------------------

PROMPT = '''from typing import List


def pair_sums(values: List[int], target: int) -> int:
    """ Count the pairs of distinct positions whose values add up to target.
    >>> pair_sums([1,  2, 3], 4)
    1
    """
'''
SOLUTION = """    count = 0
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            count += values[i] + values[j] == target
    return count
"""


def he_row(prompt=PROMPT, entry="pair_sums", solution=SOLUTION):
    return {"task_id": "Made/1", "prompt": prompt, "entry_point": entry, "canonical_solution": solution, "test": "def check(c): pass"}


def test_humaneval_instruction_shows_signature_docstring_and_doctests_verbatim(registry):
    got = run(registry, "humaneval", he_row())
    assert got.pattern_id == "humaneval.prompt"
    assert got.instruction.startswith("Complete the Python function `pair_sums` below")
    assert "```python\nfrom typing import List\n\n\ndef pair_sums(values: List[int], target: int) -> int:\n" in got.instruction
    # Doctest examples stay in, spacing inside the code block untouched.
    assert "    >>> pair_sums([1,  2, 3], 4)\n    1\n" in got.instruction
    assert got.instruction.endswith('    """\n```')
    assert "count += values[i]" not in got.instruction
    assert "check" not in got.instruction


def test_humaneval_allows_imports_in_the_body(registry):
    prompt = 'def area(r):\n    import math\n    """Area of a circle of radius r."""\n'
    got = run(registry, "humaneval", he_row(prompt, "area", "    return math.pi * r * r\n"))
    assert "import math" in got.instruction


@pytest.mark.parametrize(
    "prompt,entry,reason",
    [
        ("def f(x):\n    return x\n", "f", "no_docstring"),
        ('def f(x):\n    """Doc."""\n    return x\n', "f", "prompt_has_body"),
        ('def g(x):\n    """Doc."""\n', "f", "no_entry_point"),
        ('def f(x:\n    """Doc."""\n', "f", "unparsable_prompt"),
    ],
)
def test_humaneval_drops(registry, prompt, entry, reason):
    with pytest.raises(Dropped) as err:
        run(registry, "humaneval", he_row(prompt, entry, "    return 1\n"))
    assert err.value.reason == reason


def test_humaneval_solution_that_the_prompt_already_holds_is_dropped(registry):
    prompt = 'def helper():\n    return 42\n\n\ndef f():\n    """Call helper."""\n'
    with pytest.raises(Dropped) as err:
        run(registry, "humaneval", he_row(prompt, "f", "    return 42\n"))
    assert err.value.reason == "contains_solution"


def test_null_cell_is_a_row_error(registry):
    with pytest.raises(RowError, match="'prompt' is null"):
        run(registry, "humaneval", he_row(prompt=None))


# --- QA ------------------------------------------------------------------------------


def qa_row(question, value="Paris"):
    return {"question_id": "made_1", "question": question, "answer": {"value": value, "aliases": [value]}}


def test_triviaqa_question_is_cleaned_and_answer_never_included(registry):
    got = run(registry, "triviaqa", qa_row('"Which poet wrote ""The Raven""   in 1845?"', "Edgar Allan Poe"))
    assert got.instruction == 'Which poet wrote "The Raven" in 1845?'
    assert got.pattern_id == "triviaqa.question"


def test_triviaqa_question_with_its_answer_is_dropped(registry):
    with pytest.raises(Dropped) as err:
        run(registry, "triviaqa", qa_row("Paris is the capital of which country?", "paris"))
    assert err.value.reason == "answer_in_question"


def test_answer_match_is_whole_word():
    assert contains_answer("Which desert is the Sahara?", "Sahara")
    assert not contains_answer("Which desert is the Sahara?", "Ra")
    assert clean_question('  "Plain question?" ') == "Plain question?"
    assert clean_question('Say "hi" and "bye"') == 'Say "hi" and "bye"'


def test_triviaqa_answer_without_value_is_a_row_error(registry):
    with pytest.raises(RowError):
        run(registry, "triviaqa", {"question_id": "x", "question": "Who?", "answer": {"aliases": []}})


# --- GEN -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "instruction,pattern",
    [
        ("Write a short poem about autumn rain.", "alpaca-gen.write"),
        ("Compose a tweet announcing a bake sale.", "alpaca-gen.compose"),
        ("Come up with a slogan for a bicycle shop.", "alpaca-gen.come_up_with"),
        ("Describe a sunrise over the mountains.", "alpaca-gen.describe"),
        ("Generate a list of names for a pet turtle.", "alpaca-gen.generate"),
    ],
)
def test_alpaca_generation_kept(registry, instruction, pattern):
    got = run(registry, "alpaca", {"instruction": instruction, "input": "", "output": "..."})
    assert (got.instruction, got.pattern_id) == (instruction, pattern)


@pytest.mark.parametrize(
    "instruction,given,reason",
    [
        ("Write a poem about this picture.", "a cat on a mat", "has_input"),
        ("Write a Python function that reverses a list.", "", "code"),
        ("Calculate the area of a circle of radius 3.", "", "math"),
        ("Classify these animals as mammals or birds: bat, owl.", "", "classification"),
        ("Rewrite this sentence in the passive voice.", "", "rewriting"),
        ("Summarize the causes of the First World War.", "", "rewriting"),
        ("Write down what the capital of France is?", "", "question"),
        ("List three fruits.", "", "not_generation"),
    ],
)
def test_alpaca_generation_dropped(registry, instruction, given, reason):
    with pytest.raises(Dropped) as err:
        run(registry, "alpaca", {"instruction": instruction, "input": given, "output": "..."})
    assert err.value.reason == reason


# --- MATH ----------------------------------------------------------------------------


def test_math_problem_kept_with_latex_intact(registry):
    problem = "Let $f(x) = \\frac{x^2}{2}$.  Find  $f'(3)$.\n\n[asy]\ndraw((0,0)--(1,1));\n[/asy]"
    got = run(registry, "math500", {"problem": problem, "unique_id": "test/made/1.json"})
    assert got.instruction == "Let $f(x) = \\frac{x^2}{2}$. Find $f'(3)$.\n\n[asy]\ndraw((0,0)--(1,1));\n[/asy]"
    assert got.instruction.split() == problem.split()
