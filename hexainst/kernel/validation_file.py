"""The validation file (``validation.json``): the hand-off from Label Studio to the release.

:func:`write` checks a document against ``validation.schema.json`` and writes it atomically
(temp file, then rename) with sorted, stable formatting. :func:`read` is what the release
assembly calls: it checks the schema, the uniqueness of ids, and that every id is a known
instruction, and raises :class:`ValidationFileError` naming the entry before anything is
applied.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Collection, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from hexainst.kernel import atomic
from hexainst.kernel.errors import UserError

FORMAT = "hexainst-validation"
FORMAT_VERSION = 1


class ValidationFileError(UserError):
    """A validation file is malformed or names an instruction the release does not know."""


@functools.cache
def schema() -> dict[str, Any]:
    """The validation file's JSON Schema (``hexainst/kernel/schema/validation.v1.schema.json``)."""
    return json.loads(resources.files("hexainst.kernel").joinpath("schema", "validation.v1.schema.json").read_text("utf-8"))


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema())
    cls.check_schema(schema())
    return cls(schema())


def _where(doc: Any, error: jsonschema.ValidationError) -> str:
    path = list(error.absolute_path)
    if len(path) >= 2 and path[0] == "outcomes" and isinstance(path[1], int):
        entry = doc["outcomes"][path[1]]
        iid = entry.get("id") if isinstance(entry, Mapping) else None
        rest = ".".join(str(p) for p in path[2:]) or "<entry>"
        return f"outcomes[{path[1]}] (id={iid!r}) field {rest}"
    return "field " + (".".join(str(p) for p in path) or "<document>")


def check(doc: Any, source: str = "validation file") -> None:
    """Raise :class:`ValidationFileError` if ``doc`` breaks the schema or repeats an id."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise ValidationFileError(f"{source}: {_where(doc, first)}: {first.message}{more}")
    seen: dict[str, int] = {}
    for i, entry in enumerate(doc["outcomes"]):
        first_at = seen.setdefault(entry["id"], i)
        if first_at != i:
            raise ValidationFileError(
                f"{source}: outcomes[{i}] (id={entry['id']!r}): duplicate id (first at outcomes[{first_at}])"
            )


def dumps(doc: Mapping[str, Any]) -> str:
    """The canonical text of a validation document (same document, same bytes)."""
    return json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=False) + "\n"


def write(path: str | os.PathLike[str], doc: Mapping[str, Any]) -> Path:
    """Check ``doc`` and write it to ``path`` atomically; return the path."""
    check(doc, f"validation document for {path}")
    return atomic.write_text(path, dumps(doc))


def read(path: str | os.PathLike[str], known_ids: Collection[str]) -> dict[str, Any]:
    """Read and check a validation file; every outcome id must be in ``known_ids``.

    Raises :class:`ValidationFileError` naming the file and the entry (index and id) for a
    file that is not JSON, breaks the schema, repeats an id, or names an unknown instruction.
    Nothing is returned (so nothing can be applied) unless the whole file is valid.
    """
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ValidationFileError(f"{path}: cannot read the validation file: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationFileError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    check(doc, str(path))
    known = known_ids if isinstance(known_ids, (set, frozenset, dict)) else set(known_ids)
    for i, entry in enumerate(doc["outcomes"]):
        if entry["id"] not in known:
            raise ValidationFileError(
                f"{path}: outcomes[{i}] (id={entry['id']!r}): unknown instruction id "
                "(not among the candidates of this release or its reserve)"
            )
    return doc
