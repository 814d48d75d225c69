"""The natural source registry and the FLAN template pattern sets, both kept as data.

``sources.json`` lists one entry per (source, category); ``flan_templates.json`` holds, per
FLAN task, the zero-shot templates as format strings. Both are validated against their own
JSON Schema (``*.schema.json`` beside them) when loaded, and cross-checked: every FLAN task a
source lists must have a pattern set of the same category.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from hexainst.kernel.errors import UserError

PACKAGE = "hexainst.builders.natural"
SOURCES_FILE = "sources.json"
TEMPLATES_FILE = "flan_templates.json"


class RegistryError(UserError):
    """The source registry or the FLAN pattern sets are malformed or inconsistent."""


@dataclass(frozen=True)
class License:
    id: str
    note: str


@dataclass(frozen=True)
class FlanTask:
    name: str
    license: License
    aliases: tuple[str, ...] = ()
    #: (reason, regex) pairs: a row whose extracted content matches is dropped with that reason.
    exclude: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class HubSpec:
    dataset_id: str
    config: str | None
    split: str
    streaming: bool
    revision: str | None = None
    max_rows_scanned: int | None = None
    max_rows_per_task: int | None = None


@dataclass(frozen=True)
class Source:
    """One registry entry: a public dataset read for one category."""

    name: str
    category: str
    extractor: str
    pattern_set: str
    hub: HubSpec
    mirror_files: tuple[str, ...]
    mirror_split: str
    columns: dict[str, str]
    row_id_column: str | None
    license: License
    max_words: int | None = None
    min_words: int | None = None
    template_types: tuple[str, ...] = ()
    tasks: tuple[FlanTask, ...] = ()
    description: str = ""

    @property
    def split(self) -> str:
        return self.hub.split

    def task(self, name: str) -> FlanTask | None:
        for task in self.tasks:
            if task.name == name or name in task.aliases:
                return task
        return None


@dataclass(frozen=True)
class Registry:
    target_per_cell: int
    sources: tuple[Source, ...]
    templates: dict[str, Any] = field(default_factory=dict)

    def source(self, name: str) -> Source:
        for src in self.sources:
            if src.name == name:
                return src
        known = ", ".join(s.name for s in self.sources)
        raise RegistryError(f"unknown natural source {name!r}; the registry has: {known}")


def _read_json(path: Path | None, default_name: str) -> tuple[Any, str]:
    if path is None:
        text = resources.files(PACKAGE).joinpath(default_name).read_text("utf-8")
        return json.loads(text), f"{PACKAGE}/{default_name}"
    try:
        return json.loads(Path(path).read_text("utf-8")), str(path)
    except OSError as exc:
        raise RegistryError(f"cannot read registry file {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise RegistryError(f"registry file {path} is not valid JSON: line {exc.lineno}: {exc.msg}") from exc


def _check_schema(data: Any, schema_name: str, where: str) -> None:
    schema = json.loads(resources.files(PACKAGE).joinpath(schema_name).read_text("utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        first = errors[0]
        loc = "/".join(str(p) for p in first.absolute_path) or "<top>"
        raise RegistryError(f"{where}: at {loc}: {first.message}")


def _license(d: dict[str, Any]) -> License:
    return License(id=d["id"], note=d["note"])


def load_registry(sources_path: Path | None = None, templates_path: Path | None = None) -> Registry:
    """Load, schema-check and cross-check the registry (defaults: the files in this package)."""
    data, where = _read_json(sources_path, SOURCES_FILE)
    _check_schema(data, "sources.schema.json", where)
    templates, twhere = _read_json(templates_path, TEMPLATES_FILE)
    _check_schema(templates, "flan_templates.schema.json", twhere)

    sources = []
    seen: set[str] = set()
    for entry in data["sources"]:
        name = entry["name"]
        if name in seen:
            raise RegistryError(f"{where}: source {name!r} is listed twice")
        seen.add(name)
        hub = entry["hub"]
        tasks = tuple(
            FlanTask(t["name"], _license(t["license"]), tuple(t.get("aliases", ())),
                     tuple((e["reason"], e["regex"]) for e in t.get("exclude", ()))) for t in entry.get("tasks", [])
        )
        for task in tasks:
            spec = templates["tasks"].get(task.name)
            if spec is None:
                raise RegistryError(
                    f"{where}: source {name!r}: unknown FLAN task name {task.name!r}: "
                    f"no pattern set for it in {twhere} (known: {', '.join(sorted(templates['tasks']))})"
                )
            if spec["category"] != entry["category"]:
                raise RegistryError(
                    f"{where}: source {name!r} ({entry['category']}) lists task {task.name!r}, "
                    f"whose pattern set is for {spec['category']}"
                )
            if (spec["category"] == "classification"
                    and any("{options_}" in f for t in spec["templates"] for f in t["formats"])
                    and not spec.get("labels")):
                raise RegistryError(f"{twhere}: task {task.name!r} uses {{options_}} but has no labels")
        sources.append(
            Source(
                name=name,
                category=entry["category"],
                extractor=entry["extractor"],
                pattern_set=entry["pattern_set"],
                hub=HubSpec(
                    dataset_id=hub["dataset_id"],
                    config=hub["config"],
                    split=hub["split"],
                    streaming=hub["streaming"],
                    revision=hub.get("revision"),
                    max_rows_scanned=hub.get("max_rows_scanned"),
                    max_rows_per_task=hub.get("max_rows_per_task"),
                ),
                mirror_files=tuple(entry["mirror"]["files"]),
                mirror_split=entry["mirror"].get("split", hub["split"]),
                columns=dict(entry["columns"]),
                row_id_column=entry.get("row_id_column"),
                license=_license(entry["license"]),
                max_words=entry.get("max_words"),
                min_words=entry.get("min_words"),
                template_types=tuple(entry.get("template_types", ())),
                tasks=tasks,
                description=entry.get("description", ""),
            )
        )
    return Registry(target_per_cell=data["target_per_cell"], sources=tuple(sources), templates=templates)
