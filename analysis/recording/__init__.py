"""SPARCOM recording: feed instructions through a causal LM, count positive FFN activations.

Public API::

    from hexainst.analysis.recording import run, RecordingConfig, RecordingResult, ActivationStore, merge_stores

    result = run(RecordingConfig(model="hub/id", out="runs/x"), rows)   # config in, result out

Everything loads on first use (numpy and scipy with the store, torch and transformers with
:func:`record` or the adapters), so that importing :mod:`~hexainst.analysis.recording.config`
for the command line's defaults stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "ActivationStore": "store", "StoreError": "store", "StoreWriter": "store", "make_layout": "store",
    "merge_stores": "store", "write_store": "store", "record": "recorder", "adapter_for": "adapters",
    "RecordingConfig": "config", "run": "recorder", "RecordingResult": "recorder",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
