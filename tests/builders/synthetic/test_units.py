"""Pure parts of the synthetic builder: answer parsing, filters, meta-prompts, cache, endpoint."""

from __future__ import annotations

import json

import pytest

from hexainst.builders.synthetic import prompts
from hexainst.builders.synthetic.cache import RequestCache, request_key
from hexainst.builders.synthetic.client import MalformedResponse, wire_answer
from hexainst.builders.synthetic.config import SyntheticConfig
from hexainst.builders.synthetic.endpoint import NO_KEY, requested, resolve_endpoint
from hexainst.builders.synthetic.filters import CandidateFilter, blacklist_hit, format_reason
from hexainst.builders.synthetic.parsing import parse_chat_answer, parse_list_continuation, split_reasoning
from hexainst.kernel.errors import UserError
from hexainst.kernel.settings import SettingError
from hexainst.kernel.vocab import CATEGORIES

SCHEMA = {"type": "object", "required": ["instruction"], "properties": {"instruction": {"type": "string", "minLength": 1}}}


@pytest.mark.parametrize(
    ("content", "finish", "instruction", "reason"),
    [
        ('{"instruction": "Name the capital of Peru."}', "stop", "Name the capital of Peru.", None),
        ('```json\n{"instruction": "Add 2 and 3."}\n```', "stop", "Add 2 and 3.", None),
        ('<think>the user wants math</think>\n{"instruction": "Add 2 and 3."}', "stop", "Add 2 and 3.", None),
        ('{"instruction": "Describe rain.",}', "stop", "Describe rain.", None),  # trailing comma repaired
        ('{"instruction": "Add 2 and', "length", None, "truncated"),
        ('<think>I will write {"instruction": "x"}', "stop", None, "reasoning_leak"),
        ("", "stop", None, "empty"),
        (None, "stop", None, "empty"),
        ("<think>only thoughts</think>", "stop", None, "empty"),
        ("Sure! Write a poem.", "stop", None, "invalid_json"),
        ('{"instruction": "a" "b"}', "stop", None, "invalid_json"),
        ('{"task": "Write a poem."}', "stop", None, "schema"),
        ('{"instruction": ""}', "stop", None, "schema"),
        ('{"instruction": 7}', "stop", None, "schema"),
    ],
)
def test_parse_chat_answer(content, finish, instruction, reason):
    parsed = parse_chat_answer(content, finish, SCHEMA)
    assert parsed.instruction == instruction
    assert parsed.reason == reason


def test_reasoning_is_kept_apart():
    text, reasoning = split_reasoning("<think>step one</think>{\"instruction\": \"x\"}<think>two</think>")
    assert text == '{"instruction": "x"}'
    assert reasoning == "step one\ntwo"


def test_list_continuation_takes_the_first_line():
    assert parse_list_continuation(" Name three rivers in Asia.\n4. next", "stop").instruction == "Name three rivers in Asia."
    assert parse_list_continuation("\n4. next", "stop").reason == "empty"
    assert parse_list_continuation("A very long line that never", "length").reason == "truncated"


def test_wire_answer_reads_both_routes_and_rejects_other_shapes():
    chat = {"model": "m", "choices": [{"message": {"content": "c", "reasoning_content": "r"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "completion_tokens_details": {"reasoning_tokens": 3}}}
    entry = wire_answer(chat, "chat")
    assert entry["content"] == "c" and entry["reasoning_content"] == "r"
    assert entry["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "reasoning_tokens": 3}
    text = wire_answer({"choices": [{"text": "t", "finish_reason": "length"}]}, "completions")
    assert text["content"] == "t" and text["finish_reason"] == "length" and text["usage"]["prompt_tokens"] == 0
    for bad in ({}, {"choices": []}, {"choices": [{"message": {"content": 3}}]}, [1, 2]):
        with pytest.raises(MalformedResponse):
            wire_answer(bad, "chat")


def test_format_and_blacklist():
    assert format_reason("Here is a task: add 2 and 3.") == "format"
    assert format_reason('{"instruction": "x"}') == "format"
    assert format_reason("- bullet start") == "format"
    assert format_reason('"Quoted" text is fine to classify.') is None
    assert format_reason("Write a haiku about snow.") is None
    assert blacklist_hit("Describe the IMAGE below.") == "image"
    assert blacklist_hit("Write a function that reads a file.") == "file"
    assert blacklist_hit("Profile the imagery of Keats.") is None  # whole words only


def test_candidate_filter_order_and_state():
    natural = {"nat-1": "What is the capital city of the country of France and when was it founded by the Romans?"}
    f = CandidateFilter({"math": ["A train travels 180 km in 2.5 hours. What is its average speed?"]}, natural)
    assert f.check("generalqa", "Short?") == ("too_short", "1 words")
    assert f.check("math", "Here is a problem: 2 + 2 = ?")[0] == "format"
    assert f.check("code", "Write a Python function that plots the sine curve on a chart.")[0] == "blacklist"
    assert f.check("math", "A train travels 180 km in 2.5 hours. What is its average speed?")[0] == "copies_example"
    assert f.check("generalqa", "What is the capital city of the country of France, and when was it founded?")[0] == "near_duplicate"
    # 13 consecutive words shared with the natural text, but a different question overall
    contaminated = ("Answer briefly: the capital city of the country of France and when was it founded by the Romans "
                    "matters less than its rivers, bridges, museums, markets, parks and the long history of trade routes.")
    assert f.check("generalqa", contaminated) == ("contamination", "4 shared 13-grams")  # 16 shared words
    ok = "Which river flows through Vienna, Bratislava and Budapest before reaching the Black Sea?"
    assert f.check("generalqa", ok) == (None, "")
    assert f.check_kept("generalqa", ok) == (None, "")
    f.keep("generalqa", "generalqa:0", ok)
    assert f.check_kept("generalqa", ok) == ("near_duplicate", "generalqa:0")
    assert f.check_kept("math", ok) == (None, "")  # kept rows are indexed per category


def test_metaprompts_are_valid_and_complete():
    table = prompts.metaprompts()
    assert set(table["categories"]) == set(CATEGORIES)
    for c in CATEGORIES:
        msgs = prompts.chat_messages(prompts.slot(c, 0, 0))
        assert msgs[0]["role"] == "system" and msgs[-1]["role"] == "user"
        assert [m["role"] for m in msgs[1:-1]] == ["user", "assistant"] * len(table["categories"][c]["examples"])
        for m in msgs[2:-1:2]:
            assert parse_chat_answer(m["content"], "stop", table["answer_schema"]).instruction
        # the meta-prompt's own examples and topics pass the format, length and blacklist checks
        f = CandidateFilter({}, {})
        for ex in table["categories"][c]["examples"]:
            assert f.check(c, ex["instruction"]) == (None, ""), ex
        assert prompts.prompt_version(c).startswith(table["version"] + "/")


def test_slot_plan_is_seeded_and_diverse():
    a = [prompts.slot("math", k, 0) for k in range(50)]
    assert a == [prompts.slot("math", k, 0) for k in range(50)]
    assert len({(s.task_type, s.topic) for s in a}) == 50  # no pair repeats within one cycle
    assert [s.topic for s in a] != [prompts.slot("math", k, 1).topic for k in range(50)]


def test_request_key_is_stable_and_sensitive():
    base = request_key("m", "chat", [{"role": "user", "content": "x"}], {"seed": 1, "max_tokens": 5}, "v1")
    assert base == request_key("m", "chat", [{"role": "user", "content": "x"}], {"max_tokens": 5, "seed": 1}, "v1")
    assert len(base) == 64
    for other in (request_key("m2", "chat", [{"role": "user", "content": "x"}], {"seed": 1, "max_tokens": 5}, "v1"),
                  request_key("m", "chat", [{"role": "user", "content": "y"}], {"seed": 1, "max_tokens": 5}, "v1"),
                  request_key("m", "chat", [{"role": "user", "content": "x"}], {"seed": 2, "max_tokens": 5}, "v1"),
                  request_key("m", "chat", [{"role": "user", "content": "x"}], {"seed": 1, "max_tokens": 5}, "v2")):
        assert other != base


def test_cache_roundtrip_and_atomicity(tmp_path):
    cache = RequestCache(tmp_path)
    key = "ab" + "0" * 62
    assert cache.get(key) is None
    cache.put(key, {"content": "hello"})
    assert cache.get(key)["content"] == "hello"
    assert [p.name for p in (tmp_path / "ab").iterdir()] == [f"{key}.json"]  # no temp file left
    other = "cd" + "1" * 62
    cache.path(other).parent.mkdir(parents=True)
    cache.path(other).write_text(json.dumps({"content": "x", "key": key}))  # an entry under the wrong name
    assert cache.get(other) is None
    assert len(cache) == 2


def test_endpoint_resolution():
    e = resolve_endpoint(env={})
    assert e.embedded == "gemma-3-270m" and e.base_url is None and e.route == "completions"
    e = resolve_endpoint(generator="smollm2-135m-instruct", env={})
    assert e.route == "chat"
    e = resolve_endpoint(env={"DEEPSEEK_API_KEY": "sk-abc"})
    assert (e.base_url, e.model, e.api_key) == ("https://api.deepseek.com", "deepseek-reasoner", "sk-abc")
    assert "sk-abc" not in repr(e)
    e = resolve_endpoint(env={"HEXAINST_BASE_URL": "http://127.0.0.1:8123/v1", "HEXAINST_MODEL": "qwen"})
    assert (e.model, e.api_key, e.host) == ("qwen", NO_KEY, "127.0.0.1")
    e = resolve_endpoint("https://user:pw@api.example.org:8443/v1", "m", env={})
    assert e.host == "api.example.org:8443"
    with pytest.raises(UserError, match="DEEPSEEK_API_KEY"):
        resolve_endpoint("https://api.deepseek.com", env={})
    with pytest.raises(UserError, match="not an http"):
        resolve_endpoint("ftp://x", env={})
    with pytest.raises(UserError, match="unknown embedded generator"):
        resolve_endpoint(generator="nope", env={})


# --- settings: each range declared once, errors name the setting (never a command-line flag) ----------

@pytest.mark.parametrize(("changes", "setting", "problem"), [
    ({"per_category": 0}, "per_category", "must be >= 1, got 0"),
    ({"candidates": 17}, "candidates", "must be in 1..16, got 17"),
    ({"temperature": 2.5}, "temperature", "must be in [0, 2], got 2.5"),
    ({"top_p": 0.0}, "top_p", "must be in (0, 1], got 0.0"),
    ({"concurrency": 0}, "concurrency", "must be in 1..256, got 0"),
    ({"max_attempts": 11}, "max_attempts", "must be in 1..10, got 11"),
    ({"timeout": 0.0}, "timeout", "must be > 0, got 0.0"),
    ({"max_retries": -1}, "max_retries", "must be in 0..20, got -1"),
    ({"max_slots_factor": 0.5}, "max_slots_factor", "must be >= 1, got 0.5"),
    ({"embedded_threads": 0}, "embedded_threads", "must be in 1..256, got 0"),
    ({"embedded_batch": 300}, "embedded_batch", "must be in 1..256, got 300"),
    ({"embedded_dtype": "int8"}, "embedded_dtype", "must be one of auto, float32, bfloat16, got 'int8'"),
    ({"membership_model": "m", "membership_k": 1.5}, "membership_k", "must be in (0, 1], got 1.5"),
    ({"membership_k": 0.2}, "membership_k", "needs a membership model"),
    ({"membership_threshold": 0.0}, "membership_threshold", "needs a membership model"),
    ({"extra": {"maths": 3}}, "extra", "names unknown categories maths"),
    ({"extra": {"math": -1}}, "extra", "counts must be integers >= 0"),
])
def test_a_synthetic_setting_out_of_range_names_the_setting(changes, setting, problem):
    with pytest.raises(SettingError) as caught:
        SyntheticConfig(**changes).check()
    assert caught.value.setting == setting
    assert caught.value.problem.startswith(problem)
    assert "--" not in str(caught.value)


def test_the_endpoint_asked_for_comes_from_the_arguments_then_the_environment():
    env = {"HEXAINST_BASE_URL": "http://127.0.0.1:9/v1", "HEXAINST_MODEL": "from-env"}
    assert requested(None, None, env) == ("http://127.0.0.1:9/v1", "from-env")
    assert requested("http://h/v1", "m", env) == ("http://h/v1", "m")
    assert requested(None, None, {}) == (None, None)
    assert resolve_endpoint(None, None, env=env).model == "from-env"


def test_the_model_is_decided_by_resolve_endpoint_alone():
    """The named model, else $HEXAINST_MODEL, else the first one the endpoint lists (asked once, also to check a
    named model); offline, a remote endpoint needs a model named (the cache is keyed by it) and is not asked."""
    asked = []

    def listed(endpoint):
        asked.append(endpoint.model)
        return ["first", "second"]

    assert resolve_endpoint("http://127.0.0.1:9/v1", None, env={}, listed=listed).model == "first"
    assert resolve_endpoint("http://127.0.0.1:9/v1", "second", env={}, listed=listed).model == "second"
    assert resolve_endpoint("http://127.0.0.1:9/v1", env={"HEXAINST_MODEL": "e"}, listed=listed).model == "e"
    assert asked == [None, "second", "e"]
    assert resolve_endpoint(generator="smollm2-135m-instruct", env={}, listed=listed).model == "smollm2-135m-instruct"
    assert len(asked) == 3  # the embedded generator is not asked
    with pytest.raises(SettingError) as caught:
        resolve_endpoint("http://127.0.0.1:9/v1", None, env={}, offline=True, listed=listed)
    assert caught.value.setting == "model" and "offline replay" in caught.value.problem
    assert resolve_endpoint("http://127.0.0.1:9/v1", "m", env={}, offline=True, listed=listed).model == "m"
    assert len(asked) == 3  # offline: no request
