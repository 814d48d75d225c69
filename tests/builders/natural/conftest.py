"""Fixtures for the natural builders: a made-up mini mirror, and one build of the real mirror."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

WORDS = (
    "the committee met on tuesday to review the plans for a new library in the town centre "
    "and members said the building would open next spring after years of delay while local "
    "residents welcomed the news and asked for longer opening hours at weekends"
).split()


WORDS2 = (
    "engineers testing a prototype electric ferry reported that its batteries lasted three "
    "hours longer than expected during winter trials on the northern lake so the operator "
    "now hopes to replace two diesel boats before summer when tourist traffic peaks again"
).split()


def _doc(n: int, vocab: list[str]) -> str:
    return " ".join(vocab[i % len(vocab)] for i in range(n)) + "."


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def flan_rows() -> list[dict]:
    opts = "OPTIONS:\n- World\n- Sports\n- Business\n- Science/Tech"
    arts = [
        "Stocks of Acme rose sharply after a strong quarter.",
        "The national team won the final in extra time.",
        "Astronomers found water ice on a distant moon.",
    ]
    rows = []
    for i, art in enumerate(arts):
        rows.append({"inputs": f"{art}\n\nMulti-choice problem: What is this text about?\n{opts}",
                     "targets": "x", "task_source": "Flan2021", "task_name": "ag_news_subset:1.0.0",
                     "template_type": "zs_opt", "template_idx": 0, "raw_id": f"made:{i}"})
    rows.append({"inputs": f"Write a title:\n{arts[0]}\nTitle:", "targets": "Acme up", "task_source": "Flan2021",
                 "task_name": "ag_news_subset:1.0.0", "template_type": "zs_opt", "template_idx": 8, "raw_id": "made:9"})
    for i, vocab in enumerate([WORDS, WORDS2]):
        doc = _doc(45 + 10 * i, vocab)
        rows.append({"inputs": f"Summarize this article:\n\n{doc}\n\nSummary:", "targets": "s",
                     "task_source": "Flan2021", "task_name": "huggingface:xsum", "template_type": "zs_opt",
                     "template_idx": 1, "raw_id": f"made:x{i}"})
    # A task that no category lists: read, then dropped as task_not_in_category.
    rows.append({"inputs": "Translate to French: good morning", "targets": "bonjour", "task_source": "Flan2021",
                 "task_name": "wmt16_translate/fr-en:1.0.0", "template_type": "zs_opt", "template_idx": 0, "raw_id": "m"})
    return rows


def write_mini_mirror(root: Path) -> Path:
    """A mirror of the same layout as ../shared/sources, with a few made-up rows per source."""
    _jsonl(root / "flan" / "made.jsonl", flan_rows())
    _jsonl(root / "humaneval" / "HumanEval.jsonl.gz", [
        {"task_id": "Made/0",
         "prompt": 'def add(a: int, b: int) -> int:\n    """Add two numbers.\n    >>> add(2, 3)\n    5\n    """\n',
         "entry_point": "add", "canonical_solution": "    return a + b\n", "test": "def check(c):\n    assert c(1, 1) == 2\n"},
        {"task_id": "Made/1",
         "prompt": 'def shout(text: str) -> str:\n    """Return text in capitals followed by an exclamation mark."""\n',
         "entry_point": "shout", "canonical_solution": "    return text.upper() + '!'\n", "test": "def check(c):\n    pass\n"},
    ])
    _jsonl(root / "triviaqa" / "validation_subset.jsonl", [
        {"question_id": "made_0", "question": "Which river flows through Cairo?",
         "answer": {"value": "Nile", "aliases": ["Nile", "River Nile"]}, "source_index": 0},
        {"question_id": "made_1", "question": "In which city is the Louvre?",
         "answer": {"value": "Paris", "aliases": ["Paris"]}, "source_index": 1},
        {"question_id": "made_2", "question": "Paris is the capital of which country?",
         "answer": {"value": "Paris", "aliases": ["Paris"]}, "source_index": 2},
    ])
    _jsonl(root / "alpaca" / "alpaca_made.jsonl", [
        {"instruction": "Write a haiku about a lighthouse.", "input": "", "output": "..."},
        {"instruction": "Compose a limerick about a clumsy cat.", "input": "", "output": "..."},
        {"instruction": "Write a poem about this.", "input": "the sea", "output": "..."},
        {"instruction": "What is two plus two?", "input": "", "output": "4"},
    ])
    _jsonl(root / "math500" / "test.jsonl", [
        {"problem": "What is $\\frac{6}{3} + 1$?", "solution": "3", "answer": "3", "subject": "Algebra", "level": 1,
         "unique_id": "test/made/0.json"},
        {"problem": "Solve $x^2 = 49$ for $x > 0$.", "solution": "7", "answer": "7", "subject": "Algebra", "level": 1,
         "unique_id": "test/made/1.json"},
    ])
    return root


#: Candidates the mini mirror yields per category (worked out by hand from the rows above).
MINI_EXPECTED = {"classification": 3, "code": 2, "generalqa": 2, "generation": 2, "math": 2, "summarization": 2}


@pytest.fixture()
def mini_expected() -> dict[str, int]:
    return dict(MINI_EXPECTED)


@pytest.fixture()
def mini_mirror(tmp_path: Path) -> Path:
    return write_mini_mirror(tmp_path / "mirror")


@pytest.fixture(scope="session")
def real_build(mirror_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """One build of the real offline mirror (seed 0), shared by the integration tests."""
    from stage_runs import natural_pools

    out = tmp_path_factory.mktemp("natural-real")
    report = natural_pools(out, sources_dir=mirror_dir, seed=0, progress=False)
    return out, report
