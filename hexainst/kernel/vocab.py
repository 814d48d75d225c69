"""The fixed vocabularies of HexaInst.

The order of ``CATEGORIES`` and ``SOURCES`` is part of the release format: they are the
``ClassLabel`` names, so the integer a row stores means the same thing in every release.
Never reorder them; append only, and bump ``SCHEMA_VERSION`` when you do.
"""

from __future__ import annotations

#: Category names, in ClassLabel order.
CATEGORIES: tuple[str, ...] = (
    "classification",
    "code",
    "generalqa",
    "generation",
    "math",
    "summarization",
)

#: The paper's short names for the categories.
SHORT_NAMES: dict[str, str] = {
    "classification": "CLS",
    "code": "CODE",
    "generalqa": "QA",
    "generation": "GEN",
    "math": "MATH",
    "summarization": "SUM",
}

#: Where an instruction comes from, in ClassLabel order.
SOURCES: tuple[str, ...] = ("natural", "synthetic")

#: Validation outcomes a row can carry (see the annotation package).
VALIDATION_STATUSES: tuple[str, ...] = ("pending", "accepted", "revised", "rejected")

#: The decisions an annotator can take.
DECISIONS: tuple[str, ...] = ("accept", "revise", "reject")

#: The error types annotators check for: the paper's Appendix B, then ``unsound`` (a false premise, no
#: definite answer, contradictory numbers, an incoherent passage), added in record schema 2. Append only.
ERROR_TYPES: tuple[str, ...] = ("grammar", "redundancy", "wrong_category", "unclear", "unsound")

#: The error types of record schema 1 and validation format 1 (files written before ``unsound`` existed).
ERROR_TYPES_V1: tuple[str, ...] = ("grammar", "redundancy", "wrong_category", "unclear")

#: Who made a verdict (``verdict.identity.kind``): a person, a model, or (only in verdicts read from
#: files of schema 1, which did not record it) ``unrecorded``.
ANNOTATOR_KINDS: tuple[str, ...] = ("person", "model", "unrecorded")

#: Rows per (category, source) cell in a complete release.
ROWS_PER_CELL = 100

#: Version of the record schema (``hexainst/kernel/schema/record.v2.schema.json``). Version 2 added the
#: error ``unsound`` and each verdict's ``identity`` (who made it); rows of version 1 are read by
#: :func:`hexainst.kernel.records.upgrade_row`.
SCHEMA_VERSION = 2

#: The seed every stage uses unless told otherwise (sampling, ranking, permutations).
DEFAULT_SEED = 0
