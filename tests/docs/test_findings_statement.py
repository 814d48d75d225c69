"""README and the dataset card state what the analyses showed in the same words, with the reports' numbers.

The statement lives once, in ``cards/analysis_findings.md``; the card template includes it and the README
quotes it. Each number it gives must be one the cited report prints, so a regenerated report with other
numbers fails here until the statement is rewritten.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATEMENT = ROOT / "cards" / "analysis_findings.md"


def _words(text: str) -> str:
    return " ".join(text.split())


def test_readme_and_committed_card_carry_the_statement_word_for_word():
    statement = _words(STATEMENT.read_text(encoding="utf-8"))
    assert len(statement) > 400
    assert statement in _words((ROOT / "README.md").read_text(encoding="utf-8"))
    assert statement in _words((ROOT / "hexainst" / "README.md").read_text(encoding="utf-8"))


#: (what the statement writes, the report, a pattern the report prints for the same value)
NUMBERS = [
    ("+0.055 (95% CI [+0.049, +0.097])", "docs/demo/report.md", r"excess \*\*\+0\.0550 \[\+0\.0485, \+0\.0967\]\*\*"),
    ("+0.028 ([+0.018, +0.049])", "docs/demo/report.md",
     r"length-matched pairs the model \+0\.0598, untrained \+0\.0316, excess \*\*\+0\.0281 \[\+0\.0177, \+0\.0490\]\*\*"),
    ("(same over cross, 1.23)", "docs/demo/report.md", r"the model reads \*\*1\.227\*\*"),
    ("5.5 times higher", "docs/demo/report.md", r"0\.462 for the model and 0\.084 untrained \(5\.5x\)"),
    ("(1.54 to 1.66)", "docs/demo/report.md", r"the untrained seeds 1\.660 / 1\.604 / 1\.538"),
    ("3 of 6 categories (chance 1; p = 0.05)", "docs/demo-smollm2/report.md",
     r"own set the most damaging in 3 of 6 categories \(chance 1; 3 or more: p = 0\.0500\)"),
    ("+0.010 ([-0.003, +0.031])", "docs/demo/report.md",
     r"coefficient of the length regression \|[^\n]*\| \+0\.0103 \[-0\.0027, \+0\.0312\]; p <= 0\.0020[^|]*\|$"),
    ("(p = 0.29)", "docs/demo/report.md", r"assignment test p = 0\.29\d\d"),
    ("-0.008 ([-0.059, +0.011])", "docs/demo-smollm2/report.md", r"excess \*\*-0\.0084 \[-0\.0594, \+0\.0110\]\*\*"),
    ("(p = 0.0097)", "docs/demo-smollm2/report.md", r"assignment test p = 0\.0097"),
]


def test_every_number_of_the_statement_is_the_cited_reports():
    statement = _words(STATEMENT.read_text(encoding="utf-8"))
    for written, report, pattern in NUMBERS:
        assert written in statement, written
        assert re.search(pattern, (ROOT / report).read_text(encoding="utf-8"), re.MULTILINE), (written, report)
    # and no number is quoted that this list does not check
    quoted = re.findall(r"[+-]?\d\.\d+|p = \d\.\d+", statement)
    checked = " ".join(w for w, _, _ in NUMBERS)
    assert all(q in checked for q in quoted), [q for q in quoted if q not in checked]
