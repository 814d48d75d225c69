"""NearDuplicateIndex and NgramIndex against hand-computed values and a brute-force loop."""

from __future__ import annotations

import random
import re

import pytest

from hexainst.builders.dedup import NearDuplicateIndex, NgramIndex


def _brute_jaccard(a: str, b: str) -> float:
    wa = set(re.sub(r"[^\w\s]", "", a.lower()).split())
    wb = set(re.sub(r"[^\w\s]", "", b.lower()).split())
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / len(wa | wb)


def test_near_duplicate_threshold_by_hand():
    idx = NearDuplicateIndex(threshold=0.7, seed=0)
    idx.add("ocean", "Write a poem about the ocean.")  # {write,a,poem,about,the,ocean}
    idx.add("tax", "Explain how income tax brackets work in Canada.")
    # 5 shared of 7 words = 0.714 >= 0.7
    assert idx.near("write a poem about the SEA!") == ["ocean"]
    # 4 shared of 8 words = 0.5 < 0.7
    assert idx.near("Write a short poem about winter.") == []
    assert idx.near("Explain how income tax brackets work in Canada") == ["tax"]
    assert idx.near("") == []


def test_near_duplicate_orders_by_similarity_and_rejects_duplicate_keys():
    idx = NearDuplicateIndex(threshold=0.5)
    idx.add("k1", "sort the list of numbers in ascending order please")
    idx.add("k2", "sort the list of numbers in ascending order")
    got = idx.near_scored("sort the list of numbers in ascending order")
    assert [k for k, _ in got] == ["k2", "k1"]
    assert got[0][1] == pytest.approx(1.0)
    assert got[1][1] == pytest.approx(8 / 9)
    with pytest.raises(KeyError):
        idx.add("k1", "again")


def test_near_duplicate_matches_brute_force_on_random_texts():
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(40)]
    base = [rng.sample(vocab, 10) for _ in range(30)]
    texts = []
    for b in base:  # each base sentence plus two perturbed copies
        texts.append(" ".join(b))
        for swaps in (1, 3):
            c = list(b)
            for _ in range(swaps):
                c[rng.randrange(len(c))] = rng.choice(vocab)
            texts.append(" ".join(c))
    idx = NearDuplicateIndex(threshold=0.7, seed=0)
    for i, t in enumerate(texts[:60]):
        idx.add(str(i), t)
    for q in texts[60:] + texts[:10]:
        expected = {str(i) for i, t in enumerate(texts[:60]) if _brute_jaccard(q, t) >= 0.7}
        assert set(idx.near(q)) == expected


def test_near_duplicate_is_deterministic():
    texts = [f"describe the history of city number {i} in three sentences" for i in range(20)]
    runs = []
    for _ in range(2):
        idx = NearDuplicateIndex(threshold=0.7, seed=0)
        for i, t in enumerate(texts):
            idx.add(str(i), t)
        runs.append(idx.near("describe the history of city number 3 in three sentences"))
    assert runs[0] == runs[1]
    assert runs[0][0] == "3"


def test_ngram_overlap_counts_shared_13grams():
    source = " ".join(f"word{i}" for i in range(30))  # 30 words -> 18 distinct 13-grams
    idx = NgramIndex(n=13)
    idx.add(source)
    # the query contains words 5..19 (15 words -> 3 13-grams, all in the source)
    query = "Please read: " + " ".join(f"WORD{i}," for i in range(5, 20))
    assert idx.overlap(query) == 3
    assert idx.overlap(" ".join(f"word{i}" for i in range(12))) == 0  # too short
    assert idx.overlap(source) == 18
    assert idx.overlap("completely different " * 10) == 0


def test_ngram_strips_punctuation_and_case():
    idx = NgramIndex(n=3)
    idx.add("Don't stop believing, hold on!")
    assert idx.overlap("dont STOP believing") == 1
    assert idx.overlap("stop. believing? hold") == 1
    assert idx.overlap("believing hold off") == 0
