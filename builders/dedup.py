"""Near-duplicate and contamination indexes shared by the natural and synthetic builders.

Two indexes, both pure in-memory Python, both deterministic:

* :class:`NearDuplicateIndex` answers "which already-kept texts is this one a near-duplicate
  of?". The measure is the **exact Jaccard similarity of word-shingle sets** (lower-cased,
  punctuation stripped, shingles of ``shingle_size`` words, default 1 = word sets). A text is a
  near-duplicate of a kept one when that Jaccard is ``>= threshold`` (default 0.7, the
  number Self-Instruct uses for ROUGE-L). MinHash LSH (``datasketch``) only *proposes*
  candidates, with an LSH threshold set below ``threshold`` so that recall is practically
  complete; every candidate is then **verified exactly**, so a reported key is always a true
  near-duplicate and the answer does not depend on MinHash's estimation error beyond the
  (tiny) chance that LSH misses a pair.

  Why Jaccard of word sets and not ROUGE-L: it is computed in O(|a| + |b|) and indexes with
  MinHash, so 10^4 texts de-duplicate in seconds on one core; on short instructions it
  flags the same pairs ROUGE-L > 0.7 flags in Self-Instruct's typical cases ("Write a poem
  about the ocean." / "... the sea." gives 5/7 = 0.71), and it also catches the same long
  passage wrapped in two different templates.

* :class:`NgramIndex` counts shared word n-grams (default n = 13) the way
  lm-evaluation-harness's decontamination does: text lower-cased, punctuation deleted, split
  on whitespace, then every run of ``n`` consecutive words. ``overlap(text)`` is the number
  of *distinct* n-grams of ``text`` that occur in any added text; texts shorter than ``n``
  words have no n-gram and overlap 0.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import regex

__all__ = ["NearDuplicateIndex", "NgramIndex", "jaccard", "shingles", "words"]

# Punctuation and symbols are deleted (not replaced by a space), as lm-eval's janitor does.
_PUNCT = regex.compile(r"[\p{P}\p{S}]+")


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` with punctuation and symbols deleted."""
    return _PUNCT.sub("", text.lower()).split()


def shingles(text: str, size: int = 1) -> frozenset[str]:
    """The set of ``size``-word shingles of ``text`` (a text shorter than ``size`` is one shingle)."""
    toks = words(text)
    if not toks:
        return frozenset()
    if len(toks) < size:
        return frozenset([" ".join(toks)])
    return frozenset(" ".join(toks[i : i + size]) for i in range(len(toks) - size + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a & b| / |a | b|; 0.0 when either set is empty (an empty text is nobody's duplicate)."""
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


class NearDuplicateIndex:
    """Find already-added texts whose word-shingle Jaccard with a query is ``>= threshold``.

    MinHash LSH proposes candidates, exact Jaccard decides (see the module docstring).

    >>> idx = NearDuplicateIndex(threshold=0.7)
    >>> idx.add("a", "Write a poem about the ocean.")
    >>> idx.near("Write a poem about the sea!")
    ['a']
    """

    def __init__(
        self,
        threshold: float = 0.7,
        seed: int = 0,
        *,
        shingle_size: int = 1,
        num_perm: int = 128,
        lsh_margin: float = 0.2,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if shingle_size < 1:
            raise ValueError(f"shingle_size must be >= 1, got {shingle_size}")
        from datasketch import MinHashLSH  # deferred: datasketch (~0.4 s); `hexainst --help` imports this module

        self.threshold = threshold
        self.seed = seed
        self.shingle_size = shingle_size
        self.num_perm = num_perm
        self._lsh = MinHashLSH(threshold=max(0.05, threshold - lsh_margin), num_perm=num_perm)
        self._sets: dict[str, frozenset[str]] = {}
        self._order: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._sets)

    def __contains__(self, key: object) -> bool:
        return key in self._sets

    def _minhash(self, sh: frozenset[str]):
        from datasketch import MinHash  # deferred: datasketch (~0.4 s); `hexainst --help` imports this module

        m = MinHash(num_perm=self.num_perm, seed=self.seed)
        m.update_batch([s.encode("utf-8") for s in sorted(sh)])
        return m

    def add(self, key: str, text: str) -> None:
        """Index ``text`` under ``key`` (keys must be unique; re-adding a key raises ``KeyError``)."""
        if key in self._sets:
            raise KeyError(f"key {key!r} already in the near-duplicate index")
        sh = shingles(text, self.shingle_size)
        self._sets[key] = sh
        self._order[key] = len(self._order)
        if sh:
            self._lsh.insert(key, self._minhash(sh))

    def near(self, text: str) -> list[str]:
        """Keys of added texts with Jaccard ``>= threshold``, most similar first (ties: insertion order)."""
        return [key for key, _ in self.near_scored(text)]

    def near_scored(self, text: str) -> list[tuple[str, float]]:
        """Like :meth:`near`, with the exact Jaccard of each key."""
        sh = shingles(text, self.shingle_size)
        if not sh or not self._sets:
            return []
        hits = []
        for key in self._lsh.query(self._minhash(sh)):
            score = jaccard(sh, self._sets[key])
            if score >= self.threshold:
                hits.append((key, score))
        hits.sort(key=lambda kv: (-kv[1], self._order[kv[0]]))
        return hits


class NgramIndex:
    """Word n-grams of added texts; ``overlap(text)`` counts the distinct n-grams of ``text`` seen.

    >>> idx = NgramIndex(n=3)
    >>> idx.add("The quick brown fox jumps.")
    >>> idx.overlap("A quick, brown fox!")
    1
    """

    def __init__(self, n: int = 13) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        self._grams: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._grams)

    def _grams_of(self, text: str) -> set[bytes]:
        toks = words(text)
        n = self.n
        # 16-byte digests keep memory flat for long sources; collisions are negligible (2^-64).
        return {
            hashlib.blake2b(" ".join(toks[i : i + n]).encode("utf-8"), digest_size=16).digest()
            for i in range(len(toks) - n + 1)
        }

    def add(self, text: str) -> None:
        """Index every word n-gram of ``text``."""
        self._grams |= self._grams_of(text)

    def add_all(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.add(text)

    def overlap(self, text: str) -> int:
        """Number of distinct word n-grams of ``text`` that occur in any added text."""
        return len(self._grams_of(text) & self._grams)
