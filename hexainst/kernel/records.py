"""Record construction and schema validation.

Every row that flows between stages (candidate pools, the reserve, the release) is a plain
``dict`` of the shape ``schema/record.v2.schema.json`` describes. This module builds such rows
and checks them, naming the row and the field on failure. Rows of version 1 (no ``unsound``, verdicts
without ``identity``) are read through :func:`upgrade_row`, which every reader of stored rows calls.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import jsonschema

from hexainst.kernel.errors import UserError
from hexainst.kernel.identity import unrecorded
from hexainst.kernel.vocab import CATEGORIES, SCHEMA_VERSION

SCHEMA_FILE = f"record.v{SCHEMA_VERSION}.schema.json"


class RecordError(UserError, ValueError):
    """A row does not satisfy the record schema (or a release-wide rule such as unique ids)."""


@functools.cache
def record_schema() -> dict[str, Any]:
    """The record JSON Schema, as a dict."""
    text = resources.files("hexainst.kernel").joinpath("schema", SCHEMA_FILE).read_text("utf-8")
    return json.loads(text)


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    schema = record_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def make_id(category: str, source: str, key: str) -> str:
    """The stable id of a row: ``<category>-<nat|syn>-<12 hex>`` from its provenance key.

    ``key`` must identify the row's origin (for natural rows: dataset, config, split, row id
    and pattern; for synthetic rows: the request hash and the item's index in the answer),
    so that rebuilding from the same inputs gives the same id.
    """
    if category not in CATEGORIES:
        raise RecordError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
    tag = {"natural": "nat", "synthetic": "syn"}.get(source)
    if tag is None:
        raise RecordError(f"unknown source {source!r}; expected natural or synthetic")
    digest = hashlib.sha256(f"{category}\x1f{source}\x1f{key}".encode()).hexdigest()[:12]
    return f"{category}-{tag}-{digest}"


def upgrade_verdict(verdict: Any) -> Any:
    """A version-1 verdict (no ``identity``) with identity kind ``unrecorded``; anything else unchanged."""
    if isinstance(verdict, Mapping) and "identity" not in verdict:
        return {"annotator": verdict.get("annotator"), "identity": unrecorded(),
                **{k: v for k, v in verdict.items() if k != "annotator"}}
    return verdict


def upgrade_row(row: Any) -> Any:
    """A row of record schema 1 in the shape of version 2 (its verdicts get identity ``unrecorded``).

    Rows already of version 2, and anything that is not a row, pass through unchanged (the schema check
    that follows names what is wrong). The input is not modified.
    """
    if not isinstance(row, Mapping) or not isinstance(row.get("validation"), Mapping):
        return row
    validation = row["validation"]
    juniors = validation.get("juniors")
    senior = validation.get("senior")
    needs = (isinstance(juniors, list) and any(isinstance(v, Mapping) and "identity" not in v for v in juniors)) or (
        isinstance(senior, Mapping) and "identity" not in senior
    )
    if not needs:
        return row
    new_validation = dict(validation)
    if isinstance(juniors, list):
        new_validation["juniors"] = [upgrade_verdict(v) for v in juniors]
    new_validation["senior"] = upgrade_verdict(senior)
    return {**row, "validation": new_validation}


def pending_validation() -> dict[str, Any]:
    """The validation block of a row nobody has checked yet."""
    return {"status": "pending", "original_instruction": None, "juniors": [], "senior": None}


def natural_row(
    *,
    category: str,
    instruction: str,
    license: str,
    source_name: str,
    dataset_id: str,
    revision: str,
    config: str | None,
    split: str,
    row_id: str,
    task_name: str | None,
    pattern_id: str,
) -> dict[str, Any]:
    """A pending natural row with its provenance and stable id."""
    key = "\x1f".join([dataset_id, config or "", split, row_id, pattern_id])
    return {
        "id": make_id(category, "natural", key),
        "category": category,
        "source": "natural",
        "instruction": instruction,
        "license": license,
        "provenance": {
            "natural": {
                "source_name": source_name,
                "dataset_id": dataset_id,
                "revision": revision,
                "config": config,
                "split": split,
                "row_id": row_id,
                "task_name": task_name,
                "pattern_id": pattern_id,
            },
            "synthetic": None,
        },
        "validation": pending_validation(),
    }


def synthetic_row(
    *,
    category: str,
    instruction: str,
    generator_model: str,
    endpoint_host: str,
    prompt_id: str,
    prompt_version: str,
    seed: int,
    request_hash: str,
    item_index: int,
    topic: str | None = None,
    membership_score: float | None = None,
    quality: dict[str, Any] | None = None,
    license: str = "other",
) -> dict[str, Any]:
    """A pending synthetic row; ``item_index`` is the instruction's place in the model's answer.

    ``quality``: the synthetic builder's automatic score of the kept candidate,
    ``{"score": float, "candidates": int, "components": [{"name": str, "value": float}, ...]}``.
    """
    return {
        "id": make_id(category, "synthetic", f"{request_hash}\x1f{item_index}"),
        "category": category,
        "source": "synthetic",
        "instruction": instruction,
        "license": license,
        "provenance": {
            "natural": None,
            "synthetic": {
                "generator_model": generator_model,
                "endpoint_host": endpoint_host,
                "prompt_id": prompt_id,
                "prompt_version": prompt_version,
                "seed": seed,
                "request_hash": request_hash,
                "topic": topic,
                "membership_score": membership_score,
                "quality": quality,
            },
        },
        "validation": pending_validation(),
    }


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "<row>"
    if error.validator == "required":
        return f"field {path}: {error.message}"
    return f"field {path!r}: {error.message}"


def validate_row(row: Mapping[str, Any], where: str = "row") -> None:
    """Raise :class:`RecordError` naming ``where`` and the field if ``row`` breaks the schema."""
    errors = sorted(_validator().iter_errors(row), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        rid = row.get("id") if isinstance(row, Mapping) else None
        label = f"{where} (id={rid})" if rid else where
        details = "; ".join(_describe(e) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise RecordError(f"{label}: {details}{more}")


def validate_rows(rows: Iterable[Mapping[str, Any]], where: str = "rows") -> list[Mapping[str, Any]]:
    """Validate every row and the uniqueness of ids; return the rows as a list.

    ``where`` names the collection (a file, a pool) in error messages; rows are numbered from 0.
    """
    checked = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        validate_row(row, f"{where} row {i}")
        first = seen.setdefault(row["id"], i)
        if first != i:
            raise RecordError(f"{where} row {i}: field 'id': duplicate id {row['id']!r} (first at row {first})")
        checked.append(row)
    return checked
