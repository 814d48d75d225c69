"""FLAN pattern sets on made-up rows rendered the way FLAN renders its templates."""

from __future__ import annotations

import pytest
import regex

from hexainst.builders.natural import flan
from hexainst.builders.natural.registry import load_registry

TOPICS = ["World", "Sports", "Business", "Science/Tech"]
ARTICLE = "The city council approved a new budget for parks on Monday after a long debate."


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def tasks(registry):
    return {name: flan.compile_task(name, spec) for name, spec in registry.templates["tasks"].items()}


@pytest.fixture(scope="module")
def cues(registry):
    return tuple(registry.templates["answer_cues"])


OPTION_RENDERINGS = [
    "OPTIONS:\n- World\n- Sports\n- Business\n- Science/Tech",
    "Options: A. World. B. Sports. C. Business. D. Science/Tech.",
    "Choose from:\n(1). World\n(2). Sports\n(3). Business\n(4). Science/Tech",
    "pick from the following. i. World; ii. Sports; iii. Business; iv. Science/Tech;",
    "Available choices:\n[+] World\n[+] Sports\n[+] Business\n[+] Science/Tech",
    "OPT:\n[-] World\n[-] Sports\n[-] Business\n[-] Science/Tech",
    "Options are: -- World; -- Sports; -- Business; -- Science/Tech;",
]


@pytest.mark.parametrize("options", OPTION_RENDERINGS)
def test_classification_options_in_any_rendering_become_one_list(tasks, cues, options):
    inputs = f"{ARTICLE}\n\nMulti-choice problem: What is this text about?\n{options}\nAnswer:"
    got = flan.extract(inputs, tasks["ag_news_subset"], cues, template_type="zs_opt")
    assert got.template_id == "t0"
    assert got.has_options
    assert got.content == ARTICLE
    assert got.instruction == (
        f"{ARTICLE}\n\nMulti-choice problem: What is this text about?\n\n"
        "Options:\n- World\n- Sports\n- Business\n- Science/Tech"
    )


def test_options_before_the_question_move_to_the_end(tasks, cues):
    inputs = ("Select from: i. negative; ii. positive;\nShort movie review: a warm , funny film .\n"
              "Did the critic thinking positively or negatively of the movie?\n\n")
    got = flan.extract(inputs, tasks["glue/sst2"], cues, template_type="zs_opt")
    assert got.template_id == "t1"
    assert got.instruction.startswith("Short movie review: a warm, funny film.\n")
    assert got.instruction.endswith("Options:\n- negative\n- positive")
    assert "Select from" not in got.instruction


@pytest.mark.parametrize(
    "task,inputs",
    [
        ("ag_news_subset", f"Write a title:\n{ARTICLE}\nTitle:"),
        ("ag_news_subset", f"{ARTICLE}\n\nWhat is a good title for this?"),
        ("trec", "Please ask me a question."),
        ("glue/sst2", "Write a positive movie review."),
        ("glue/sst2", 'Generate a short movie review that has "[b]." sentiment (Pick from:\n[a]. negative\n[b]. positive).'),
        ("xsum", "Write an article based on this summary:\n\nA council approved a parks budget.\n\nArticle:"),
        ("xsum", 'Write an article based on this "A council approved a parks budget."'),
        ("samsum", 'Write a dialog with this premise "Ann asks Bob for a pen.".'),
        ("samsum", "Write a dialog about anything you want"),
    ],
)
def test_reversed_templates_are_dropped(tasks, cues, task, inputs):
    with pytest.raises(flan.Dropped) as err:
        flan.extract(inputs, tasks[task], cues)
    assert err.value.reason == "reversed_template"


def test_template_without_options_that_needs_them_is_dropped(tasks, cues):
    inputs = f"{ARTICLE}\n\nWhat best summarizes the content of the above article?"
    with pytest.raises(flan.Dropped) as err:
        flan.extract(inputs, tasks["ag_news_subset"], cues, template_type="zs_noopt")
    assert err.value.reason == "needs_options"


def test_noopt_template_that_states_the_labels_is_kept(tasks, cues):
    q = "Who wrote the opera Carmen ?"
    inputs = f'Is the question "{q}" asking about an entity, an abbreviation, a description, a human, a location, or a numeric entity?'
    got = flan.extract(inputs, tasks["trec"], cues, template_type="zs_noopt")
    assert (got.template_id, got.has_options, got.content) == ("t1", False, "Who wrote the opera Carmen?")
    assert got.instruction == inputs.replace("Carmen ?", "Carmen?")


def test_opt_row_whose_options_do_not_parse_is_not_swallowed_into_the_text(tasks, cues):
    # Labels out of FLAN's order: not an option block of this task.
    inputs = "Does the following review have a positive or negative opinion of the movie?\n\nfine .\nOPTIONS:\n- positive\n- negative"
    with pytest.raises(flan.Dropped) as err:
        flan.extract(inputs, tasks["glue/sst2"], cues, template_type="zs_opt")
    assert err.value.reason == "no_template_match"


def test_summary_length_bounds_count_the_document_not_the_template(tasks, cues):
    doc = " ".join(["word"] * 50)
    inputs = f"Summarize this article:\n\n{doc}\n\nSummary:"
    got = flan.extract(inputs, tasks["xsum"], cues, max_words=50, min_words=50)
    assert got.instruction == f"Summarize this article:\n\n{doc}"
    with pytest.raises(flan.Dropped) as err:
        flan.extract(inputs, tasks["xsum"], cues, max_words=49)
    assert err.value.reason == "too_long"
    with pytest.raises(flan.Dropped) as err:
        flan.extract(inputs, tasks["xsum"], cues, min_words=51)
    assert err.value.reason == "too_short"


def test_text_fixes_repair_raw_artefacts(tasks, cues):
    # AG News raw text: "#39;" and " quot;" for quote marks, "\\$" for a dollar sign.
    inputs = "Select the topic that this about:\n\nAcme said,  quot;the deal is one that #39;s good. quot;. Up \\$3."
    got = flan.extract(inputs, tasks["ag_news_subset"], cues, template_type="zs_noopt")
    assert got.content == 'Acme said, "the deal is one that\'s good.". Up $3.'


def test_unknown_template_is_reported(tasks, cues):
    with pytest.raises(flan.Dropped) as err:
        flan.extract("Tell me something nice about parks.", tasks["xsum"], cues)
    assert err.value.reason == "no_template_match"


@pytest.mark.parametrize(
    "name,key",
    [("glue/sst2:2.0.0", "glue/sst2"), ("ag_news_subset:1.0.0", "ag_news_subset"), ("huggingface:xsum", "xsum"), ("trec", "trec")],
)
def test_task_key(name, key):
    assert flan.task_key(name) == key


def test_answer_cue_only_removed_as_a_last_line(cues):
    assert flan.strip_answer_cue("Question?\nOptions: a b\nAnswer:", cues) == "Question?\nOptions: a b"
    assert flan.strip_answer_cue("The article was about:", cues) == "The article was about:"
    assert flan.strip_answer_cue("Text\n\nI think the answer is", cues) == "Text"


def test_compile_format_rejects_options_without_labels():
    with pytest.raises(ValueError):
        flan.compile_format("{text}\n{options_}", labels=None)
    pattern = flan.compile_format("Summarize:\n\n{text}")
    assert pattern.fullmatch("summarize:   some text").group("text") == "some text"


# --- Tasks of the registry that the offline mirror does not hold ----------------------------


def test_imdb_review_with_options_and_trailing_cue(tasks, cues):
    review = "A slow start,<br /><br />but the last hour is wonderful."
    inputs = (f"{review}\n\nDid this review think positively or negatively of the movie (see options below)?\n"
              "OPTIONS:\n- negative\n- positive...I think the answer is")
    got = flan.extract(inputs, tasks["imdb_reviews"], cues, template_type="zs_opt")
    assert got.template_id == "t4"
    assert got.content == "A slow start,\n\nbut the last hour is wonderful."
    assert got.instruction.endswith("of the movie (see options below)?\n\nOptions:\n- negative\n- positive")
    assert "think the answer" not in got.instruction


def test_rte_premise_and_hypothesis_are_the_content(tasks, cues):
    inputs = ('The museum opened in 1901 and holds 2,000 paintings.\n\nQuestion with options: Based on the paragraph '
              'above can we conclude that "The museum is over a century old."?\n\nOPTIONS:\n- yes\n- no')
    got = flan.extract(inputs, tasks["super_glue/rte"], cues, template_type="zs_opt")
    assert got.template_id == "t0"
    assert got.content == "The museum opened in 1901 and holds 2,000 paintings.\n\nThe museum is over a century old."
    with pytest.raises(flan.Dropped) as err:
        flan.extract("Generate a context and a hypothesis.", tasks["super_glue/rte"], cues)
    assert err.value.reason == "reversed_template"


@pytest.mark.parametrize(
    "task,inputs,template,reason",
    [
        ("cnn_dailymail", "Write highlights for this article:\n\nBy A Reporter. Rain fell.\n\nHighlights:", "t0", None),
        ("cnn_dailymail", "Use the following highlights to write an article:\n\nRain fell.\n\nArticle:", None, "reversed_template"),
        ("cnn_dailymail", "Rain fell all day.\n\nWrite an article based on these highlights.", None, "reversed_template"),
        ("gigaword", "Briefly summarize this sentence: stocks fell sharply on monday .\n\nSummary:", "t1", None),
        ("gigaword", "Write a text based on this summary: stocks fall\n\nText:", None, "reversed_template"),
    ],
)
def test_summarization_tasks_beyond_the_mirror(tasks, cues, task, inputs, template, reason):
    if reason:
        with pytest.raises(flan.Dropped) as err:
            flan.extract(inputs, tasks[task], cues)
        assert err.value.reason == reason
    else:
        got = flan.extract(inputs, tasks[task], cues)
        assert got.template_id == template
        assert not regex.search(r"(?:Highlights|Summary)\s*:\s*$", got.instruction)


def test_registry_aliases_reach_the_same_pattern_set(registry):
    src = registry.source("flan_classification")
    assert src.task(flan.task_key("imdb_reviews/plain_text:1.0.0")).name == "imdb_reviews"
    assert src.task(flan.task_key("super_glue/rte:1.0.2")).name == "super_glue/rte"
    assert src.task("xsum") is None


def test_links_are_unwrapped_and_leftover_markup_drops_the_row(tasks, cues):
    linked = 'Shares of Acme <A HREF="http://example.com/q?t=ACME">ACME.N</A> rose.'
    got = flan.extract(f"Select the topic that this about:\n\n{linked}", tasks["ag_news_subset"], cues, template_type="zs_noopt")
    assert got.content == "Shares of Acme ACME.N rose."
    with pytest.raises(flan.Dropped) as err:
        flan.extract("Select the topic that this about:\n\nShares <strong>rose</strong> today.", tasks["ag_news_subset"], cues,
                     template_type="zs_noopt")
    assert err.value.reason == "markup"


def test_yelp_cue_glued_after_the_options_is_removed(tasks, cues):
    inputs = ("How might one describe the sentiment of this review?\nGreat tacos, friendly staff, long wait..."
              "OPTIONS:\n- negative\n- positive I think the answer is")
    got = flan.extract(inputs, tasks["yelp_polarity_reviews"], cues, template_type="zs_opt")
    assert got.template_id == "t6"
    assert got.instruction == ("How might one describe the sentiment of this review?\nGreat tacos, friendly staff, long wait..."
                               "\n\nOptions:\n- negative\n- positive")
    for reversed_row in ["Write a positive yelp review.", "Generate a negative review for a place."]:
        with pytest.raises(flan.Dropped) as err:
            flan.extract(reversed_row, tasks["yelp_polarity_reviews"], cues, template_type="zs_noopt")
        assert err.value.reason == "reversed_template"


def test_treebank_tokenisation_of_sst2_is_undone(tasks, cues):
    raw = ("`` barbershop '' is a comedy -lrb- mostly -rrb- , but it ca n't and does n't work ; "
           "the characters ' lines are what ` saves ' it .")
    inputs = f"Is the sentiment of the following sentence positive or negative?\n{raw}"
    got = flan.extract(inputs, tasks["glue/sst2"], cues, template_type="zs_noopt")
    assert got.content == "\"barbershop\" is a comedy (mostly), but it can't and doesn't work; the characters' lines are what 'saves' it."


def test_xsum_article_label_gets_its_line_break_and_mojibake_is_repaired(tasks, cues):
    doc = "The \u00c2\u00a3250 bonus was paid on Friday."
    got = flan.extract(f"Article:{doc}\n\nA summary of the above article is?", tasks["xsum"], cues)
    assert got.template_id == "t6"
    assert got.instruction == "Article:\nThe \u00a3250 bonus was paid on Friday.\n\nA summary of the above article is?"
