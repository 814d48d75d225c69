"""Candidate filters; each returns a rejection reason or None. The order is fixed:

1. ``format``: scaffolding or chat phrases, placeholders, text that does not start with a
   letter, digit or quote (:func:`format_reason`);
2. ``too_short`` / ``too_long``: word bounds per category (from the meta-prompt table);
3. ``blacklist``: keywords a text-only model cannot serve (images, files, plots, ...);
4. ``copies_example``: a near-duplicate of one of the meta-prompt's own examples;
5. ``near_duplicate``: word-set Jaccard >= 0.7 with the natural pools or with anything its
   category kept so far (:class:`builders.dedup.NearDuplicateIndex`);
6. ``contamination``: at least one shared word 13-gram with the natural sources
   (:class:`builders.dedup.NgramIndex`, lm-evaluation-harness style).
"""

from __future__ import annotations

import functools
import re

from hexainst.builders.dedup import NearDuplicateIndex, NgramIndex
from hexainst.builders.synthetic.prompts import blacklist, metaprompts
from hexainst.builders.text import word_count

FILTER_REASONS = ("format", "too_short", "too_long", "blacklist", "copies_example", "near_duplicate", "contamination")


@functools.cache
def _blacklist_re() -> re.Pattern[str]:
    words = sorted(blacklist()["keywords"], key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)


def format_reason(text: str) -> str | None:
    """``'format'`` if ``text`` carries chat scaffolding, placeholders or starts oddly, else None."""
    low = text.lower()
    for phrase in blacklist()["scaffolding"]:
        if phrase in low:
            return "format"
    if not re.match(r"[\w\"'(“‘¿¡$\\]", text):
        return "format"
    return None


def length_reason(category: str, text: str) -> str | None:
    spec = metaprompts()["categories"][category]
    n = word_count(text)
    if n < spec["min_words"]:
        return "too_short"
    if n > spec["max_words"]:
        return "too_long"
    return None


def blacklist_hit(text: str) -> str | None:
    """The first blacklisted keyword in ``text`` (whole words, case-insensitive), or None."""
    m = _blacklist_re().search(text)
    return m.group(1).lower() if m else None


class CandidateFilter:
    """The filter chain; remembers what each category kept (for near-duplicates).

    :meth:`check` runs the filters that depend on the text alone (format, length, blacklist,
    copies of the curated examples, near-duplicates of the natural pools, contamination);
    :meth:`check_kept` the near-duplicate test against what the category kept so far. Kept rows
    are indexed per category, so a category's pool depends only on its own slots (a top-up of one
    category leaves the others unchanged).
    """

    def __init__(self, examples: dict[str, list[str]], natural_texts: dict[str, str],
                 threshold: float = 0.7, ngram: int = 13, seed: int = 0) -> None:
        self.threshold, self.seed = threshold, seed
        self.examples = NearDuplicateIndex(threshold=threshold, seed=seed)
        for cat, texts in examples.items():
            for i, t in enumerate(texts):
                self.examples.add(f"example:{cat}:{i}", t)
        self.natural = NearDuplicateIndex(threshold=threshold, seed=seed)
        self.contamination = NgramIndex(n=ngram)
        for key, text in natural_texts.items():
            self.natural.add(f"natural:{key}", text)
            self.contamination.add(text)
        self.kept: dict[str, NearDuplicateIndex] = {}

    def check(self, category: str, text: str) -> tuple[str | None, str]:
        """(reason, detail) for a candidate; (None, '') when it passes every text filter."""
        r = format_reason(text)
        if r:
            return r, "scaffolding, placeholder or odd start"
        r = length_reason(category, text)
        if r:
            return r, f"{word_count(text)} words"
        hit = blacklist_hit(text)
        if hit:
            return "blacklist", hit
        near = self.examples.near(text)
        if near:
            return "copies_example", near[0]
        near = self.natural.near(text)
        if near:
            return "near_duplicate", near[0]
        overlap = self.contamination.overlap(text)
        if overlap:
            return "contamination", f"{overlap} shared 13-grams"
        return None, ""

    def check_kept(self, category: str, text: str) -> tuple[str | None, str]:
        index = self.kept.get(category)
        near = index.near(text) if index is not None else []
        return ("near_duplicate", near[0]) if near else (None, "")

    def keep(self, category: str, key: str, text: str) -> None:
        if category not in self.kept:
            self.kept[category] = NearDuplicateIndex(threshold=self.threshold, seed=self.seed)
        self.kept[category].add(key, text)
