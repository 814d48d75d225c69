"""Text normalisation shared by the natural and synthetic builders.

``normalize`` is the one function every instruction goes through before it is compared,
de-duplicated or written. Its rules, in order:

1. Newlines: ``\\r\\n``, ``\\r``, U+2028 and U+2029 become ``\\n``.
2. Unicode NFC (canonical composition; never NFKC, which would rewrite characters such as
   ``²`` or ``ﬁ`` that may be meaningful in math or code).
3. Control characters (category ``Cc``) are removed, except ``\\n`` and ``\\t``; so are the
   invisible format characters zero-width space, word joiner, BOM and soft hyphen. Other
   unicode spaces (no-break space, thin space, ...) become a plain space.
4. Per line, outside fenced code blocks (lines between two ```` ``` ```` fences):
   the *leading* indentation is kept as it is (so indented code stays indented), runs of
   spaces and tabs *inside* the line collapse to one space, and trailing whitespace goes.
   LaTeX is unaffected by this: TeX itself treats a run of spaces as one space, and
   backslashes, braces and ``$`` are never touched.
5. Inside fenced code blocks only trailing whitespace is removed: interior spacing in code
   (aligned comments, string literals with two spaces) is kept byte for byte.
6. More than one blank line in a row becomes one blank line (outside fences).
7. Leading and trailing blank lines are removed and the whole text is stripped, so the first
   line carries no indentation. (Instructions start with prose; a text that starts with
   indented code loses only its first line's indentation. Wrap such code in a fence.)

``normalize`` is idempotent: ``normalize(normalize(t)) == normalize(t)``.

``word_count`` counts whitespace-separated tokens of the text; it is the length measure the
builders' word bounds use.
"""

from __future__ import annotations

import re
import unicodedata

import regex

__all__ = ["normalize", "word_count", "comparison_key"]

_NEWLINES = re.compile(r"\r\n|\r|\u2028|\u2029")
#: Invisible format characters that carry no meaning in an instruction.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u00ad"))
#: Control characters other than newline and tab.
_CONTROL = regex.compile(r"[\p{Cc}--[\n\t]]", regex.V1)
#: Unicode space separators other than the plain space (no-break, thin, ideographic, ...).
_UNICODE_SPACE = regex.compile(r"[\p{Zs}--[ ]]", regex.V1)
_FENCE = re.compile(r"^\s*```")
_INNER_SPACE = re.compile(r"[ \t]+")
_LEADING = re.compile(r"^[ \t]*")


def _clean_chars(text: str) -> str:
    text = _CONTROL.sub("", text)
    text = _UNICODE_SPACE.sub(" ", text)
    return text.translate(_INVISIBLE)


def normalize(text: str, *, keep_indentation: bool = True) -> str:
    """Normalise unicode and whitespace of ``text`` (see the module docstring for the rules).

    ``keep_indentation=False`` is for prose (news articles, dialogues, reviews): leading
    whitespace of every line outside fenced code is removed as well.
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize expects a str, got {type(text).__name__}")
    text = _NEWLINES.sub("\n", text)
    text = unicodedata.normalize("NFC", text)
    text = _clean_chars(text)

    lines: list[str] = []
    in_fence = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
            lines.append(line.rstrip())
            continue
        if in_fence:
            lines.append(line.rstrip())
            continue
        indent = _LEADING.match(line).group(0)  # type: ignore[union-attr]
        body = _INNER_SPACE.sub(" ", line[len(indent):]).rstrip()
        if not keep_indentation:
            indent = ""
        if not body:
            # A blank line: collapse runs of blank lines to one.
            if lines and lines[-1] == "":
                continue
            lines.append("")
            continue
        lines.append(indent + body)
    return "\n".join(lines).strip()


_WORD = re.compile(r"\S+")


def word_count(text: str) -> int:
    """Number of whitespace-separated tokens in ``text`` (``"a  b\\nc"`` -> 3)."""
    return sum(1 for _ in _WORD.finditer(text))


def comparison_key(text: str) -> str:
    """A key under which two texts count as exact duplicates.

    The normalised text, case-folded, with every whitespace run (newlines included) as one
    space: two instructions that differ only in case or line wrapping are the same
    instruction.
    """
    return " ".join(normalize(text).casefold().split())
