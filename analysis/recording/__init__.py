"""SPARCOM recording: feed instructions through a causal LM, count positive FFN activations.

Public API::

    from hexainst.analysis.recording import record, ActivationStore, StoreWriter, merge_stores, adapter_for

Heavy modules (torch, transformers) load on first use of :func:`record` or the adapters.
"""

from __future__ import annotations

from typing import Any

from hexainst.analysis.recording.store import ActivationStore, StoreError, StoreWriter, make_layout, merge_stores, write_store

__all__ = [
    "ActivationStore", "StoreError", "StoreWriter", "make_layout", "merge_stores", "write_store",
    "record", "adapter_for",
]


def __getattr__(name: str) -> Any:
    if name == "record":
        from hexainst.analysis.recording.recorder import record

        return record
    if name == "adapter_for":
        from hexainst.analysis.recording.adapters import adapter_for

        return adapter_for
    raise AttributeError(name)
