"""The dataset card laid out by its template (cards/hexainst.md): what Python decides reaches the card.

The committed card itself is re-rendered from its committed inputs by tests/dataset/test_rebuild.py
(slow: the build's stage reports and validation rounds are the rest of its input); these tests drive
the template with made-up rows.
"""

from __future__ import annotations

from collections import Counter

import jinja2
import pytest

from hexainst.kernel.card import CARDS_DIR, render_card
from hexainst.kernel.templating import environment

from .conftest import make_rows

COLLECTION_END = "Selection of 100 + 100 rows per category is seeded and deterministic."


def _card(rows: list[dict]) -> str:
    counts = dict(Counter(r["category"] for r in rows))
    return str(render_card(rows, [], counts, {}))


def test_the_membership_sentence_states_the_scores_range() -> None:
    rows = make_rows(2)
    synthetic = [r for r in rows if r["source"] == "synthetic"]
    scores = [0.25, -1.5, 3.125]
    for r, s in zip(synthetic, scores):
        r["provenance"]["synthetic"]["membership_score"] = s
    card = _card(rows)
    paragraph = next(line for line in card.splitlines() if COLLECTION_END in line)
    assert paragraph.endswith(
        f"{COLLECTION_END} 3 synthetic rows carry a Min-K%++ membership score under a local reference model "
        "(`provenance.synthetic.membership_score`, from -1.500 to 3.125; higher looks more like the reference "
        "model's training data); the model, k and threshold are in the synthetic stage's report.")


def test_without_scores_the_collection_paragraph_ends_at_the_selection() -> None:
    card = _card(make_rows(2))
    assert f"\n{COLLECTION_END}\n" not in card  # one paragraph, not a line of its own
    assert card.count(COLLECTION_END) == 1
    assert next(line for line in card.splitlines() if COLLECTION_END in line).endswith(COLLECTION_END)
    assert "Min-K%++" not in card


def test_the_card_counts_cells_from_the_rows() -> None:
    card = _card(make_rows(2))
    assert "| classification | 2 | 2 | 4 |" in card and "| generation | 0 | 0 | 0 |" in card
    assert "(12 in all; **not** the complete 6 x (100 + 100) release)" in card
    assert "This release was written from test rows: it is not HexaInst." in card


def test_a_name_the_template_does_not_get_is_an_error_not_an_empty_string() -> None:
    env = environment(CARDS_DIR, trim_blocks=False, lstrip_blocks=False)
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("hexainst.md").render(card_data="x: 1")
