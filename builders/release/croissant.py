"""Croissant (MLCommons) metadata for a release folder, built with ``mlcroissant``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hexainst.kernel.digests import file_sha256
from hexainst.kernel.vocab import CATEGORIES


def croissant_metadata(folder: Path, *, url: str = "https://huggingface.co/datasets/hexainst/hexainst") -> dict[str, Any]:
    """JSON-LD describing the parquet files of ``folder`` and their flat fields."""
    import mlcroissant as mlc  # deferred: mlcroissant (~0.6 s); `hexainst --help` imports this module

    files = [folder / "data" / f"{c}.parquet" for c in CATEGORIES if (folder / "data" / f"{c}.parquet").exists()]
    distribution = [
        mlc.FileObject(
            id=f"parquet-{f.stem}",
            name=f"parquet-{f.stem}",
            description=f"The {f.stem} rows of HexaInst.",
            content_url=f"data/{f.name}",
            encoding_formats=["application/x-parquet"],
            sha256=file_sha256(f),
        )
        for f in files
    ]
    fields_spec = [
        ("id", mlc.DataType.TEXT, "Stable id of the instruction."),
        ("category", mlc.DataType.INTEGER,
         "Category, a ClassLabel index: " + ", ".join(f"{i}={c}" for i, c in enumerate(CATEGORIES)) + "."),
        ("source", mlc.DataType.INTEGER, "0 = natural (from a public dataset), 1 = synthetic (generated)."),
        ("instruction", mlc.DataType.TEXT, "The instruction text."),
        ("license", mlc.DataType.TEXT, "Licence of the row's source."),
    ]
    record_sets = []
    for f in files:
        record_sets.append(
            mlc.RecordSet(
                id=f"{f.stem}",
                name=f"{f.stem}",
                description=f"Instructions of the {f.stem} category.",
                fields=[
                    mlc.Field(
                        id=f"{f.stem}/{name}",
                        name=name,
                        description=desc,
                        data_types=[dtype],
                        source=mlc.Source(file_object=f"parquet-{f.stem}", extract=mlc.Extract(column=name)),
                    )
                    for name, dtype, desc in fields_spec
                ],
            )
        )
    metadata = mlc.Metadata(
        name="HexaInst",
        description=(
            "A balanced set of English instructions in six categories, 100 natural and 100 synthetic per "
            "category, built to study instruction-specific neurons and experts in LLMs (SPARCOM)."
        ),
        url=url,
        license=["other"],
        version="1.0.0",
        cite_as="Zhang et al., Unveiling Instruction-Specific Neurons & Experts, arXiv:2505.21191",
        distribution=distribution,
        record_sets=record_sets,
    )
    return metadata.to_json()
