"""Markdown written from Jinja2 templates: reports and cards lay out text here, Python decides what it says.

One environment per template folder. It is strict (a name the template uses and the caller did not
give is an error, not an empty string), keeps the file's final newline, and drops the line of a
block tag (``{% if %}`` on a line of its own writes nothing), so a template reads like its output.
Nothing is escaped: the output is Markdown, not HTML.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2


def fixed(value: Any, spec: str) -> str:
    """``format(value, spec)``: the template's way to write a number (``{{ x|f("+.4f") }}``)."""
    return format(value, spec)


def or_na(value: Any, spec: str = ".4f") -> str:
    """A number formatted, or "n/a" when it is missing (None)."""
    return "n/a" if value is None else format(value, spec)


#: Filters every environment has: ``f`` (format spec), ``num`` (spec, None as "n/a"), ``json`` (json.dumps).
FILTERS: dict[str, Callable[..., Any]] = {"f": fixed, "num": or_na, "json": json.dumps}


def environment(folder: str | Path, filters: Mapping[str, Callable[..., Any]] | None = None,
                functions: Mapping[str, Callable[..., Any]] | None = None, **options: Any) -> jinja2.Environment:
    """The environment of the templates in ``folder``, with :data:`FILTERS`, ``filters`` and global ``functions``.

    ``options`` override the whitespace settings above for templates written for plain Jinja (the card)."""
    settings = {"keep_trailing_newline": True, "trim_blocks": True, "lstrip_blocks": True, **options}
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        **settings,
    )
    env.filters.update(FILTERS)
    env.filters.update(filters or {})
    env.globals.update(functions or {})
    return env
