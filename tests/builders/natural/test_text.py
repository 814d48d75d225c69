"""builders.text: the normalisation every instruction goes through."""

from __future__ import annotations

import pytest

from hexainst.builders.text import comparison_key, normalize, word_count


def test_nfc_composes_combining_marks():
    decomposed = "Cafe\u0301 au lait"
    out = normalize(decomposed)
    assert out == "Caf\u00e9 au lait"
    assert len(out) == len(decomposed) - 1


def test_control_and_invisible_characters_removed_unicode_spaces_become_space():
    assert normalize("a\x00b\x07c\u200bd\ufeffe") == "abcde"
    assert normalize("x\u00a0y\u2009z\u3000w") == "x y z w"


def test_newlines_are_unified_and_blank_runs_collapse():
    assert normalize("one\r\ntwo\rthree\u2028four") == "one\ntwo\nthree\nfour"
    assert normalize("a\n\n\n\n\nb") == "a\n\nb"


def test_inner_whitespace_collapses_but_indentation_stays():
    text = "  Write   a\tfunction:  \n\ndef f(x):\n    return x\n"
    assert normalize(text) == "Write a function:\n\ndef f(x):\n    return x"


def test_fenced_code_keeps_interior_spacing():
    text = "Fix it:\n```python\nx  =  'a  b'   \n\n\n\ny = 1\n```\nthanks   a lot"
    assert normalize(text) == "Fix it:\n```python\nx  =  'a  b'\n\n\n\ny = 1\n```\nthanks a lot"


def test_latex_is_untouched_apart_from_space_runs():
    problem = r"Find $\frac{1}{2}  +  \sqrt{x^2}$ where  $x \in \mathbb{R}$."
    assert normalize(problem) == r"Find $\frac{1}{2} + \sqrt{x^2}$ where $x \in \mathbb{R}$."


def test_keep_indentation_false_strips_line_starts():
    assert normalize(" NEW YORK -\n   Stocks rose.", keep_indentation=False) == "NEW YORK -\nStocks rose."


@pytest.mark.parametrize(
    "text",
    ["  a  b \n\n\n c", "x\r\ny\u00a0z", "```\n a  b \n```\n  c   d", "e\u0301\tf"],
)
def test_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once


def test_rejects_non_string():
    with pytest.raises(TypeError):
        normalize(None)  # type: ignore[arg-type]


def test_word_count_and_comparison_key():
    assert word_count("a  b\nc\t d") == 4
    assert word_count("") == 0
    assert comparison_key("Write a Poem.\n") == comparison_key("write  a poem.")
    assert comparison_key("Write a poem.") != comparison_key("Write a song.")
