"""The rows a recipe trains and evaluates on, and their token ids.

Alpaca rows come from the offline mirror (setting ``sources`` or ``$HEXAINST_SOURCES``); rows whose
instruction is in the HexaInst release or its reserve (compared as
:func:`hexainst.builders.text.comparison_key`, the builders' exact-duplicate key) are left out, so
the tuned model never sees a release instruction. The rest are split once, seeded: ``n_eval``
held-out rows, the others in a seeded order for training.

Encoding (:func:`encode`): ``tuned`` (and ``shuffled``, on re-paired rows: :func:`shuffled_pairs`) =
BOS + prompt(instruction[, input]) + response, labels on the response only; ``control`` = BOS +
response, labels on the same response tokens. Both variants are
truncated to ``max_length`` tokens and carry the tuned example's length as ``length``, so the
trainer's length grouping puts the same rows into the same batches in both.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexainst.builders.text import comparison_key
from hexainst.kernel import environment
from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import read_jsonl
from hexainst.kernel.release import read_release_rows, read_reserve
from hexainst.kernel.settings import SettingError

from .recipe import Recipe, check_variant

IGNORE = -100


class FinetuneDataError(UserError):
    """The recipe's rows cannot be found or are not usable."""


class MirrorNotSet(FinetuneDataError, SettingError):
    """No offline mirror named (setting ``sources``) nor in ``$HEXAINST_SOURCES``: the shell names the flag."""


@dataclass(frozen=True)
class Split:
    """Rows of a recipe after exclusion: ``train`` (seeded order) and ``eval`` (held out)."""

    train: list[dict[str, str]]
    eval: list[dict[str, str]]
    n_read: int
    n_excluded: int

    def summary(self) -> dict[str, int]:
        return {"read": self.n_read, "excluded_in_release": self.n_excluded,
                "train": len(self.train), "eval": len(self.eval)}

    @property
    def fingerprint(self) -> str:
        """sha256 prefix of the training rows (in order) and the held-out rows: a changed release or mirror
        changes it, so a fine-tune is never reused, nor evaluated, on rows it was not made from."""
        payload = json.dumps({"train": self.train, "eval": self.eval}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def rows_file(recipe: Recipe, sources: str | os.PathLike[str] | None = None) -> Path:
    folder = environment.mirror(sources)
    if folder is None:
        raise MirrorNotSet("sources", f"is not set: recipe {recipe.name} reads {recipe.data['file']} from an offline "
                           "mirror of the sources; name its folder (make alteration-demo SOURCES=DIR) or set "
                           "HEXAINST_SOURCES")
    path = folder / recipe.data["file"]
    if not path.is_file():
        raise FinetuneDataError(f"recipe {recipe.name}: {path} not found (the mirror's {recipe.data['file']})")
    return path


def release_keys(release: str | os.PathLike[str] | None = None) -> set[str]:
    """Comparison keys of every instruction of the release and of its reserve."""
    rows = read_release_rows(release) + read_reserve(release)
    return {comparison_key(str(r["instruction"])) for r in rows}


def _check_row(row: Any, where: str) -> None:
    for key in ("instruction", "input", "output"):
        if not isinstance(row.get(key), str):
            raise FinetuneDataError(f"{where}: field {key!r} is missing or not a string")


def _keys(row: dict[str, str]) -> set[str]:
    keys = {comparison_key(row["instruction"])}
    if row["input"].strip():
        keys.add(comparison_key(row["instruction"] + "\n\n" + row["input"]))
    return keys


def split_rows(rows: list[dict[str, str]], exclude: set[str], n_eval: int, seed: int) -> Split:
    """Leave out rows whose instruction is in ``exclude`` or whose output is empty, then split, seeded.

    Pure: the same rows, keys and seed give the same split. Raises when fewer than ``n_eval + 1``
    rows remain.
    """
    kept, excluded = [], 0
    for row in rows:
        if _keys(row) & exclude:
            excluded += 1
        elif row["output"].strip():
            kept.append(row)
    if len(kept) <= n_eval:
        raise FinetuneDataError(f"only {len(kept)} usable rows after excluding the release; n_eval is {n_eval}")
    order = list(range(len(kept)))
    random.Random(seed).shuffle(order)
    eval_rows = [kept[i] for i in sorted(order[:n_eval])]
    train_rows = [kept[i] for i in order[n_eval:]]
    return Split(train=train_rows, eval=eval_rows, n_read=len(rows), n_excluded=excluded)


def load_split(recipe: Recipe, sources: str | os.PathLike[str] | None = None,
               release: str | os.PathLike[str] | None = None) -> Split:
    path = rows_file(recipe, sources)
    rows = read_jsonl(path, what="Alpaca rows", check=_check_row)
    exclude = release_keys(release) if recipe.data["exclude_release"] else set()
    return split_rows(rows, exclude, recipe.data["n_eval"], recipe.split_seed)


def shuffled_pairs(rows: list[dict[str, str]], seed: int) -> list[dict[str, str]]:
    """The rows with their responses re-assigned by a seeded derangement (no row keeps its own response).

    Pure. Instruction and input stay together; ``output`` comes from another row (a cyclic shift
    along a seeded permutation, so every row gets exactly one other row's response and every
    response is used once). The shuffled arm trains on these: the prompt format and the responses
    of the tuned arm, without the link between an instruction and its response.
    """
    n = len(rows)
    if n < 2:
        raise FinetuneDataError(f"shuffled pairs need at least 2 rows, got {n}")
    perm = list(range(n))
    random.Random(f"shuffled-pairs:{seed}").shuffle(perm)
    out = [dict(r) for r in rows]
    for j in range(n):
        out[perm[j]]["output"] = rows[perm[(j + 1) % n]]["output"]
    return out


def training_rows(recipe: Recipe, split: Split, variant: str) -> list[dict[str, str]]:
    """The rows ``variant`` trains on: the split's training rows, re-paired for ``shuffled``."""
    check_variant(variant)
    if variant == "shuffled":
        return shuffled_pairs(split.train, recipe.seed)
    return split.train


def prompt_text(recipe: Recipe, row: dict[str, str]) -> str:
    """The instruction in the recipe's prompt format (what the tuned model is trained to answer)."""
    template = recipe.prompt["instruction_with_input" if row["input"].strip() else "instruction"]
    return template.format(instruction=row["instruction"].strip(), input=row["input"].strip())


def response_text(recipe: Recipe, row: dict[str, str]) -> str:
    return recipe.prompt["response"].format(output=row["output"].strip())


def _bos(tokenizer: Any) -> list[int]:
    ids = tokenizer("", add_special_tokens=True)["input_ids"]
    return list(ids)


def encode(recipe: Recipe, tokenizer: Any, row: dict[str, str], variant: str) -> dict[str, list[int]] | None:
    """``input_ids``, ``labels`` (``-100`` outside the response) and ``length`` of one row, or None.

    None when fewer than ``min_response_tokens`` response tokens fit into ``max_length`` in the
    tuned variant (the control keeps the same rows, so the variants see the same responses).
    """
    check_variant(variant)
    max_length = recipe.data["max_length"]
    prompt = tokenizer(prompt_text(recipe, row), add_special_tokens=True)["input_ids"]
    response = tokenizer(response_text(recipe, row), add_special_tokens=False)["input_ids"]
    room = max_length - len(prompt)
    if room < recipe.data["min_response_tokens"]:
        return None
    response = list(response[:room])
    tuned_length = len(prompt) + len(response)
    context = _bos(tokenizer) if variant == "control" else list(prompt)
    return {"input_ids": context + response, "labels": [IGNORE] * len(context) + response, "length": tuned_length}


def encode_rows(recipe: Recipe, tokenizer: Any, rows: list[dict[str, str]], variant: str) -> list[dict[str, list[int]]]:
    out = []
    for row in rows:
        example = encode(recipe, tokenizer, row, variant)
        if example is not None:
            out.append(example)
    if not out:
        raise FinetuneDataError(f"recipe {recipe.name}: no row fits into max_length {recipe.data['max_length']}")
    return out
