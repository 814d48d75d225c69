"""One extractor per source kind: a source row -> an :class:`Extraction`, or :class:`Dropped`.

Extractors are pure functions of the row (a mapping of column -> value) and the registry
entry; they never read files. Each candidate keeps the id of the pattern that produced it
(``<pattern_set>.<pattern>``) and the text that near-duplicate detection compares
(``dedup_text``: for FLAN the text to classify or summarise, not the template around it).

Choices, per source:

* CODE (HumanEval): the instruction asks to complete the function and shows HumanEval's
  prompt (imports, helper functions, signature, docstring) in a fenced Python block, byte for
  byte (fences keep code spacing through :func:`normalize`). Doctest examples stay in: in
  HumanEval they are part of the specification (several docstrings specify behaviour only by
  examples), and they are not the hidden tests (the ``test`` column, never used). The prompt
  must parse, define the entry point, and that function's body must be its docstring
  (and imports) only;
  the canonical solution is never read into the instruction, and a prompt that would contain
  it is dropped (``contains_solution``).
* QA (TriviaQA): the question only, cleaned: CSV-style quoting undone (a question wrapped in
  ``"`` with inner quotes doubled, ``"Who said ""x""?"``, becomes ``Who said "x"?``),
  whitespace collapsed to one line. A question that contains
  its answer value as a whole word (case-insensitive) is dropped
  (``answer_in_question``).
* GEN (Alpaca): rows with an empty input whose instruction matches an inclusion pattern of
  ``text_patterns.json`` (write / compose / create / ...) and no exclusion pattern (code,
  math, classification, rewriting of a given text, a question).
* MATH (MATH-500): the problem text, normalised (LaTeX and [asy] code untouched apart from
  whitespace inside lines).
"""

from __future__ import annotations

import ast
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import regex

from hexainst.builders.natural import flan
from hexainst.builders.natural.flan import Dropped
from hexainst.builders.natural.registry import Source
from hexainst.builders.text import normalize, word_count

__all__ = ["Dropped", "Extraction", "EXTRACTORS", "RowError"]


class RowError(ValueError):
    """A row is structurally bad (a null where a value must be); the build turns it into an
    error naming source, split and row."""


@dataclass(frozen=True)
class Extraction:
    instruction: str
    pattern_id: str
    dedup_text: str
    task_name: str | None = None
    license_id: str | None = None


def _value(row: Mapping[str, Any], source: Source, role: str) -> Any:
    column = source.columns[role]
    if column not in row:
        raise RowError(f"missing column {column!r}")
    value = row[column]
    if value is None:
        raise RowError(f"column {column!r} is null")
    return value


def _text(row: Mapping[str, Any], source: Source, role: str) -> str:
    value = _value(row, source, role)
    if not isinstance(value, str):
        raise RowError(f"column {source.columns[role]!r} is a {type(value).__name__}, not a string")
    return value


def _bounds(text: str, source: Source) -> None:
    n = word_count(text)
    if source.max_words is not None and n > source.max_words:
        raise Dropped("too_long", f"{n} words > {source.max_words}")
    if source.min_words is not None and n < source.min_words:
        raise Dropped("too_short", f"{n} words < {source.min_words}")


# --- CODE -------------------------------------------------------------------------------


def humaneval(row: Mapping[str, Any], source: Source, ctx: FlanContext | None = None) -> Extraction:
    prompt = _text(row, source, "prompt")
    entry = _text(row, source, "entry_point").strip()
    solution = _text(row, source, "canonical_solution")
    try:
        tree = ast.parse(prompt)
    except SyntaxError as exc:
        raise Dropped("unparsable_prompt", f"line {exc.lineno}: {exc.msg}") from None
    fn = next(
        (n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == entry),
        None,
    )
    if fn is None:
        raise Dropped("no_entry_point", entry)
    if not any(_is_string(n) for n in fn.body):
        raise Dropped("no_docstring", entry)
    # The body may hold imports and the docstring, nothing else (HumanEval/115 imports math).
    if any(not isinstance(n, (ast.Import, ast.ImportFrom)) and not _is_string(n) for n in fn.body):
        raise Dropped("prompt_has_body", entry)
    code = prompt.strip("\n").rstrip()
    instruction = normalize(
        f"Complete the Python function `{entry}` below so that it does what its docstring "
        f"describes.\n\n```python\n{code}\n```"
    )
    body = solution.strip()
    if body and body in instruction:
        raise Dropped("contains_solution", entry)
    return Extraction(instruction, f"{source.pattern_set}.prompt", code)


def _is_string(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


# --- QA ---------------------------------------------------------------------------------

_CSV_QUOTED = regex.compile(r'^"(.*)"$', regex.DOTALL)


def clean_question(question: str) -> str:
    """Undo CSV-style quoting, collapse whitespace to one line."""
    q = question.strip()
    m = _CSV_QUOTED.match(q)
    if m and ('""' in m.group(1) or '"' not in m.group(1)):
        q = m.group(1).replace('""', '"')
    return " ".join(normalize(q).split())


def contains_answer(question: str, answer: str) -> bool:
    """Does ``answer`` occur in ``question`` as a whole word (case-insensitive)?"""
    a = " ".join(answer.split()).casefold()
    if not a:
        return False
    return regex.search(rf"(?<!\w){regex.escape(a)}(?!\w)", question.casefold()) is not None


def triviaqa(row: Mapping[str, Any], source: Source, ctx: FlanContext | None = None) -> Extraction:
    question = clean_question(_text(row, source, "question"))
    if not question:
        raise Dropped("empty")
    answer = _value(row, source, "answer")
    if not isinstance(answer, Mapping) or not isinstance(answer.get("value"), str):
        raise RowError(f"column {source.columns['answer']!r} has no string 'value'")
    # The answer value (and the Hub's normalised form of it). Not the aliases: TriviaQA's are
    # Wikipedia redirects ("Capital of Indonesia" for Jakarta) and would drop sound questions.
    values = [answer["value"], answer.get("normalized_value") or ""]
    if any(contains_answer(question, v) for v in values):
        raise Dropped("answer_in_question")
    _bounds(question, source)
    return Extraction(question, f"{source.pattern_set}.question", question)


# --- GEN --------------------------------------------------------------------------------


@functools.cache
def text_patterns() -> dict[str, Any]:
    return json.loads(resources.files("hexainst.builders.natural").joinpath("text_patterns.json").read_text("utf-8"))


@functools.cache
def _compiled(pattern_set: str) -> tuple[list[tuple[str, regex.Pattern]], list[tuple[str, regex.Pattern]]]:
    spec = text_patterns().get(pattern_set)
    if spec is None:
        raise KeyError(f"no pattern set {pattern_set!r} in text_patterns.json")
    flags = regex.IGNORECASE
    exclude = [(e["reason"], regex.compile(e["regex"], flags)) for e in spec["exclude"]]
    include = [(i["id"], regex.compile(i["regex"], flags)) for i in spec["include"]]
    return exclude, include


def alpaca_generation(row: Mapping[str, Any], source: Source, ctx: FlanContext | None = None) -> Extraction:
    given = _value(row, source, "input")
    if not isinstance(given, str):
        raise RowError(f"column {source.columns['input']!r} is not a string")
    if given.strip():
        raise Dropped("has_input")
    instruction = normalize(_text(row, source, "instruction"), keep_indentation=False)
    if not instruction:
        raise Dropped("empty")
    exclude, include = _compiled(source.pattern_set)
    for reason, pattern in exclude:
        if pattern.search(instruction):
            raise Dropped(reason)
    for pid, pattern in include:
        if pattern.search(instruction):
            _bounds(instruction, source)
            return Extraction(instruction, f"{source.pattern_set}.{pid}", instruction)
    raise Dropped("not_generation")


# --- MATH -------------------------------------------------------------------------------


def math500(row: Mapping[str, Any], source: Source, ctx: FlanContext | None = None) -> Extraction:
    problem = normalize(_text(row, source, "problem"))
    if not problem:
        raise Dropped("empty")
    _bounds(problem, source)
    return Extraction(problem, f"{source.pattern_set}.problem", problem)


# --- CLS / SUM (FLAN) -------------------------------------------------------------------


@dataclass(frozen=True)
class FlanContext:
    """The compiled FLAN pattern sets and answer cues a FLAN source needs."""

    tasks: dict[str, flan.TaskPatterns]
    cues: tuple[str, ...]

    @classmethod
    def from_templates(cls, templates: Mapping[str, Any]) -> FlanContext:
        tasks = {name: flan.compile_task(name, spec) for name, spec in templates["tasks"].items()}
        return cls(tasks=tasks, cues=tuple(templates["answer_cues"]))


def flan_row(row: Mapping[str, Any], source: Source, ctx: FlanContext | None = None) -> Extraction:
    if ctx is None:
        raise ValueError("the FLAN extractor needs a FlanContext")
    task_name = _text(row, source, "task_name")
    key = flan.task_key(task_name)
    task = source.task(key)
    if task is None:
        raise Dropped("task_not_in_category", key)
    template_type = _text(row, source, "template_type")
    if template_type not in source.template_types:
        raise Dropped("not_zero_shot", template_type)
    inputs = _text(row, source, "inputs")
    result = flan.extract(
        inputs,
        ctx.tasks[task.name],
        ctx.cues,
        template_type=template_type,
        max_words=source.max_words,
        min_words=source.min_words,
    )
    for reason, pattern in task.exclude:
        if regex.search(pattern, result.content):
            raise Dropped(reason, task.name)
    return Extraction(
        instruction=result.instruction,
        pattern_id=f"{source.pattern_set}.{task.name}.{result.template_id}",
        dedup_text=result.content,
        task_name=task_name.strip(),
        license_id=task.license.id,
    )


Extractor = Callable[[Mapping[str, Any], Source, "FlanContext | None"], Extraction]

EXTRACTORS: dict[str, Extractor] = {
    "flan": flan_row,
    "humaneval": humaneval,
    "triviaqa": triviaqa,
    "alpaca_generation": alpaca_generation,
    "math500": math500,
}
