"""Meta-prompts: the data file ``data/metaprompts.json`` (schema ``data/metaprompts.schema.json``).

A request is planned per *slot*: slot ``k`` of category ``c`` gets a (task type, topic) pair
from a seeded permutation of all pairs, so that the same seed gives the same plan and
consecutive slots cover different pairs. Two renderings exist:

* ``chat``: system message, the category's examples as earlier user/assistant turns (JSON
  answers), then the request. Used for every chat endpoint, DeepSeek R1 and the embedded
  SmolLM2 alike.
* ``completions``: a Self-Instruct-style numbered list for base models (the embedded
  gemma-3-270m), answered by continuing the list; the instruction is the continuation's first
  line.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema

from hexainst.kernel.errors import UserError
from hexainst.kernel.vocab import CATEGORIES


class PromptDataError(UserError):
    """The meta-prompt data file is malformed."""


def _data(name: str) -> Any:
    return json.loads(resources.files("hexainst.builders.synthetic").joinpath(f"data/{name}").read_text("utf-8"))


@functools.cache
def metaprompts() -> dict[str, Any]:
    """The meta-prompt table, validated against its schema."""
    table = _data("metaprompts.json")
    try:
        jsonschema.validate(table, _data("metaprompts.schema.json"))
    except jsonschema.ValidationError as exc:
        path = "/".join(map(str, exc.absolute_path))
        raise PromptDataError(f"builders/synthetic/data/metaprompts.json at {path or '<root>'}: {exc.message}") from None
    missing = set(CATEGORIES) - set(table["categories"])
    if missing:
        raise PromptDataError(f"metaprompts.json: no meta-prompt for {', '.join(sorted(missing))}")
    return table


@functools.cache
def blacklist() -> dict[str, Any]:
    return _data("blacklist.json")


@functools.cache
def model_table() -> dict[str, Any]:
    return _data("models.json")


def prompt_version(category: str) -> str:
    """Version id of a category's meta-prompt: ``<set version>/<category version>``."""
    table = metaprompts()
    return f"{table['version']}/{table['categories'][category]['prompt_version']}"


def stable_int(*parts: object) -> int:
    """A 31-bit integer from ``parts`` (stable across processes, unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Slot:
    category: str
    index: int
    task_type: str
    topic: str

    @property
    def topic_label(self) -> str:
        return f"{self.task_type} / {self.topic}"


@functools.cache
def _pairs(category: str, seed: int) -> tuple[tuple[str, str], ...]:
    spec = metaprompts()["categories"][category]
    pairs = [(t, p) for t in spec["task_types"] for p in spec["topics"]]
    random.Random(stable_int("pairs", seed, category)).shuffle(pairs)
    return tuple(pairs)


def slot(category: str, index: int, seed: int) -> Slot:
    pairs = _pairs(category, seed)
    task_type, topic = pairs[index % len(pairs)]
    return Slot(category, index, task_type, topic)


def _user_message(spec: dict[str, Any], task_type: str, topic: str) -> str:
    table = metaprompts()
    return table["user_template"].format(
        description=spec["description"].format(task_type=task_type), topic=topic, guidance=spec["guidance"]
    ).replace("  ", " ")


def chat_messages(s: Slot) -> list[dict[str, str]]:
    """The chat request for slot ``s``: system, few-shot turns, then the ask."""
    table = metaprompts()
    spec = table["categories"][s.category]
    msgs = [{"role": "system", "content": table["system"]}]
    for ex in spec["examples"]:
        msgs.append({"role": "user", "content": _user_message(spec, ex["task_type"], ex["topic"])})
        msgs.append({"role": "assistant", "content": json.dumps({"instruction": ex["instruction"]}, ensure_ascii=False)})
    msgs.append({"role": "user", "content": _user_message(spec, s.task_type, s.topic)})
    return msgs


def completion_prompt(s: Slot) -> str:
    """The completions-route prompt for slot ``s`` (numbered examples; the model writes the next)."""
    table = metaprompts()
    spec = table["categories"][s.category]
    examples = spec["examples"]
    numbered = "\n".join(f"{i + 1}. {ex['instruction']}" for i, ex in enumerate(examples))
    return table["completion_template"].format(
        plural=spec["plural"], topic=s.topic, numbered_examples=numbered, next_number=len(examples) + 1
    )


def example_instructions() -> dict[str, list[str]]:
    """The few-shot examples per category (generated copies of them are rejected)."""
    return {c: [ex["instruction"] for ex in metaprompts()["categories"][c]["examples"]] for c in CATEGORIES}
