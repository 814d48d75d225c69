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

#: The error types annotators check for (the paper's Appendix B).
ERROR_TYPES: tuple[str, ...] = ("grammar", "redundancy", "wrong_category", "unclear")

#: Rows per (category, source) cell in a complete release.
ROWS_PER_CELL = 100

#: Version of the record schema (``hexainst/kernel/schema/record.v1.schema.json``).
SCHEMA_VERSION = 1

#: The seed every stage uses unless told otherwise (sampling, ranking, permutations).
DEFAULT_SEED = 0
