"""The release committed in hexainst/ loads from the repository root and validates."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import datasets

from hexainst.kernel.vocab import CATEGORIES


def test_load_dataset_hexainst_from_repository_root(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    ds = datasets.load_dataset("hexainst", split="train")
    assert len(ds) == 1200
    assert ds.features["category"].names == list(CATEGORIES)
    for category in CATEGORIES:
        assert len(datasets.load_dataset("hexainst", category, split="train")) == 200


def test_hexainst_validate_passes_on_the_committed_release(repo_root):
    done = subprocess.run([sys.executable, "-m", "hexainst", "validate"], cwd=repo_root, capture_output=True,
                          text=True, env=dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1200 rows valid" in done.stdout


def test_committed_card_tells_how_it_was_built(repo_root):
    """The card says what the data says: how it was built, by which generator, and its validation state."""
    import hexainst

    card = (repo_root / "hexainst" / "README.md").read_text()
    rows = hexainst.load(repo_root / "hexainst")
    statuses = Counter(row["status"] for row in rows["validation"])
    models = Counter(p["synthetic"]["generator_model"] for p in rows["provenance"] if p["synthetic"])
    revisions = {p["natural"]["revision"] for p in rows["provenance"] if p["natural"]}
    if all(r.startswith("sha256:") for r in revisions):  # natural rows read from files, not the Hub
        assert "local build" in card
    for model in models:
        assert model in card
    if set(statuses) == {"pending"}:
        assert "Validation pending" in card
    else:
        assert "Validation pending" not in card
        for status, n in statuses.items():
            assert f"| {status} | {n} |" in card, (status, n)
