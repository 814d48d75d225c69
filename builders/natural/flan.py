"""FLAN zero-shot rows -> classification / summarization instructions.

A FLAN row's ``inputs`` is one of the task's templates filled with the raw example. We
recognise the template by matching the task's format strings (``flan_templates.json``),
compiled to regular expressions by :func:`compile_format`:

* literal text matches case-insensitively, any whitespace run in the format matching any
  (possibly empty) whitespace run in the row, because FLAN's renderings differ in spacing;
* ``{text}`` (or any name) lazily captures the content the instruction carries;
* ``{*}`` matches anything, captures nothing (for reversed templates);
* ``{options_}`` matches the task's label list in any of FLAN's randomised option renderings
  ("OPTIONS: a). World. b). Sports.", "(1). negative.", "+ description", "[+] entity", ...):
  an optional header phrase, then every label in order, each with an optional marker.

Before matching, the task's ``text_fixes`` (raw-data artefacts such as ``#39;``) are applied
and a trailing answer cue line ("Answer:", "Summary:", "I think the answer is") is removed.
Reversed templates are tried first; a row they match is dropped. A task-template match
becomes the instruction: the (fixed, cue-less) inputs with the option block replaced by one
normalised list at the end (``Options:`` then ``- label`` lines), then :func:`normalize`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import regex

from hexainst.builders.text import normalize, word_count

_PLACEHOLDER = regex.compile(r"\{(\*|[a-z_]+)\}")
_MARKER = r"(?:\[[-+*]\]|--|[-+*]|[(\[]?(?:[0-9]{1,2}|[A-Za-z]{1,4})[)\]]?[.)]?)"
_HEADER = r"(?:[A-Za-z][A-Za-z ]{0,40}[:.])"
#: HTML left in raw news text after the task's text_fixes: such a row is dropped ("markup").
_MARKUP = regex.compile(r"</?(?:a|b|i|p|br|em|strong|font|span|div|img|table|tr|td)\b[^>\n]*>?", regex.IGNORECASE)


class Dropped(Exception):
    """A row that yields no candidate; ``reason`` is the report's drop reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason if not detail else f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def options_pattern(labels: list[str] | tuple[str, ...]) -> str:
    """Regex (no groups) for an option block listing ``labels`` in order, any FLAN rendering."""
    items = [rf"(?:{_MARKER}[^\S\n]*)?{regex.escape(label)}[.;,]?" for label in labels]
    return rf"(?:{_HEADER}\s*)?" + r"\s*".join(items)


def compile_format(fmt: str, labels: list[str] | tuple[str, ...] | None = None) -> regex.Pattern:
    """Compile one template format string to an anchored, case-insensitive regex."""
    parts: list[str] = [r"\s*"]
    pos = 0
    names: set[str] = set()
    for m in _PLACEHOLDER.finditer(fmt):
        parts.append(_literal(fmt[pos : m.start()]))
        name = m.group(1)
        if name == "*":
            parts.append(r"(?:.*?)")
        elif name == "options_":
            if not labels:
                raise ValueError(f"format {fmt!r} uses {{options_}} but the task has no labels")
            parts.append(rf"\s*(?P<options_>{options_pattern(labels)})\s*")
        else:
            if name in names:
                raise ValueError(f"format {fmt!r} uses {{{name}}} twice")
            names.add(name)
            parts.append(rf"\s*(?P<{name}>\S.*?)\s*")
        pos = m.end()
    parts.append(_literal(fmt[pos:]))
    parts.append(r"\s*")
    return regex.compile("".join(parts), regex.IGNORECASE | regex.DOTALL | regex.V0)


def _squeeze(text: str) -> str:
    return "".join(text.lower().split())


def _literal_chunks(fmt: str) -> tuple[str, ...]:
    return tuple(c for c in (_squeeze(x) for x in _PLACEHOLDER.split(fmt)[::2]) if c)


def _literal(text: str) -> str:
    out = []
    for chunk in regex.split(r"(\s+)", text):
        if not chunk:
            continue
        out.append(r"\s*" if chunk.isspace() else regex.escape(chunk))
    return "".join(out)


@dataclass(frozen=True)
class Template:
    task: str
    id: str
    kind: str
    requires_options: bool
    patterns: tuple[regex.Pattern, ...]
    #: Per pattern: does its format show the options ({options_})?
    with_options: tuple[bool, ...] = ()
    #: Per pattern: its literal chunks, lower-cased without whitespace (a quick pre-filter).
    literals: tuple[tuple[str, ...], ...] = ()

    def candidates(self, template_type: str | None, squeezed: str) -> list[regex.Pattern]:
        """The patterns worth trying on a row of ``template_type`` whose inputs, lower-cased
        without whitespace, are ``squeezed``. ``zs_opt`` rows of a template that has an
        options format must show the options; ``*_noopt`` rows must not."""
        triples = list(zip(self.patterns, self.with_options, self.literals))
        if template_type and any(w for _, w, _ in triples):
            want = template_type.endswith("_opt")
            triples = [t for t in triples if t[1] == want]
        return [p for p, _, lits in triples if all(lit in squeezed for lit in lits)]


@dataclass(frozen=True)
class TaskPatterns:
    name: str
    category: str
    labels: tuple[str, ...]
    fixes: tuple[tuple[regex.Pattern, str], ...]
    templates: tuple[Template, ...]


@dataclass(frozen=True)
class FlanExtraction:
    instruction: str
    content: str
    template_id: str
    has_options: bool


def compile_task(name: str, spec: dict[str, Any]) -> TaskPatterns:
    labels = tuple(spec.get("labels", ()))
    templates = []
    # Reversed templates first, so a reversed row is never taken for a task row.
    ordered = sorted(spec["templates"], key=lambda t: t["kind"] != "reversed")
    for t in ordered:
        templates.append(
            Template(
                task=name,
                id=t["id"],
                kind=t["kind"],
                requires_options=bool(t.get("requires_options", False)),
                patterns=tuple(compile_format(f, labels) for f in t["formats"]),
                with_options=tuple("{options_}" in f for f in t["formats"]),
                literals=tuple(_literal_chunks(f) for f in t["formats"]),
            )
        )
    fixes = tuple((regex.compile(a), b) for a, b in spec.get("text_fixes", ()))
    return TaskPatterns(name, spec["category"], labels, fixes, tuple(templates))


@functools.lru_cache(maxsize=8)
def _cue_regex(cues: tuple[str, ...]) -> regex.Pattern:
    # A cue sits on a line of its own, or follows an ellipsis ("...I think the answer is").
    return regex.compile(
        r"(?:(?:^|\n)[^\S\n]*|\.{2,3}[^\S\n]*)(?:" + "|".join(cues) + r")[^\S\n]*\s*\Z", regex.IGNORECASE
    )


def strip_answer_cue(text: str, cues: tuple[str, ...]) -> str:
    """Remove one trailing line that only prompts for the answer (``Answer:``, ``Summary:``),
    or such a cue glued to the option list by an ellipsis (``...I think the answer is``)."""
    if not cues:
        return text
    return _cue_regex(cues).sub("", text.rstrip()).rstrip()


def task_key(task_name: str) -> str:
    """FLAN task name without version or ``huggingface:`` prefix: ``glue/sst2:2.0.0`` -> ``glue/sst2``."""
    name = task_name.strip()
    if name.startswith("huggingface:"):
        return name[len("huggingface:") :]
    return regex.sub(r":[0-9][0-9.]*$", "", name)


def render_options(labels: tuple[str, ...]) -> str:
    return "Options:\n" + "\n".join(f"- {label}" for label in labels)


def extract(
    inputs: str,
    task: TaskPatterns,
    cues: tuple[str, ...],
    *,
    template_type: str | None = None,
    max_words: int | None = None,
    min_words: int | None = None,
) -> FlanExtraction:
    """Turn one FLAN ``inputs`` string into an instruction, or raise :class:`Dropped`.

    ``template_type`` (``zs_opt`` / ``zs_noopt``, when the row has it) restricts which formats
    of a template may match, so that an option block is never swallowed into the text.

    Drop reasons: ``reversed_template``, ``no_template_match``, ``needs_options``, ``markup``
    (HTML tags left in the text), ``too_long``, ``too_short``, ``empty``.
    """
    text = inputs
    for pattern, repl in task.fixes:
        text = pattern.sub(repl, text)
    text = strip_answer_cue(text, cues)
    if not text.strip():
        raise Dropped("empty")
    squeezed = _squeeze(text)
    for template in task.templates:
        for pattern in template.candidates(template_type, squeezed):
            try:
                m = pattern.fullmatch(text, timeout=2.0)
            except TimeoutError:
                m = None
            if m is None:
                continue
            if template.kind == "reversed":
                raise Dropped("reversed_template", f"{task.name}:{template.id}")
            groups = m.groupdict()
            has_options = groups.get("options_") is not None
            if template.requires_options and not has_options:
                raise Dropped("needs_options", f"{task.name}:{template.id}")
            content = normalize("\n\n".join(v for k, v in groups.items() if k != "options_" and v), keep_indentation=False)
            if _MARKUP.search(content):
                raise Dropped("markup", f"{task.name}:{template.id}")
            n = word_count(content)
            if max_words is not None and n > max_words:
                raise Dropped("too_long", f"{n} words > {max_words}")
            if min_words is not None and n < min_words:
                raise Dropped("too_short", f"{n} words < {min_words}")
            if has_options:
                start, end = m.span("options_")
                # A cue the template glued after the options ("{options_} I think the answer is")
                # is the body's last words once the options are out.
                body = normalize(strip_answer_cue(text[:start] + "\n" + text[end:], cues), keep_indentation=False)
                instruction = f"{body}\n\n{render_options(task.labels)}"
            else:
                instruction = normalize(text, keep_indentation=False)
            return FlanExtraction(instruction, content, template.id, has_options)
    raise Dropped("no_template_match", task.name)
