"""The source registry is data, schema-checked and cross-checked against the pattern sets."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from hexainst.builders.natural.registry import RegistryError, load_registry
from hexainst.kernel.vocab import CATEGORIES


def _default(name: str) -> dict:
    return json.loads(resources.files("hexainst.builders.natural").joinpath(name).read_text("utf-8"))


def test_default_registry_covers_six_categories_with_the_agreed_licences():
    reg = load_registry()
    assert sorted({s.category for s in reg.sources}) == sorted(CATEGORIES)
    lic = {s.name: s.license.id for s in reg.sources}
    assert lic["alpaca"] == "CC-BY-NC-4.0"
    assert lic["humaneval"] == "MIT"
    assert lic["math500"] == "MIT"
    assert lic["triviaqa"] == "Apache-2.0"
    flan = {t.name: t.license.id for s in reg.sources for t in s.tasks}
    assert flan["samsum"] == "CC-BY-NC-ND-4.0"
    assert flan["ag_news_subset"] == flan["xsum"] == flan["glue/sst2"] == flan["trec"] == "other"
    assert all(t.license.note for s in reg.sources for t in s.tasks)
    assert reg.target_per_cell == 130
    hub = {s.name: (s.hub.dataset_id, s.hub.config, s.hub.split) for s in reg.sources}
    assert hub["triviaqa"] == ("mandarjoshi90/trivia_qa", "unfiltered.nocontext", "validation")
    assert hub["math500"] == ("HuggingFaceH4/MATH-500", None, "test")
    assert reg.source("flan_classification").hub.streaming is True


def test_unknown_flan_task_name_is_an_error_naming_source_and_task(tmp_path: Path):
    data = _default("sources.json")
    data["sources"][0]["tasks"].append({"name": "no_such_task", "license": {"id": "other", "note": "x"}})
    path = tmp_path / "sources.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RegistryError, match=r"source 'flan_classification': unknown FLAN task name 'no_such_task'"):
        load_registry(path)


def test_task_of_the_wrong_category_is_an_error(tmp_path: Path):
    data = _default("sources.json")
    data["sources"][0]["tasks"].append({"name": "xsum", "license": {"id": "other", "note": "x"}})
    path = tmp_path / "sources.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RegistryError, match="whose pattern set is for summarization"):
        load_registry(path)


def test_schema_violation_names_the_place(tmp_path: Path):
    data = _default("sources.json")
    data["sources"][2]["extractor"] = "magic"
    path = tmp_path / "sources.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RegistryError, match=r"at sources/2/extractor"):
        load_registry(path)


def test_template_file_schema_is_checked(tmp_path: Path):
    data = _default("flan_templates.json")
    data["tasks"]["trec"]["templates"][0]["kind"] = "sideways"
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RegistryError, match="kind"):
        load_registry(templates_path=path)
