"""In-context examples: the natural pools read once, and the examples each slot's prompt shows.

Self-Instruct (Wang et al., 2023) bootstraps a base model by showing it a few instructions of
the task pool, drawn anew for every request, and asking for the next one. Here each
completions request of slot ``k`` shows ``shots`` instructions of its category: first the category's
``min_curated`` fixed curated examples of ``data/metaprompts.json`` (written for this project,
always well-formed; the same for every slot, so the prompts of a category share a prefix), then
instructions from the category's natural pool, drawn by a generator seeded with (seed,
category, slot), so consecutive slots see different real examples and the
same seed gives the same prompts. Natural rows with a line break (the list format is one line
per instruction) or longer than the category's ``natural_max_words`` are not shown. Code uses
curated examples only: its natural pool holds HumanEval "complete this function" prompts whose
function body is the point, and a base model copies their framing without the function.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from hexainst.builders.synthetic import prompts
from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import read_jsonl
from hexainst.kernel.pools import pool_file
from hexainst.kernel.vocab import CATEGORIES


def load_natural(natural_pool_dir: Path | None) -> dict[str, dict[str, str]]:
    """``{category: {row id: instruction}}`` of the natural pools in ``natural_pool_dir`` (empty when None)."""
    out: dict[str, dict[str, str]] = {c: {} for c in CATEGORIES}
    if natural_pool_dir is None:
        return out
    folder = Path(natural_pool_dir)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"natural pool folder {folder}: is a file, not a folder")
    if not folder.is_dir():
        raise UserError(f"natural pool folder {folder} does not exist")
    for cat in CATEGORIES:
        path = pool_file(folder, cat, "natural")
        if not path.is_file():
            continue

        def check(row: object, where: str) -> None:
            if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not isinstance(row.get("instruction"), str):
                raise UserError(f"{where}: not a pool row (needs string 'id' and 'instruction')")

        for row in read_jsonl(path, what="natural pool", check=check):
            out[cat][row["id"]] = row["instruction"]
    return out


@dataclass
class ExamplePool:
    """The instructions a category's prompts may show, and the per-slot draw."""

    natural: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_natural(cls, natural: dict[str, dict[str, str]]) -> ExamplePool:
        table = prompts.metaprompts()["categories"]
        usable: dict[str, list[str]] = {}
        for cat in CATEGORIES:
            spec = table[cat]
            if not spec["natural_examples"]:
                usable[cat] = []
                continue
            texts = sorted(set(natural.get(cat, {}).values()))
            usable[cat] = [t for t in texts if "\n" not in t and len(t.split()) <= spec["natural_max_words"]]
        return cls(usable)

    def draw(self, category: str, index: int, seed: int) -> list[str]:
        """The in-context instructions of slot ``index`` of ``category``.

        The first ``min_curated`` curated examples come first, always the same (so every prompt of
        a category opens alike and a server can reuse that prefix's computation), then
        instructions drawn for this slot (seeded): from the natural pool, topped up from the
        other curated examples when the pool has too few (code: curated only).
        """
        spec = prompts.metaprompts()["categories"][category]
        rng = random.Random(prompts.stable_int("shots", seed, category, index))
        curated = [ex["instruction"] for ex in spec["examples"]]
        fixed = curated[: spec["min_curated"]]
        rest = curated[spec["min_curated"]:]
        natural = self.natural.get(category, [])
        want = spec["shots"] - len(fixed)
        picked = rng.sample(natural, min(len(natural), want))
        picked += rng.sample(rest, min(len(rest), want - len(picked)))
        rng.shuffle(picked)
        return fixed + picked

    def all_natural(self) -> list[str]:
        return [t for cat in CATEGORIES for t in self.natural.get(cat, [])]
