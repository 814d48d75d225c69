"""The synthetic stage's settings and their defaults: the one home of each (the CLI and the build read them here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexainst.kernel.settings import SettingError, check_ranges, setting
from hexainst.kernel.vocab import CATEGORIES, DEFAULT_SEED

#: Rows the embedded generator decodes together (docs/generators.md: 48, with 64 requests in flight,
#: measured 1.22x faster than 32 and within 2% of 64 on 2 cores).
EMBEDDED_BATCH = 48

#: Weights of the embedded generator: ``auto`` picks bfloat16 where the CPU has it natively, else float32.
EMBEDDED_DTYPES = ("auto", "float32", "bfloat16")

#: The kind of output folder the synthetic stage writes (its marker; see hexainst.kernel.outputs).
OUTPUT_KIND = "synthetic pools"

#: Beside the pools: the cache key of every answer the build used (what its generations file holds).
REQUESTS_NAME = "synthetic-requests.json"


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything a synthetic build needs besides its output folder.

    Each setting's default, range and help are declared here once; :meth:`check` checks them (the
    build calls it first, so a bad value is one line before any work) and raises
    :class:`~hexainst.kernel.settings.SettingError` naming the setting, never a command-line flag.
    """

    #: The pools folder to write (what :func:`hexainst.builders.synthetic.run` writes).
    out_dir: Path | None = setting(
        None, "output folder: new, empty, or an earlier 'build synthetic' output (replaced when complete)")
    #: ``build all`` asks for 100 + each category's reserve, sized from its expected rejection rate.
    per_category: int = setting(
        130, "candidates to keep per category, reserve included (default 130 when this stage runs alone: "
             "100 + a reserve of 30; 'build all': 100 + the reserve its expected rejection rate asks for)",
        low=1, metavar="N")
    #: More candidates for chosen categories on top of ``per_category`` (the top-up after validation):
    #: new slots of the same seeded plan, the same filters, every earlier answer reused.
    extra: Mapping[str, int] = setting(
        default_factory=dict, help="keep N more for CATEGORY (repeatable): new slots of the same plan, earlier rows "
                                   "unchanged", metavar="CATEGORY=N")
    base_url: str | None = setting(
        None, "OpenAI-compatible base URL, e.g. https://api.deepseek.com or http://127.0.0.1:8000/v1 (default: "
              "$HEXAINST_BASE_URL, else DeepSeek with its key, else the embedded local model)", metavar="URL")
    model: str | None = setting(
        None, "model name at that endpoint (default: $HEXAINST_MODEL, else deepseek-reasoner on DeepSeek, else "
              "the first model the endpoint lists)")
    generator: str | None = setting(
        None, "embedded generator when no endpoint is configured (see builders/synthetic/data/generators.json)")
    natural_pool_dir: Path | None = setting(
        None, "folder with <category>.natural.jsonl: in-context examples, near-duplicate and contamination filters",
        metavar="DIR")
    cache_dir: Path | None = setting(
        None, "request cache folder (default: $HEXAINST_CACHE/synthetic, ~/.cache/hexainst/synthetic; "
              "content-addressed, shared by every build)", metavar="DIR")
    offline: bool = setting(False, "rebuild from the request cache alone; a missing entry is an error")
    seed: int = setting(DEFAULT_SEED, "seed for the slot plan, in-context examples and request seeds")
    #: Two: on the development sample, a second candidate gave every slot a usable row (32 -> 36 of 36
    #: slots), while more did not raise the judged quality of the kept rows (docs/generators.md,
    #: "Choosing the score").
    candidates: int = setting(
        2, "candidates generated per slot; the best-scoring one that passes the filters is kept", low=1, high=16)
    temperature: float | None = setting(
        None, "sampling temperature (default: per category, from the meta-prompt table)", low=0, high=2)
    top_p: float | None = setting(None, "nucleus sampling mass (default: per category)", low=0, high=1, low_open=True)
    #: The embedded server decodes ``embedded_batch`` of them together; the rest wait in its queue,
    #: so places that finished rows leave are filled at once.
    concurrency: int = setting(64, "requests in flight at once", low=1, high=256)
    #: Attempt ``a`` changes only the request seed.
    max_attempts: int = setting(2, "requests per candidate when answers are unusable", low=1, high=10)
    timeout: float = setting(120.0, "seconds per request before the SDK retries", low=0, low_open=True)
    max_retries: int = setting(4, "retries per request", low=0, high=20)
    #: Slot budget per category: ``max_slots_factor * target + 20`` slots at most.
    max_slots_factor: float = setting(3.0, "slot budget per category: this many times its target, plus 20", low=1)
    embedded_threads: int | None = setting(
        None, "torch threads of the embedded generator (default: every core; 1 on a busy machine)",
        low=1, high=256, metavar="N")
    #: See :data:`EMBEDDED_BATCH`.
    embedded_batch: int = setting(
        EMBEDDED_BATCH, "rows the embedded generator decodes together (keep the requests in flight above it)", low=1, high=256)
    #: ``auto`` is bfloat16 on a CPU with native bfloat16 (AMX or AVX-512 BF16: 1.7x faster decoding,
    #: 3x faster prefill), else float32.
    embedded_dtype: str = setting(
        "auto", "embedded generator weights (auto: bfloat16 where the CPU has native bfloat16, else float32)",
        choices=EMBEDDED_DTYPES)
    #: Optional Min-K%++ membership scores (see :mod:`hexainst.builders.synthetic.membership`).
    membership_model: str | None = setting(
        None, "reference model: an embedded generator name (e.g. gemma-3-270m), a local folder or a Hub id",
        metavar="MODEL")
    membership_k: float | None = setting(
        None, "fraction of lowest tokens averaged (default 0.2)", low=0, high=1, low_open=True, metavar="K")
    membership_threshold: float | None = setting(
        None, "reject candidates scoring >= S (default: store scores, reject none)", metavar="S")
    progress: bool = setting(True, "no progress bar")

    def replace(self, **changes: Any) -> SyntheticConfig:
        return dataclasses.replace(self, **changes)

    def target(self, category: str) -> int:
        """Candidates to keep for ``category``: ``per_category`` plus its ``extra``."""
        return self.per_category + int(self.extra.get(category, 0))

    def check(self) -> SyntheticConfig:
        """Raise :class:`SettingError` (one line, naming the setting) for a value out of range; return self."""
        check_ranges(self)
        unknown = sorted(set(self.extra) - set(CATEGORIES))
        if unknown:
            raise SettingError("extra", f"names unknown categories {', '.join(unknown)}; expected {', '.join(CATEGORIES)}")
        bad = {c: n for c, n in self.extra.items() if not isinstance(n, int) or isinstance(n, bool) or n < 0}
        if bad:
            raise SettingError("extra", f"counts must be integers >= 0, got {bad}")
        if self.membership_model is None:
            for name in ("membership_threshold", "membership_k"):
                if getattr(self, name) is not None:
                    raise SettingError(name, "needs a membership model (the reference model that scores candidates)")
        return self
