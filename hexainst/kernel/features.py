"""The ``datasets.Features`` of a HexaInst release, derived from the record schema's shape.

``category`` and ``source`` are ``ClassLabel`` (names in :mod:`hexainst.kernel.vocab` order); provenance and
validation are nested structs, with null for the provenance kind a row does not have.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from hexainst.kernel.records import upgrade_row
from hexainst.kernel.vocab import CATEGORIES, SOURCES

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    from datasets import Features


def _verdict() -> dict[str, Any]:
    from datasets import List, Value  # deferred: datasets (~0.6 s); `import hexainst` imports this module

    return {
        "annotator": Value("string"),
        "identity": {"kind": Value("string"), "model": Value("string"), "prompt": Value("string"), "how": Value("string")},
        "decision": Value("string"),
        "category_correct": Value("bool"),
        "errors": List(Value("string")),
        "corrected_instruction": Value("string"),
    }


@functools.cache
def release_features() -> Features:
    """Features of every row of the release (and of the reserve)."""
    from datasets import ClassLabel, Features, List, Value  # deferred: datasets (~0.6 s); `import hexainst` loads it

    return Features(
        {
            "id": Value("string"),
            "category": ClassLabel(names=list(CATEGORIES)),
            "source": ClassLabel(names=list(SOURCES)),
            "instruction": Value("string"),
            "license": Value("string"),
            "provenance": {
                "natural": {
                    "source_name": Value("string"),
                    "dataset_id": Value("string"),
                    "revision": Value("string"),
                    "config": Value("string"),
                    "split": Value("string"),
                    "row_id": Value("string"),
                    "task_name": Value("string"),
                    "pattern_id": Value("string"),
                },
                "synthetic": {
                    "generator_model": Value("string"),
                    "endpoint_host": Value("string"),
                    "prompt_id": Value("string"),
                    "prompt_version": Value("string"),
                    "seed": Value("int64"),
                    "request_hash": Value("string"),
                    "topic": Value("string"),
                    "membership_score": Value("float64"),
                    "quality": {
                        "score": Value("float64"),
                        "candidates": Value("int64"),
                        "components": List({"name": Value("string"), "value": Value("float64")}),
                    },
                },
            },
            "validation": {
                "status": Value("string"),
                "original_instruction": Value("string"),
                "juniors": List(_verdict()),
                "senior": _verdict(),
            },
        }
    )


def decode_row(row: dict[str, Any], features: Features | None = None) -> dict[str, Any]:
    """A row as ``datasets`` returns it (ClassLabel ints) turned back into the schema's shape."""
    features = features or release_features()
    out = dict(upgrade_row(row))  # a row of record schema 1 (verdicts without identity) reads as version 2
    for name in ("category", "source"):
        value = out.get(name)
        if isinstance(value, int) or (hasattr(value, "dtype") and hasattr(value, "item")):
            out[name] = features[name].int2str(int(value))
    return out


def decode_rows(rows: Any) -> list[dict[str, Any]]:
    """Rows of a ``datasets.Dataset`` (ClassLabel ints) or plain dicts, as schema-shaped dicts.

    The ClassLabel names come from the dataset's own features when it has them, else from the
    release features; rows that already hold names pass through unchanged.
    """
    features = getattr(rows, "features", None)
    if features is None or not all(hasattr(features.get(k), "int2str") for k in ("category", "source")):
        features = release_features()
    return [decode_row(dict(row), features) for row in rows]


def dataset_from_rows(rows: list[dict[str, Any]]) -> datasets.Dataset:
    """An in-memory ``datasets.Dataset`` of schema rows with the release features."""
    import datasets  # deferred: datasets (~0.6 s); `import hexainst` imports this module

    return datasets.Dataset.from_list(rows, features=release_features())
