"""Small builders shared by the annotation tests (rows and verdicts made by hand)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from hexainst.annotation.accounts import Account
from hexainst.annotation.session import TEMPLATE_DIR
from hexainst.kernel.records import natural_row, synthetic_row

#: The annotators of the test round (fixed passwords, so that browser tests can log in).
ACCOUNTS = [
    Account("junior", "junior1", "junior1@hexainst.local", "junior1-test-pw"),
    Account("junior", "junior2", "junior2@hexainst.local", "junior2-test-pw"),
    Account("senior", "senior", "senior@hexainst.local", "senior-test-pw"),
]


def verdict(annotator: str, decision: str, category_correct: bool = True, errors=(), corrected=None,
            identity: dict[str, Any] | None = None) -> dict[str, Any]:
    """A verdict of record schema 2 (identity: a person unless given)."""
    return {
        "annotator": annotator,
        "identity": identity or {"kind": "person", "model": None, "prompt": None, "how": None},
        "decision": decision,
        "category_correct": category_correct,
        "errors": list(errors),
        "corrected_instruction": corrected,
    }


def v1_verdict(*args, **kwargs) -> dict[str, Any]:
    """A verdict as record schema 1 wrote it (no identity)."""
    out = verdict(*args, **kwargs)
    del out["identity"]
    return out


def nat(category: str, i: int, text: str | None = None) -> dict[str, Any]:
    return natural_row(
        category=category,
        instruction=text or f"{category} natural instruction number {i}.",
        license="MIT",
        source_name="test-source",
        dataset_id="test/dataset",
        revision="sha256:" + "0" * 64,
        config=None,
        split="test",
        row_id=str(i),
        task_name=None,
        pattern_id="test-pattern",
    )


def syn(category: str, i: int, text: str | None = None) -> dict[str, Any]:
    return synthetic_row(
        category=category,
        instruction=text or f"{category} synthetic instruction number {i}.",
        generator_model="test-model",
        endpoint_host="localhost",
        prompt_id=category,
        prompt_version="1",
        seed=0,
        request_hash=f"{i:016x}",
        item_index=0,
    )


def seed_template(template: Path, folder: Path) -> Path:
    """Put a copy of the session's migrated template into a round folder (so nothing is migrated)."""
    shutil.copytree(template, folder / TEMPLATE_DIR)
    return folder
