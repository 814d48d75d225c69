"""A tiny saved gemma3 model, made-up Alpaca-like rows and a recipe for them (shared by the fine-tuning tests)."""

from __future__ import annotations

import copy
import random

import pytest

from hexainst.analysis.finetune import load_recipe
from hexainst.analysis.finetune.recipe import parse_recipe
from hexainst.analysis.recording.testing import WORDS, make_tokenizer, tiny_model


def made_up_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Rows whose answer is 'the answer is' and the instruction's first word."""
    rng = random.Random(seed)
    words = [w for w in WORDS if w not in ("the", "answer", "is")]
    rows = []
    for _ in range(n):
        instr = [rng.choice(words) for _ in range(rng.randint(3, 8))]
        rows.append({"instruction": " ".join(instr), "input": "", "output": f"the answer is {instr[0]}"})
    return rows


def tiny_recipe(folder, **training):
    """The bundled recipe with the tiny model, a word-level prompt format and fast training settings."""
    doc = copy.deepcopy(load_recipe().doc)
    doc["name"] = "tiny-test"
    doc["model"] = str(folder)
    doc["data"].update(n_eval=16, min_response_tokens=1, max_length=48)
    doc["prompt"] = {"instruction": "{instruction} answer", "instruction_with_input": "{instruction} {input} answer",
                     "response": "{output}"}
    doc["training"].update({"steps": 40, "batch_size": 8, "learning_rate": 1e-2, "warmup_steps": 0,
                            "lr_scheduler": "constant", "save_steps": 1000, "threads": 1, "freeze": [],
                            **training})
    doc["evaluation"].update(batch_size=8, greedy=2, max_new_tokens=6)
    return parse_recipe(doc, where="test recipe")


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-gemma3")
    tiny_model("gemma3", seed=0).save_pretrained(folder)
    make_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def rows_factory():
    return made_up_rows


@pytest.fixture(scope="session")
def recipe_factory():
    return tiny_recipe
