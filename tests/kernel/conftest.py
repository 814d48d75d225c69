"""Made-up rows for the release tests (never mirror rows)."""

from __future__ import annotations

import pytest

from hexainst.kernel.records import natural_row, synthetic_row


def make_rows(per_cell: int = 2, categories=("classification", "code", "math")) -> list[dict]:
    rows = []
    for category in categories:
        for i in range(per_cell):
            rows.append(
                natural_row(
                    category=category,
                    instruction=f"Made-up natural {category} instruction number {i}.",
                    license="MIT",
                    source_name=f"made_up_{category}",
                    dataset_id="example/made-up",
                    revision="sha256:" + "0" * 64,
                    config=None,
                    split="test",
                    row_id=str(i),
                    task_name=None,
                    pattern_id="made_up.v1",
                )
            )
            rows.append(
                synthetic_row(
                    category=category,
                    instruction=f"Made-up synthetic {category} instruction number {i}.",
                    generator_model="made-up-model",
                    endpoint_host="127.0.0.1:9",
                    prompt_id=category,
                    prompt_version="v1",
                    seed=0,
                    request_hash="ab" * 8,
                    item_index=i,
                    topic="testing",
                )
            )
    return rows


@pytest.fixture
def rows() -> list[dict]:
    return make_rows()
