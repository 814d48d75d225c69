"""Overgenerate and rank: an automatic quality score per candidate, and the gate before it.

Each slot asks for several candidates. :func:`gate` rejects, with a named reason, those that no
score can save: ``not_instruction`` (no request or question in it at all) and
``wrong_category`` (it lacks what every instruction of its category needs: a question for
general QA, a number for math, a programming cue for code, a text and labels for
classification, a passage and a summary cue for summarization, a writing verb for
generation). :func:`score` gives every other candidate a number in [0, 1] from named
components (stored with the row, ``provenance.synthetic.quality``); the slot keeps its
best-scoring candidate that passes every filter.

The components are cheap text features, none of them the generator's own judgement:

* ``shape``: the category's form (the same cues as the gate, graded: e.g. a classification
  instruction with both a quoted text and an explicit label list scores 1, one with only one of
  them 0.5);
* (``missing_text`` is a gate reason, not a component: a classification or summarization
  instruction without its text, or one pointing at a text it does not carry, cannot be fixed by
  ranking;)
* ``complete``: ends like a finished sentence (``.``, ``?``, ``!``, a closing quote) and has
  balanced quotes and brackets;
* ``topic``: share of the slot's topic words (and task-type words) the text contains: whether
  the constraint reached the instruction;
* ``fluency``: 1 minus the share of repeated word trigrams, and no run of one word (the loops
  small models fall into);
* ``no_answer``: 0 when the text gives its own answer or solution (``Answer:``, ``The answer is``).

The weights were chosen by measurement on a blind-judged development sample: see
``docs/generators.md`` ("Choosing the score") for the sample, the candidates compared and their
separation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hexainst.builders.synthetic.prompts import Slot

#: Weight of each component in the score (they sum to 1). Chosen on the development sample.
WEIGHTS: dict[str, float] = {"shape": 0.4, "complete": 0.2, "topic": 0.15, "fluency": 0.15, "no_answer": 0.1}

GATE_REASONS = ("not_instruction", "wrong_category", "missing_text")

#: Words that point at a text the instruction should carry ("the following review", "this passage").
_POINTER = re.compile(r"\b(?:the following|below|above|(?:this|these|that|the given|the attached) (?:text|passage|"
                      r"article|sentence|sentences|review|paragraph|story|report|email|message|tweet|post|dialogue|"
                      r"conversation|function|code|snippet|program|table|list|data|headline|statement|document))\b",
                      re.IGNORECASE)

_WORD = re.compile(r"[A-Za-z0-9']+")
_STOP = set("""a an the of and or to in on for with about by at from into as is are be this that these those
its it your you their his her our my new one some any""".split())
_ASK_VERBS = (r"write|compose|create|draft|generate|suggest|list|name|give|describe|explain|summari[sz]e|"
              r"classify|label|assign|decide|determine|identify|categori[sz]e|tag|rate|find|calculate|compute|"
              r"solve|evaluate|simplify|implement|fix|complete|define|design|build|make|convert|translate|rewrite|"
              r"tell|invent|come up|plan|outline|propose|prepare|develop|construct|produce|provide|state|show|"
              r"prove|estimate|express|round|choose|select|pick|sort|count|read|answer|say")
#: An instruction asks: a question mark, a question word or auxiliary first, or an imperative verb
#: opening one of its sentences.
_ASKS = re.compile(
    r"\?|^(?:which|what|who|whom|whose|when|where|why|how|is|are|does|do|did|can|could|would|should|will|was|"
    r"were|has|have)\b|(?:^|[.:;!,]\s+)(?:please\s+)?(?:" + _ASK_VERBS + r")\b",
    re.IGNORECASE,
)
_QUESTION_START = re.compile(r"^(which|what|who|whom|whose|when|where|why|how|in|on|at|by|is|are|was|were|"
                             r"does|do|did|can|name|the|from|for|during|according|of)\b", re.IGNORECASE)
_WRITING_VERB = re.compile(r"\b(write|compose|create|draft|generate|suggest|list|come up with|invent|describe|"
                           r"brainstorm|tell|make up|design|plan|propose|give|identify|name)\b", re.IGNORECASE)
_CODE_CUE = re.compile(r"\b(python|javascript|typescript|java|c\+\+|c#|c|go|rust|ruby|php|sql|bash|shell|"
                       r"regular expression|regex|function|method|class|program|script|query|algorithm|code|"
                       r"snippet|array|list|string|integer|return|returns)\b|\w+\(", re.IGNORECASE)
_CODE_VERB = re.compile(r"\b(write|implement|create|fix|define|complete|design|build|make|develop|refactor|"
                        r"optimi[sz]e|debug|convert|given)\b", re.IGNORECASE)
_SUMMARY_CUE = re.compile(r"\b(summar\w*|headline|title|key points?|main points?|bullet|abstract|tl;?dr|"
                          r"gist|in (?:one|two|three|a few) sentences?|shorten|condense|main idea)\b", re.IGNORECASE)
_CLASS_CUE = re.compile(r"\b(classify|classification|label|labels|categor\w*|sentiment|positive|negative|"
                        r"neutral|spam|intent|emotion|formal|informal|urgent|toxic|stance|support|oppose|"
                        r"is (?:this|the following)|which (?:label|category|emotion|of))\b", re.IGNORECASE)
_LABEL_LIST = re.compile(r"\b\w+(?:/\w+)?\s*,\s*\w+.*\bor\b|\b\w+\s+or\s+\w+\b|options?:|labels?:", re.IGNORECASE)
_QUOTED = re.compile(r"[\"“«]([^\"”»]{12,})[\"”»]|:\s*(\S.{40,})$")
_ANSWER = re.compile(r"\b(answer|solution|output)\s*(?:is|:)|\bthe correct (?:answer|option) is\b|=\s*\d+\s*$",
                     re.IGNORECASE)


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in _STOP and len(w) > 1]


def _stem(w: str) -> str:
    return w[:4]


def _passage(text: str) -> str | None:
    m = _QUOTED.search(text)
    if not m:
        return None
    return m.group(1) or m.group(2)


def shape(category: str, text: str) -> float:
    """How well ``text`` has the form of its category, in [0, 1] (0: it lacks the defining cue)."""
    t = text.strip()
    n = len(words(t))
    if category == "generalqa":
        if not t.endswith("?"):
            return 0.3 if _QUESTION_START.match(t) and n <= 30 else 0.0
        return 1.0 if _QUESTION_START.match(t) else 0.7
    if category == "math":
        has_number = bool(re.search(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|half|twice)\b", t, re.I))
        asks = t.endswith("?") or bool(re.search(r"\b(how many|how much|what is|find|calculate|compute|solve|"
                                                 r"determine|evaluate|simplify|what was|what will)\b", t, re.I))
        return 0.0 if not has_number else (1.0 if asks else 0.4)
    if category == "code":
        cue, verb = bool(_CODE_CUE.search(t)), bool(_CODE_VERB.search(t))
        return 0.0 if not cue else (1.0 if verb else 0.5)
    if category == "classification":
        cue = bool(_CLASS_CUE.search(t))
        text_part = _passage(t) is not None
        labels = bool(_LABEL_LIST.search(t))
        if not cue:
            return 0.0
        return (0.2 + 0.5 * text_part + 0.3 * labels)
    if category == "summarization":
        cue = bool(_SUMMARY_CUE.search(t))
        passage = _passage(t)
        plen = len(words(passage)) if passage else 0
        if not cue:
            return 0.0
        return 0.2 + (0.8 if plen >= 25 else 0.4 if plen >= 12 else 0.0)
    if category == "generation":
        start = bool(re.match(r"^(please\s+)?(write|compose|create|draft|generate|suggest|list|come up|invent|"
                              r"describe|brainstorm|tell|make up|design|plan|propose|give)\b", t, re.I))
        return 1.0 if start else (0.5 if _WRITING_VERB.search(t) else 0.0)
    return 0.5


def complete(text: str) -> float:
    t = text.strip()
    ends = 1.0 if re.search(r"[.?!\"”')\]]$", t) else 0.0
    balanced = 1.0
    if t.count('"') % 2 or t.count("(") != t.count(")") or t.count("“") != t.count("”"):
        balanced = 0.0
    return 0.6 * ends + 0.4 * balanced


def topic_match(slot: Slot, text: str) -> float:
    have = {_stem(w) for w in content_words(text)}
    topic = {_stem(w) for w in content_words(slot.topic)}
    task = {_stem(w) for w in content_words(slot.task_type)}
    t = len(topic & have) / len(topic) if topic else 0.0
    k = len(task & have) / len(task) if task else 0.0
    return 0.7 * t + 0.3 * k


def fluency(text: str) -> float:
    ws = words(text)
    if len(ws) < 4:
        return 0.5
    grams = [tuple(ws[i:i + 3]) for i in range(len(ws) - 2)]
    repeated = 1 - len(set(grams)) / len(grams)
    run = max((len(m.group(0).split()) for m in re.finditer(r"\b(\w+)(?:\W+\1\b)+", text.lower())), default=1)
    return max(0.0, 1 - 2 * repeated - (0.5 if run >= 3 else 0.0))


def no_answer(text: str) -> float:
    return 0.0 if _ANSWER.search(text) else 1.0


def components(slot: Slot, text: str) -> dict[str, float]:
    """Every component of the score of ``text`` written for ``slot`` (names as in :data:`WEIGHTS`)."""
    return {
        "shape": round(shape(slot.category, text), 4),
        "complete": round(complete(text), 4),
        "topic": round(topic_match(slot, text), 4),
        "fluency": round(fluency(text), 4),
        "no_answer": no_answer(text),
    }


@dataclass(frozen=True)
class Scored:
    score: float
    components: dict[str, float]


def score(slot: Slot, text: str) -> Scored:
    comp = components(slot, text)
    return Scored(round(sum(WEIGHTS[k] * comp[k] for k in WEIGHTS), 4), comp)


def _carries_text(t: str) -> bool:
    """Whether ``t`` holds a text of its own: a quotation of a few words, or a colon followed by one."""
    return bool(re.search(r"[\"“«']([^\"”»']{12,})[\"”»']", t) or re.search(r":\s*\S(?:.*\s){3,}", t))


def gate(category: str, text: str) -> str | None:
    """The reason a candidate no score can save is rejected, or None.

    ``not_instruction``: no request or question at all; ``wrong_category``: it lacks what every
    instruction of its category needs; ``missing_text``: a classification or summarization
    instruction without the text it is about, or any instruction that points at a text
    ("the following review", "this passage", "the function below") it does not carry.
    """
    t = text.strip()
    if not _ASKS.search(t):
        return "not_instruction"
    if shape(category, t) == 0.0:
        return "wrong_category"
    if category in ("classification", "summarization") and not _carries_text(t):
        return "missing_text"
    if _POINTER.search(t) and not _carries_text(t):
        return "missing_text"
    return None
