"""Turn a model's raw answer into one instruction, or a rejection reason.

Pure functions, no I/O. Reasoning never reaches the instruction: ``reasoning_content`` is kept
apart by the client, and inline ``<think>...</think>`` blocks are cut out here; an unclosed
``<think>`` means the reasoning ran into the answer, which is rejected.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema

from hexainst.builders.synthetic.prompts import join_opener

THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)

#: Reasons an answer is unusable (a retry of the slot may fix them).
ANSWER_REJECTIONS = ("truncated", "empty", "reasoning_leak", "invalid_json", "schema", "malformed_response")


@dataclass(frozen=True)
class Parsed:
    instruction: str | None
    reason: str | None = None
    detail: str = ""
    reasoning: str | None = None


def split_reasoning(content: str | None) -> tuple[str, str | None]:
    """``content`` without ``<think>`` blocks, and the reasoning they held (or None)."""
    text = content or ""
    found = THINK_BLOCK.findall(text)
    text = THINK_BLOCK.sub("", text)
    reasoning = "\n".join(f[7:-8].strip() for f in found) if found else None
    return text.strip(), reasoning


@functools.lru_cache(maxsize=8)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


TRAILING_COMMA = re.compile(r",\s*([}\]])")


def _lenient(text: str) -> str:
    """Repair the one slip small models make often: a comma before a closing brace."""
    try:
        json.loads(text)
        return text
    except json.JSONDecodeError:
        return TRAILING_COMMA.sub(r"\1", text)


def parse_chat_answer(content: str | None, finish_reason: str | None, schema: dict[str, Any]) -> Parsed:
    """The instruction in a chat answer that must be one JSON object valid under ``schema``."""
    if finish_reason == "length":
        return Parsed(None, "truncated", "finish_reason=length")
    text, reasoning = split_reasoning(content)
    if re.search(r"</?think>", text, re.IGNORECASE):
        return Parsed(None, "reasoning_leak", "unbalanced <think> tag in content", reasoning)
    if not text:
        return Parsed(None, "empty", "no content", reasoning)
    m = FENCE.match(text)
    if m:
        text = m.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return Parsed(None, "invalid_json", "no JSON object in the answer", reasoning)
    try:
        obj = json.loads(_lenient(text[start : end + 1]))
    except json.JSONDecodeError as exc:
        return Parsed(None, "invalid_json", str(exc), reasoning)
    error = jsonschema.exceptions.best_match(_validator(json.dumps(schema, sort_keys=True)).iter_errors(obj))
    if error is not None:
        return Parsed(None, "schema", error.message, reasoning)
    return Parsed(obj["instruction"], reasoning=reasoning)


LIST_NUMBER = re.compile(r"^\s*(?:\d{1,3}[.)]\s+)+")
LEADING_TAG = re.compile(r"^\s*\([^()]{0,120}\)\s*")


def parse_list_continuation(text: str | None, finish_reason: str | None, opener: str = "") -> Parsed:
    """The instruction a base model wrote when continuing a numbered list: its first line, without
    a list number it repeated (``8. ``) or a copy of the slot's ``(task type ...)`` tag; with an
    ``opener`` (the start of the instruction, written into the prompt), opener + that line, and a
    quotation the opener began is closed when the line ends a sentence without closing it."""
    raw = text or ""
    found = THINK_BLOCK.findall(raw)
    body = THINK_BLOCK.sub("", raw)
    reasoning = "\n".join(f[7:-8].strip() for f in found) if found else None
    if opener:
        line = body.split("\n", 1)[0].rstrip()
        if not line.strip():
            return Parsed(None, "truncated" if finish_reason == "length" else "empty", "no text after the opener")
        if finish_reason == "length" and "\n" not in body:
            return Parsed(None, "truncated", "finish_reason=length before the end of the line")
        line = join_opener(opener, line).strip()
        if opener.endswith('"') and line.count('"') % 2 == 1 and re.search(r"[.!?]$", line):
            line += '"'
        return Parsed(line, reasoning=reasoning)
    body = body.lstrip(" \t")
    line = body.split("\n", 1)[0].strip()
    line = LEADING_TAG.sub("", LIST_NUMBER.sub("", line), count=1).strip()
    if not line:
        return Parsed(None, "truncated" if finish_reason == "length" else "empty", "no text before a newline")
    if finish_reason == "length" and "\n" not in body:
        return Parsed(None, "truncated", "finish_reason=length before the end of the line")
    return Parsed(line, reasoning=reasoning)
