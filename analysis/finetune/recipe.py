"""A fine-tuning recipe as data: model, rows, prompt format, steps, learning rate, seed.

Recipes are JSON files (``recipes/*.json``, checked against ``recipes/recipe.schema.json``). A
recipe has three variants (arms) that share every field:

- ``tuned``: the instruction (and its input) in the prompt format, loss on the response tokens;
- ``control``: the same responses alone after BOS, loss on the same response tokens. Same rows,
  same batches, same steps and schedule: what differs is only whether an instruction comes first.
- ``shuffled``: the tuned prompt format, but each instruction paired with another training row's
  response (a seeded derangement): the format and the responses without the instruction-response link.

A run of an arm is (recipe, variant, seed): :meth:`Recipe.with_seed` changes the training seed and
keeps the rows' split (``data.split_seed``, by default the recipe's own training seed), so every
seed of every arm is trained and evaluated on the same rows.

:func:`Recipe.fingerprint` hashes everything that changes the weights, so a finished fine-tune
under the same fingerprint is never redone, and a changed recipe never resumes an old one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import check_schema, read_json, resource_json

VARIANTS = ("tuned", "control", "shuffled")
PACKAGE = "hexainst.analysis.finetune"
DEFAULT_RECIPE = "gemma3-270m-alpaca"


class RecipeError(UserError):
    """A recipe file is missing, not valid, or names a variant that does not exist."""


@dataclass(frozen=True)
class Recipe:
    """A parsed, schema-checked recipe (the JSON document itself is kept in ``doc``)."""

    doc: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.doc["name"])

    @property
    def model(self) -> str:
        return str(self.doc["model"])

    @property
    def data(self) -> dict[str, Any]:
        return self.doc["data"]

    @property
    def prompt(self) -> dict[str, str]:
        return self.doc["prompt"]

    @property
    def training(self) -> dict[str, Any]:
        return self.doc["training"]

    @property
    def evaluation(self) -> dict[str, Any]:
        return self.doc["evaluation"]

    def fingerprint(self, variant: str) -> str:
        """sha256 prefix of what decides the weights of ``variant`` (the description and evaluation do not)."""
        check_variant(variant)
        payload = {k: self.doc[k] for k in ("model", "data", "prompt", "training")}
        payload["variant"] = variant
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()[:12]

    def with_overrides(self, **training: Any) -> Recipe:
        """A copy with some ``training`` fields replaced (e.g. ``steps=2`` for a pilot); checked again."""
        doc = copy.deepcopy(self.doc)
        doc["training"].update({k: v for k, v in training.items() if v is not None})
        return parse_recipe(doc, where=f"recipe {self.name} with overrides {sorted(training)}")

    @property
    def seed(self) -> int:
        """The training seed (initial order of batches, dropout, the shuffled arm's pairing)."""
        return int(self.training["seed"])

    @property
    def split_seed(self) -> int:
        """The seed of the rows' train/held-out split (the same for every seed of every arm)."""
        return int(self.data.get("split_seed", self.training["seed"]))

    def with_seed(self, seed: int) -> Recipe:
        """The same recipe under another training seed, the split unchanged; ``seed`` = the recipe's own
        seed returns the recipe itself (its fingerprint, so its finished runs, unchanged)."""
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise RecipeError(f"a seed must be an integer >= 0, got {seed!r}")
        if seed == self.seed:
            return self
        doc = copy.deepcopy(self.doc)
        doc["data"]["split_seed"] = self.split_seed
        doc["training"]["seed"] = seed
        return parse_recipe(doc, where=f"recipe {self.name} with seed {seed}")

    def with_model(self, model: str) -> Recipe:
        doc = copy.deepcopy(self.doc)
        doc["model"] = model
        return parse_recipe(doc, where=f"recipe {self.name} with model {model!r}")


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise RecipeError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")


#: The placeholders each prompt template takes (and must use): ``{name}``; literal braces are written ``{{``/``}}``.
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "instruction": ("instruction",),
    "instruction_with_input": ("instruction", "input"),
    "response": ("output",),
}


def check_templates(prompt: dict[str, str], where: str) -> None:
    """Every prompt template parses and uses exactly its placeholders; a :class:`RecipeError` naming the
    recipe, the template and the placeholder otherwise (before any model is loaded)."""
    for key, allowed in PLACEHOLDERS.items():
        template = prompt.get(key)
        if not isinstance(template, str):
            continue
        shown = ", ".join("{" + a + "}" for a in allowed)
        try:
            fields = [(name, conv, spec) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
        except ValueError as exc:  # "Single '}' encountered in format string", an unclosed '{'
            raise RecipeError(f"{where}: prompt.{key}: {exc} (its placeholders are {shown}; write a literal brace "
                              "as {{ or }})") from None
        for name, conv, spec in fields:
            if name not in allowed or conv or spec:
                written = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
                raise RecipeError(f"{where}: prompt.{key}: unknown placeholder {written} (its placeholders are "
                                  f"{shown}; write a literal brace as {{{{ or }}}})")
        missing = [a for a in allowed if a not in {name for name, _, _ in fields}]
        if missing:
            raise RecipeError(f"{where}: prompt.{key}: has no {{{missing[0]}}} placeholder (it needs {shown})")


def parse_recipe(doc: Any, where: str = "recipe") -> Recipe:
    check_schema(doc, resource_json(PACKAGE, "recipes", "recipe.schema.json"), where)
    check_templates(doc["prompt"], where)
    return Recipe(doc=copy.deepcopy(doc))


def load_recipe(name_or_path: str | os.PathLike[str] = DEFAULT_RECIPE) -> Recipe:
    """A bundled recipe by name (``recipes/<name>.json``) or a recipe file by path."""
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        if path.is_dir():
            raise RecipeError(f"recipe {path}: is a folder, not a recipe file (a JSON file, or a bundled recipe's name)")
        if not path.is_file():
            raise RecipeError(f"recipe file not found: {path}")
        return parse_recipe(read_json(path, what="recipe"), where=str(path))
    try:
        doc = resource_json(PACKAGE, "recipes", f"{name_or_path}.json")
    except FileNotFoundError as exc:
        raise RecipeError(f"no bundled recipe {str(name_or_path)!r} (recipes: {', '.join(bundled_recipes())})") from exc
    return parse_recipe(doc, where=f"bundled recipe {name_or_path}")


def bundled_recipes() -> list[str]:
    folder = resources.files(PACKAGE).joinpath("recipes")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json") and not p.name.endswith(".schema.json"))
