"""The validation file (``validation.json``): the hand-off from Label Studio to the release.

:func:`write` checks a document against ``validation.v3.schema.json`` and writes it atomically
(temp file, then rename) with stable formatting. :func:`read` is what the release stage calls:
it checks the schema of the file's own version (1, 2 or 3), the uniqueness of ids, that every
outcome's status is what its verdicts decide, and that every id is a known instruction, and raises
:class:`ValidationFileError` naming the entry before anything is applied.

Version 3 holds one or more rounds (``rounds``: each round's annotators, agreement, number of
outcomes and the ids still waiting for the senior); every outcome names its round. :func:`merge`
adds a new round after the rounds of an earlier file. Files of versions 1 and 2 (one round, no
round numbers) are returned upgraded (:func:`upgrade`): one round, round 1; a version-1 file's
verdicts get identity kind ``unrecorded``.
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
from hexainst.kernel.identity import unrecorded
from hexainst.kernel.records import upgrade_verdict
from hexainst.kernel.verdict_rules import decided

FORMAT = "hexainst-validation"
FORMAT_VERSION = 3
#: Versions :func:`read` and :func:`check` accept (a file of an older version is upgraded on read).
READABLE_VERSIONS: tuple[int, ...] = (1, 2, 3)


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
    if version == 3:
        _check_rounds(doc, source)
    _check_statuses(doc, source)


def _check_rounds(doc: Mapping[str, Any], source: str) -> None:
    """Round numbers increase; every outcome names a round of the file; each round counts its own outcomes."""
    numbers = [r["round"] for r in doc["rounds"]]
    for i in range(1, len(numbers)):
        if numbers[i] <= numbers[i - 1]:
            raise ValidationFileError(f"{source}: rounds[{i}]: round {numbers[i]} after round {numbers[i - 1]} "
                                      "(rounds are listed once each, in increasing order)")
    counts = {n: 0 for n in numbers}
    for i, entry in enumerate(doc["outcomes"]):
        if entry["round"] not in counts:
            raise ValidationFileError(f"{source}: outcomes[{i}] (id={entry['id']!r}): round {entry['round']} "
                                      f"is not among the file's rounds ({', '.join(map(str, numbers))})")
        counts[entry["round"]] += 1
    for i, r in enumerate(doc["rounds"]):
        if r["n_outcomes"] != counts[r["round"]]:
            raise ValidationFileError(f"{source}: rounds[{i}] (round {r['round']}): n_outcomes is {r['n_outcomes']} "
                                      f"but {counts[r['round']]} outcomes name this round")


def _check_statuses(doc: Mapping[str, Any], source: str) -> None:
    """Every outcome's status (and corrected text) is what its deciding verdicts say
    (kernel.verdict_rules.decided, the rule the round applies)."""
    for i, entry in enumerate(doc["outcomes"]):
        status, corrected, by = decided(entry["juniors"], entry["senior"])
        where = f"{source}: outcomes[{i}] (id={entry['id']!r})"
        if status is None:
            raise ValidationFileError(f"{where}: status {entry['status']} but the verdicts decide nothing ({by})")
        if status != entry["status"]:
            raise ValidationFileError(f"{where}: status {entry['status']} contradicts {by} ({status})")
        if corrected != entry["corrected_instruction"]:
            raise ValidationFileError(f"{where}: the corrected instruction differs from the one {by} typed")


def upgrade(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A checked document of any readable version in the shape of the current one (a new dict).

    Version 1 -> 2: every verdict gets identity kind ``unrecorded``, the round's annotators are listed
    from the verdicts (role from where they judged, identity unrecorded), and the error-type agreement
    gains ``unsound`` with undefined values (nobody was asked).
    Version 2 -> 3: the file's one round becomes round 1 (its tasks waiting for the senior were only
    counted: ``awaiting_senior`` is null) and every outcome gets ``round`` 1.
    """
    if doc["format_version"] == FORMAT_VERSION:
        return dict(doc)
    v2 = _upgrade_v1(doc) if doc["format_version"] == 1 else doc
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "rounds": [{
            "round": 1,
            "created_from": v2["created_from"],
            "annotators": v2["annotators"],
            "agreement": v2["agreement"],
            "n_outcomes": len(v2["outcomes"]),
            "awaiting_senior": None,
        }],
        "outcomes": [{"id": o["id"], "round": 1, **{k: v for k, v in o.items() if k != "id"}} for o in v2["outcomes"]],
    }


def _upgrade_v1(doc: Mapping[str, Any]) -> dict[str, Any]:
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
        "format_version": 2,
        "created_from": doc["created_from"],
        "annotators": [{"annotator": n, "role": r, "identity": unrecorded()} for n, r in sorted(roles.items())],
        "agreement": agreement,
        "outcomes": outcomes,
    }


def merge(previous: Mapping[str, Any], current: Mapping[str, Any], source: str = "--previous") -> dict[str, Any]:
    """Every round of ``previous`` followed by the rounds of ``current``, renumbered after them.

    Both are checked documents of the current version. An instruction decided in both refuses
    (:class:`ValidationFileError` naming the id and the earlier round): one outcome per id, and a
    second round judges only what the first did not decide. Outcomes are sorted by id.
    """
    last = max(r["round"] for r in previous["rounds"])
    first = min(r["round"] for r in current["rounds"])
    shift = last + 1 - first
    earlier = {o["id"]: o["round"] for o in previous["outcomes"]}
    both = sorted(o["id"] for o in current["outcomes"] if o["id"] in earlier)
    if both:
        more = f" (and {len(both) - 1} more)" if len(both) > 1 else ""
        raise ValidationFileError(
            f"{source}: {both[0]} was already decided in round {earlier[both[0]]} and again in this round{more}; "
            "a new round judges only rows that no earlier round decided"
        )
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "rounds": [*map(dict, previous["rounds"]), *({**r, "round": r["round"] + shift} for r in current["rounds"])],
        "outcomes": sorted(
            [*map(dict, previous["outcomes"]), *({**o, "round": o["round"] + shift} for o in current["outcomes"])],
            key=lambda o: o["id"],
        ),
    }
    check(doc, "merged validation document")
    return doc


def dumps(doc: Mapping[str, Any]) -> str:
    """The canonical text of a validation document (same document, same bytes)."""
    return json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=False) + "\n"


def write(path: str | os.PathLike[str], doc: Mapping[str, Any]) -> Path:
    """Check ``doc`` (of the current version) and write it to ``path`` atomically, readable by its owner only (it
    holds verdicts); return the path. A release's shipped copy is made by the release writer, readable by all."""
    check(doc, f"validation document for {path}")
    if doc["format_version"] != FORMAT_VERSION:
        raise ValidationFileError(f"validation document for {path}: format_version {doc['format_version']}; "
                                  f"only version {FORMAT_VERSION} is written (upgrade it with validation_file.upgrade)")
    return atomic.write_text(path, dumps(doc), mode=0o600)  # verdicts: readable by their owner only


def read(path: str | os.PathLike[str], known_ids: Collection[str] | None) -> dict[str, Any]:
    """Read and check a validation file; every outcome id must be in ``known_ids`` (``None``: not checked).

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
    if known_ids is None:
        return upgrade(doc)
    known = known_ids if isinstance(known_ids, (set, frozenset, dict)) else set(known_ids)
    for i, entry in enumerate(doc["outcomes"]):
        if entry["id"] not in known:
            raise ValidationFileError(
                f"{path}: outcomes[{i}] (id={entry['id']!r}): unknown instruction id "
                "(not among the candidates of this release or its reserve)"
            )
    return upgrade(doc)


def rounds_info(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Who validated in which round, how many candidates each round decided and rejected, each round's kappa.

    ``doc``: a validation document of the current format (``validation_file.read``). ``annotators`` lists
    every annotator of every round once (slot name and role as in their round, first round first);
    each round's ``ids`` are the candidates it decided (so a reader can count the release rows it decided).
    """
    rounds = []
    for r in doc["rounds"]:
        mine = [o for o in doc["outcomes"] if o["round"] == r["round"]]
        ag = r["agreement"]
        rounds.append({
            "round": r["round"],
            "annotators": r["annotators"],
            "n_outcomes": len(mine),
            "n_rejected": sum(1 for o in mine if o["status"] == "rejected"),
            "n_double_annotated": ag["n_double_annotated"],
            "kappa_decision": ag["kappa_decision"],
            "kappa_category_correct": ag["kappa_category_correct"],
            "n_disagreements": ag["n_disagreements"],
            "n_senior_decided": ag["n_senior_decided"],
            "awaiting_senior": r["awaiting_senior"],
            "ids": sorted(o["id"] for o in mine),
        })
    annotators: list[dict[str, Any]] = []
    for r in doc["rounds"]:
        for a in r["annotators"]:
            if a not in annotators:
                annotators.append(a)
    return {"annotators": annotators, "n_outcomes": len(doc["outcomes"]),
            "n_rejected": sum(1 for o in doc["outcomes"] if o["status"] == "rejected"), "rounds": rounds}
