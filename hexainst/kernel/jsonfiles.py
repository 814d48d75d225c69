"""Reading JSON and JSON Lines files, and checking them against a JSON Schema, with errors that name the place.

Every stage reads its inputs through these functions, so that a user's bad file is one line
naming the file, the line (or the field) and what is wrong, never a ``UnicodeDecodeError`` or
``JSONDecodeError`` traceback:

- :func:`read_text`: a UTF-8 text file;
- :func:`read_json` / :func:`read_jsonl`: one JSON document / one JSON object per line, each
  optionally checked against a schema;
- :func:`resource_json`: a JSON file shipped inside a package (registries, schemas);
- :func:`schema_errors` / :func:`check_schema`: a document against a JSON Schema, errors with
  the path of the offending field.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from hexainst.kernel.errors import UserError


class FileFormatError(UserError):
    """A file cannot be read, is not UTF-8, not JSON, or does not match its schema."""


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def read_text(path: str | os.PathLike[str], *, what: str = "file") -> str:
    """The text of a UTF-8 file; an unreadable or non-UTF-8 file raises :class:`FileFormatError`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(
            f"{path} line {_line_of(data, exc.start)}: the {what} is not UTF-8 "
            f"(byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc


@functools.cache
def _validator(schema_json: str):
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _describe(error) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return f"field {path!r}: {error.message}" if path else error.message


def schema_errors(doc: Any, schema: Mapping[str, Any]) -> list[str]:
    """Every way ``doc`` breaks ``schema``, each naming the field, in a stable order."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    return [_describe(e) for e in errors]


def check_schema(doc: Any, schema: Mapping[str, Any], where: str) -> None:
    """Raise :class:`FileFormatError` naming ``where`` and the first fields if ``doc`` breaks ``schema``."""
    problems = schema_errors(doc, schema)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise FileFormatError(f"{where}: {'; '.join(problems[:3])}{more}")


def read_json(path: str | os.PathLike[str], *, schema: Mapping[str, Any] | None = None, what: str = "file") -> Any:
    """One JSON document, checked against ``schema`` when given."""
    path = Path(path)
    text = read_text(path, what=what)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{path} line {exc.lineno}: the {what} is not JSON ({exc.msg})") from exc
    if schema is not None:
        check_schema(doc, schema, str(path))
    return doc


def iter_jsonl(
    path: str | os.PathLike[str],
    *,
    what: str = "file",
    check: Callable[[Any, str], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """The objects of a JSON Lines file, one per non-blank line.

    ``check(obj, where)`` is called on each (``where`` names the file and line) and may raise.
    A line that is not a JSON object raises :class:`FileFormatError` naming the file and line.
    """
    path = Path(path)
    for lineno, line in enumerate(read_text(path, what=what).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FileFormatError(f"{where}: not JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise FileFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        if check is not None:
            check(obj, where)
        yield obj


def read_jsonl(
    path: str | os.PathLike[str],
    *,
    what: str = "file",
    check: Callable[[Any, str], None] | None = None,
) -> list[dict[str, Any]]:
    """Every object of a JSON Lines file (see :func:`iter_jsonl`)."""
    return list(iter_jsonl(path, what=what, check=check))


def resource_json(package: str, *parts: str) -> Any:
    """A JSON file shipped inside ``package`` (a registry or a schema), parsed."""
    return json.loads(resources.files(package).joinpath(*parts).read_text("utf-8"))


def dumps_stable(doc: Any) -> str:
    """The toolkit's JSON layout for files people read and diff: sorted keys, 2-space indent, final newline."""
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
