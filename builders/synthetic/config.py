"""The synthetic stage's settings and their defaults: the one home of each (the CLI and the build read them here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hexainst.kernel.errors import UserError
from hexainst.kernel.vocab import CATEGORIES, DEFAULT_SEED

#: Rows the embedded generator decodes together (docs/generators.md: 48, with 64 requests in flight,
#: measured 1.22x faster than 32 and within 2% of 64 on 2 cores).
EMBEDDED_BATCH = 48

#: Weights of the embedded generator: ``auto`` picks bfloat16 where the CPU has it natively, else float32.
EMBEDDED_DTYPES = ("auto", "float32", "bfloat16")

#: The kind of output folder the synthetic stage writes (its marker; see hexainst.kernel.outputs).
OUTPUT_KIND = "synthetic pools"


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything a synthetic build needs besides its output folder.

    Numbers are range-checked by :meth:`check` (the build calls it first, so a bad value is one
    line before any work).
    """

    #: Candidates kept per category when this stage runs alone (100 for the release + a reserve of 30);
    #: ``build all`` asks for 100 + each category's reserve, sized from its expected rejection rate.
    per_category: int = 130
    #: More candidates for chosen categories on top of ``per_category`` (the top-up after validation):
    #: new slots of the same seeded plan, the same filters, every earlier answer reused.
    extra: Mapping[str, int] = field(default_factory=dict)
    #: An OpenAI-compatible base URL; ``None`` reads ``$HEXAINST_BASE_URL``, else DeepSeek (with its key) or the embedded model.
    base_url: str | None = None
    #: Model name at that endpoint; ``None``: ``$HEXAINST_MODEL``, else the first model the endpoint lists.
    model: str | None = None
    #: Embedded generator (``data/generators.json``) when no endpoint is configured.
    generator: str | None = None
    #: Folder with ``<category>.natural.jsonl``: in-context examples, near-duplicate and contamination filters.
    natural_pool_dir: Path | None = None
    #: Request cache; ``None``: ``$HEXAINST_CACHE/synthetic`` (content-addressed, shared by every build).
    cache_dir: Path | None = None
    #: Replay from the cache alone; a missing entry is an error naming it.
    offline: bool = False
    seed: int = DEFAULT_SEED
    #: Candidates generated per slot; the best-scoring one that passes every filter is kept. Two: on the
    #: development sample, a second candidate gave every slot a usable row (32 -> 36 of 36 slots), while
    #: more did not raise the judged quality of the kept rows (docs/generators.md, "Choosing the score").
    candidates: int = 2
    #: Sampling temperature and nucleus of every request (``None``: the meta-prompt table's per-category value).
    temperature: float | None = None
    top_p: float | None = None
    #: Requests in flight at once. The embedded server decodes ``embedded_batch`` of them together;
    #: the rest wait in its queue, so places that finished rows leave are filled at once.
    concurrency: int = 64
    #: Requests per candidate when answers are unusable (attempt ``a`` changes only the request seed).
    max_attempts: int = 2
    #: Seconds per request before the SDK retries; retries per request.
    timeout: float = 120.0
    max_retries: int = 4
    #: Slot budget per category: ``max_slots_factor * target + 20`` slots at most.
    max_slots_factor: float = 3.0
    #: Torch threads of the embedded generator (``None``: the machine's cores).
    embedded_threads: int | None = None
    #: Rows the embedded generator decodes together (see :data:`EMBEDDED_BATCH`).
    embedded_batch: int = EMBEDDED_BATCH
    #: The embedded generator's weights: ``auto`` is bfloat16 on a CPU with native bfloat16 (AMX or
    #: AVX-512 BF16: 1.7x faster decoding, 3x faster prefill), else float32.
    embedded_dtype: str = "auto"
    #: Optional Min-K%++ membership scores (see :mod:`hexainst.builders.synthetic.membership`).
    membership_model: str | None = None
    membership_k: float | None = None
    membership_threshold: float | None = None
    progress: bool = True

    def replace(self, **changes: Any) -> "SyntheticConfig":
        return dataclasses.replace(self, **changes)

    def target(self, category: str) -> int:
        """Candidates to keep for ``category``: ``per_category`` plus its ``extra``."""
        return self.per_category + int(self.extra.get(category, 0))

    def check(self) -> "SyntheticConfig":
        """Raise :class:`UserError` (one line) for a value out of range; return self."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise UserError(message)

        need(self.per_category >= 1, f"--per-category must be >= 1, got {self.per_category}")
        unknown = sorted(set(self.extra) - set(CATEGORIES))
        need(not unknown, f"--extra: unknown categories {', '.join(unknown)}; expected {', '.join(CATEGORIES)}")
        bad = {c: n for c, n in self.extra.items() if not isinstance(n, int) or n < 0}
        need(not bad, f"--extra: counts must be integers >= 0, got {bad}")
        need(1 <= self.candidates <= 16, f"--candidates must be in 1..16, got {self.candidates}")
        need(self.temperature is None or 0 <= self.temperature <= 2, f"--temperature must be in [0, 2], got {self.temperature}")
        need(self.top_p is None or 0 < self.top_p <= 1, f"--top-p must be in (0, 1], got {self.top_p}")
        need(1 <= self.concurrency <= 256, f"--concurrency must be in 1..256, got {self.concurrency}")
        need(1 <= self.max_attempts <= 10, f"--max-attempts must be in 1..10, got {self.max_attempts}")
        need(self.timeout > 0, f"--timeout must be > 0 seconds, got {self.timeout}")
        need(0 <= self.max_retries <= 20, f"--max-retries must be in 0..20, got {self.max_retries}")
        need(1 <= self.embedded_batch <= 256, f"--embedded-batch must be in 1..256, got {self.embedded_batch}")
        need(self.embedded_dtype in EMBEDDED_DTYPES,
             f"--embedded-dtype must be auto, float32 or bfloat16, got {self.embedded_dtype!r}")
        need(self.max_slots_factor >= 1, f"max_slots_factor must be >= 1, got {self.max_slots_factor}")
        need(self.embedded_threads is None or 1 <= self.embedded_threads <= 256,
             f"--threads must be in 1..256, got {self.embedded_threads}")
        if self.membership_model is None:
            need(self.membership_threshold is None and self.membership_k is None,
                 "--membership-threshold and --membership-k need --membership-model")
        need(self.membership_k is None or 0 < self.membership_k <= 1, f"--membership-k must be in (0, 1], got {self.membership_k}")
        return self
