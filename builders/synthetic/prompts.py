"""Meta-prompts: the data file ``data/metaprompts.json`` (schema ``data/metaprompts.schema.json``).

A request is planned per *slot*: slot ``k`` of category ``c`` gets a (task type, topic) pair
from a seeded permutation of all pairs, so that the same seed gives the same plan and
consecutive slots cover different pairs. Two renderings exist:

* ``chat``: system message, the category's examples as earlier user/assistant turns (JSON
  answers), then the request. Used for every chat endpoint, DeepSeek R1 and the embedded
  SmolLM2 alike.
* ``completions``: a Self-Instruct-style numbered list for base models (the embedded
  gemma-3-270m): several instructions of the category drawn per slot (see
  :mod:`hexainst.builders.synthetic.examples`), then the next number with the slot's task type
  and topic; the instruction is the continuation's first line.

Every request carries the slot's category (``category_label`` or ``plural``), task type and topic.
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


def category_label(category: str) -> str:
    """The category's name as every request renders it (e.g. ``math problem``)."""
    return metaprompts()["categories"][category]["category_label"]


def _user_message(category: str, spec: dict[str, Any], task_type: str, topic: str) -> str:
    table = metaprompts()
    return table["user_template"].format(
        category_label=spec["category_label"], description=spec["description"].format(task_type=task_type),
        topic=topic, guidance=spec["guidance"],
    ).replace("  ", " ")


def chat_messages(s: Slot, shown: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
    """The chat request for slot ``s``: system, few-shot turns (``shown``: curated examples with
    their task type and topic; default: all of the category's), then the ask."""
    table = metaprompts()
    spec = table["categories"][s.category]
    msgs = [{"role": "system", "content": table["system"]}]
    for ex in spec["examples"] if shown is None else shown:
        msgs.append({"role": "user", "content": _user_message(s.category, spec, ex["task_type"], ex["topic"])})
        msgs.append({"role": "assistant", "content": json.dumps({"instruction": ex["instruction"]}, ensure_ascii=False)})
    msgs.append({"role": "user", "content": _user_message(s.category, spec, s.task_type, s.topic)})
    return msgs


def chat_examples(s: Slot, seed: int, shots: int = 3) -> list[dict[str, str]]:
    """The curated examples slot ``s`` shows as chat turns: ``shots`` of them, drawn per slot (seeded)."""
    examples = list(metaprompts()["categories"][s.category]["examples"])
    rng = random.Random(stable_int("chat-shots", seed, s.category, s.index))
    return rng.sample(examples, min(shots, len(examples)))


def constraint(s: Slot) -> str:
    """The slot's task type and topic as the completions route renders them (e.g. ``(a poem about autumn)``)."""
    return metaprompts()["categories"][s.category]["constraint"].format(task_type=s.task_type, topic=s.topic)


def opener(s: Slot) -> str:
    """The start of slot ``s``'s instruction on the completions route ('' when its category has none).

    A base model told only "(sentiment classification of a hotel review)" tends to write the
    review alone; handed the opening of the instruction instead ("Classify the sentiment of this
    hotel review as positive, negative or neutral: \""), it writes the review into it. The
    instruction is the opener followed by the model's continuation.
    """
    table = metaprompts()["categories"][s.category].get("openers") or {}
    template = table.get(s.task_type)
    if not template:
        return ""
    thing = s.topic
    for article in ("a ", "an ", "the "):
        if thing.lower().startswith(article):
            thing = thing[len(article):]
            break
    return template.format(topic=s.topic, thing=thing)


def join_opener(start: str, continuation: str) -> str:
    """``start`` + ``continuation`` with one space where two words would otherwise touch."""
    if not start:
        return continuation
    if start[-1].isalnum() and continuation[:1].isalnum():
        return f"{start} {continuation}"
    return start + continuation


def completion_prompt(s: Slot, examples: list[str] | None = None) -> str:
    """The completions-route prompt for slot ``s``: a Self-Instruct-style numbered list of
    ``examples`` (default: the curated ones) of the category, then the next number with the
    slot's constraint; the base model writes the instruction after it."""
    table = metaprompts()
    spec = table["categories"][s.category]
    shown = [ex["instruction"] for ex in spec["examples"]] if examples is None else examples
    numbered = "\n".join(f"{i + 1}. {text}" for i, text in enumerate(shown))
    prompt = table["completion_template"].format(
        plural=spec["plural"], numbered_examples=numbered, next_number=len(shown) + 1, constraint=constraint(s)
    )
    start = opener(s)
    return f"{prompt} {start}" if start else prompt


def example_instructions() -> dict[str, list[str]]:
    """The few-shot examples per category (generated copies of them are rejected)."""
    return {c: [ex["instruction"] for ex in metaprompts()["categories"][c]["examples"]] for c in CATEGORIES}
