"""What the analysis reads: an activation store, the base-vs-fine-tuned comparability check, and the rows
(instruction texts and provenance) from a rows file or a release."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hexainst.analysis.recording.store import ActivationStore
from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import read_jsonl
from hexainst.kernel.release import read_release_rows


class ComparisonError(UserError):
    """Two stores cannot be compared (different tokenizer, input policy or instructions)."""


@dataclass
class StoreData:
    """Arrays of one store for the selected rows (the store's own order).

    counts: uint16 [n, n_cols] (scipy CSR for MoE); n_tokens: int32 [n]; routing: int32
    [n, n_layers, n_experts] or None; neuron_layer/neuron_expert: int16 [n_cols].
    """

    label: str
    path: str
    header: dict[str, Any]
    ids: list[str]
    categories: list[str]
    rows: np.ndarray
    n_tokens: np.ndarray
    counts: Any
    routing: np.ndarray | None
    neuron_layer: np.ndarray
    neuron_expert: np.ndarray
    neuron_index: np.ndarray
    n_layers: int
    n_experts: int
    is_moe: bool
    has_sums: bool
    _store: Any = None

    @classmethod
    def load(cls, store: Any, label: str, rows: np.ndarray | None = None) -> StoreData:
        """Read counts, T and routing of ``rows`` (default: all) from an ``ActivationStore``."""
        all_rows = np.arange(len(store.ids), dtype=np.int64)
        rows = all_rows if rows is None else np.asarray(rows, dtype=np.int64)
        routing = store.routing
        return cls(
            label=label,
            path=str(getattr(store, "path", "")),
            header=store.header,
            ids=[store.ids[int(r)] for r in rows],
            categories=[store.categories[int(r)] for r in rows],
            rows=rows,
            n_tokens=np.asarray(store.n_tokens, dtype=np.int32)[rows],
            counts=store.counts(rows),
            routing=None if routing is None else np.asarray(routing, dtype=np.int32)[rows],
            neuron_layer=np.asarray(store.neuron_layer),
            neuron_expert=np.asarray(store.neuron_expert),
            neuron_index=np.asarray(getattr(store, "neuron_index", np.zeros(0, np.int32))),
            n_layers=int(store.n_layers),
            n_experts=int(store.n_experts),
            is_moe=bool(store.is_moe),
            has_sums=bool(store.header.get("layout", {}).get("with_sums")),
            _store=store,
        )

    def sums(self) -> Any:
        """float32 [n, n_cols] activation sums of the selected rows, or None."""
        return self._store.sums(self.rows) if self.has_sums else None

    def routing_frequencies(self) -> np.ndarray | None:
        """F(I): routing / T flattened over (layer, expert): float64 [n, n_layers * n_experts]."""
        if self.routing is None:
            return None
        f = self.routing.astype(np.float64) / self.n_tokens.astype(np.float64)[:, None, None]
        return f.reshape(f.shape[0], -1)

    @property
    def model_name(self) -> str:
        """The model's Hub id or the last part of its local path (for titles)."""
        name = str(self.header.get("model", {}).get("name_or_path") or self.path)
        return Path(name).name if os.path.isabs(name) else name


def open_store(path: str | os.PathLike[str]) -> Any:
    """Open an activation store folder (``hexainst.analysis.recording.store.ActivationStore``)."""
    return ActivationStore.open(Path(path))


def check_comparable(a: Any, b: Any) -> np.ndarray:
    """Check two stores can be compared; return, for each row of a, the row of b with its id.

    Errors (:class:`ComparisonError`) unless both used the same tokenizer (sha256), the same
    input policy and the same instruction ids.
    """
    name_a, name_b = str(getattr(a, "path", "A")), str(getattr(b, "path", "B"))
    tok_a = (a.header.get("tokenizer") or {}).get("sha256")
    tok_b = (b.header.get("tokenizer") or {}).get("sha256")
    if not tok_a or not tok_b or tok_a != tok_b:
        raise ComparisonError(
            f"stores {name_a} and {name_b} used different tokenizers (sha256 {tok_a} vs {tok_b}); "
            "base and fine-tuned models are only comparable on identical inputs"
        )
    pol_a, pol_b = a.header.get("input_policy"), b.header.get("input_policy")
    if pol_a != pol_b:
        raise ComparisonError(
            f"stores {name_a} and {name_b} used different input policies ({json.dumps(pol_a, sort_keys=True)} "
            f"vs {json.dumps(pol_b, sort_keys=True)}); record both with the same policy"
        )
    ids_a, ids_b = list(a.ids), list(b.ids)
    if set(ids_a) != set(ids_b) or len(ids_a) != len(ids_b):
        only_a = sorted(set(ids_a) - set(ids_b))[:3]
        only_b = sorted(set(ids_b) - set(ids_a))[:3]
        raise ComparisonError(
            f"stores {name_a} and {name_b} hold different instructions ({len(ids_a)} vs {len(ids_b)}; "
            f"only in the first: {only_a}, only in the second: {only_b})"
        )
    texts_b = {row["id"]: row.get("text_sha256") for row in b.header.get("instructions", [])}
    changed = [row["id"] for row in a.header.get("instructions", [])
               if row.get("text_sha256") and texts_b.get(row["id"]) and row["text_sha256"] != texts_b[row["id"]]]
    if changed:
        raise ComparisonError(
            f"stores {name_a} and {name_b} were recorded from different texts of {len(changed)} instruction(s) "
            f"with the same id (first: {changed[0]!r}); base and fine-tuned models are only comparable on identical "
            "inputs: record both from the same release"
        )
    if a.n_cols != b.n_cols or not np.array_equal(a.neuron_layer, b.neuron_layer):
        raise ComparisonError(
            f"stores {name_a} and {name_b} have different neuron layouts ({a.n_cols} vs {b.n_cols} columns)"
        )
    pos_b = {i: k for k, i in enumerate(ids_b)}
    return np.array([pos_b[i] for i in ids_a], dtype=np.int64)


def header_summary(header: dict[str, Any]) -> dict[str, Any]:
    """A store header for the report: everything but the per-instruction list, which is summarised."""
    out = {k: v for k, v in header.items() if k != "instructions"}
    instr = header.get("instructions", [])
    ids = [row["id"] for row in instr]
    out["instructions"] = {
        "n": len(instr),
        "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
    }
    if "layout" in out:
        out["layout"] = {k: v for k, v in out["layout"].items() if k != "blocks"}
        out["layout"]["n_blocks"] = len(header["layout"].get("blocks", []))
    return out


def read_rows(rows_file: str | os.PathLike[str] | None, release: str | os.PathLike[str] | None, *,
              what: str) -> list[dict[str, Any]]:
    """Rows from ``rows_file`` (JSONL), else from ``release`` (default: the packaged release), each with an
    id, a category and an instruction (else one line naming the row and ``what`` they are read for)."""
    rows = read_jsonl(rows_file, what="rows file") if rows_file else read_release_rows(release)
    for n, row in enumerate(rows, 1):
        missing = [k for k in ("id", "category", "instruction") if k not in row]
        if missing:
            where = rows_file or release or "the packaged release"
            raise UserError(f"{where}: row {n} ({row.get('id', 'no id')}) has no {', '.join(missing)} ({what})")
    return rows
