"""The annotation guidelines: one Markdown file, shown in every project's instructions panel.

``annotation/guidelines.md`` (also at ``docs/annotation-guidelines.md``, a link to the same file)
is the only copy. Label Studio's instructions panel (a project's ``expert_instruction``) shows
HTML, so the file is rendered here with markdown-it-py (CommonMark, plus tables).
"""

from __future__ import annotations

import functools
from importlib import resources

from markdown_it import MarkdownIt

GUIDELINES_FILE = "guidelines.md"


def guidelines_markdown() -> str:
    """The guidelines as written (Markdown)."""
    return resources.files("hexainst.annotation").joinpath(GUIDELINES_FILE).read_text("utf-8")


@functools.cache
def guidelines_html() -> str:
    """The guidelines rendered to HTML for the instructions panel."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(guidelines_markdown())
    # Label Studio keeps a <style> element and class attributes but strips style attributes (bleach),
    # and its own style sheet removes list markers and table borders: put them back for this block.
    return f'<style>{_CSS}</style>\n<div class="hexainst-guidelines">\n{body}</div>\n'


_CSS = " ".join(
    f".hexainst-guidelines {selector} {{ {rules} }}"
    for selector, rules in {
        "ul": "list-style: disc; padding-left: 1.5em; margin: 0.4em 0;",
        "ol": "list-style: decimal; padding-left: 1.5em; margin: 0.4em 0;",
        "table": "border-collapse: collapse; margin: 0.5em 0;",
        "th, .hexainst-guidelines td": "border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: left; vertical-align: top;",
        "blockquote": "border-left: 3px solid #ccc; margin: 0.4em 0; padding: 0.2em 0.8em;",
        "h2": "margin-top: 1em;",
        "p": "margin: 0.4em 0;",
    }.items()
)
