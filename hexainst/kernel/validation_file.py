"""The validation file (``validation.json``): the hand-off from Label Studio to the release.

:func:`write` checks a document against ``validation.v2.schema.json`` and writes it atomically
(temp file, then rename) with stable formatting. :func:`read` is what the release assembly calls:
it checks the schema of the file's own version (1 or 2), the uniqueness of ids, and that every id
is a known instruction, and raises :class:`ValidationFileError` naming the entry before anything
is applied. A version-1 file (before the error ``unsound`` and the annotators' identities) is
returned upgraded to version 2: its verdicts get identity kind ``unrecorded``.
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
FORMAT_VERSION = 2
#: Versions :func:`read` and :func:`check` accept (a file of an older version is upgraded on read).
READABLE_VERSIONS: tuple[int, ...] = (1, 2)


class ValidationFileError(UserError):
    """A validation file is malformed or names an instruction the release does not know."""


@functools.cache
def schema(version: int = FORMAT_VERSION) -> dict[str, Any]:
    """The validation file's JSON Schema of ``version`` (``hexainst/kernel/schema/validation.v<N>.schema.json``)."""
    name = f"validation.v{version}.schema.json"
    return json.loads(resources.files("hexainst.kernel").joinpath("schema", name).read_text("utf-8"))


@functools.cache
def _validator(version: int = FORMAT_VERSION) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema(version))
    cls.check_schema(schema(version))
    return cls(schema(version))


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
    version = doc.get("format_version") if isinstance(doc, Mapping) else None
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        version = FORMAT_VERSION  # the current schema names what is wrong
    errors = sorted(_validator(version).iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
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


def upgrade(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A checked document of any readable version in the shape of the current one (a new dict).

    Version 1 -> 2: every verdict gets identity kind ``unrecorded``, the round's annotators are listed
    from the verdicts (role from where they judged, identity unrecorded), and the error-type agreement
    gains ``unsound`` with undefined values (nobody was asked).
    """
    from hexainst.kernel.identity import unrecorded
    from hexainst.kernel.records import upgrade_verdict

    if doc["format_version"] == FORMAT_VERSION:
        return dict(doc)
    outcomes = [
        {**o, "juniors": [upgrade_verdict(v) for v in o["juniors"]], "senior": upgrade_verdict(o["senior"])}
        for o in doc["outcomes"]
    ]
    roles: dict[str, str] = {}
    for o in outcomes:
        for v in o["juniors"]:
            roles.setdefault(v["annotator"], "junior")
        if o["senior"] is not None:
            roles.setdefault(o["senior"]["annotator"], "senior")
    agreement = dict(doc["agreement"])
    agreement["error_type_agreement"] = {**agreement["error_type_agreement"], "unsound": {"kappa": None, "percent": None}}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_from": doc["created_from"],
        "annotators": [{"annotator": n, "role": r, "identity": unrecorded()} for n, r in sorted(roles.items())],
        "agreement": agreement,
        "outcomes": outcomes,
    }


def dumps(doc: Mapping[str, Any]) -> str:
    """The canonical text of a validation document (same document, same bytes)."""
    return json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=False) + "\n"


def write(path: str | os.PathLike[str], doc: Mapping[str, Any]) -> Path:
    """Check ``doc`` (of the current version) and write it to ``path`` atomically; return the path."""
    check(doc, f"validation document for {path}")
    if doc["format_version"] != FORMAT_VERSION:
        raise ValidationFileError(f"validation document for {path}: format_version {doc['format_version']}; "
                                  f"only version {FORMAT_VERSION} is written (upgrade it with validation_file.upgrade)")
    return atomic.write_text(path, dumps(doc))


def read(path: str | os.PathLike[str], known_ids: Collection[str]) -> dict[str, Any]:
    """Read and check a validation file; every outcome id must be in ``known_ids``.

    Raises :class:`ValidationFileError` naming the file and the entry (index and id) for a
    file that is not JSON, breaks the schema, repeats an id, or names an unknown instruction.
    Nothing is returned (so nothing can be applied) unless the whole file is valid. A file of an
    older format version is returned upgraded to the current one (:func:`upgrade`).
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
    return upgrade(doc)
