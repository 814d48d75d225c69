"""The card's validation section in words: how much was decided, by whom, what they saw.

Pure functions over the release rows and, when the build applied one, the validation file's
``annotators`` block. "Validated" is written only of rows that carry an outcome; a partial round is
described as exactly ``n of N``; who validated (people, models, unrecorded) comes from the verdicts,
never assumed; and the card always says that the paper's annotators were people.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

PAPER = ("The paper (Appendix B) had this done by people: two junior annotators per instruction and a senior "
         "annotator for their disagreements.")
#: What the toolkit shows each annotator (see annotation/README.md): true of every round it runs.
WHAT_THEY_SAW = (
    "Each junior worked in a Label Studio instance of their own and saw one instruction at a time with its "
    "claimed category and the annotation guidelines: never its origin (natural or synthetic) nor the other "
    "junior's verdict. The senior saw the disagreements only, with both junior verdicts and the origin."
)


def _who(identity: Mapping[str, Any]) -> str:
    kind = identity.get("kind")
    if kind == "model":
        text = f"the model `{identity.get('model')}` (prompt `{identity.get('prompt')}`)"
    elif kind == "person":
        text = "a person"
    else:
        text = "an annotator whose kind was not recorded (a validation file of format 1)"
    return f"{text}; {identity['how']}" if identity.get("how") else text


def annotators_from_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The annotators whose verdicts the rows carry: ``{"annotator", "role", "identity"}``, in name order."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        validation = row["validation"]
        for role, verdicts in (("junior", validation.get("juniors") or []), ("senior", [validation.get("senior")])):
            for v in verdicts:
                if v:
                    seen.setdefault((role, v["annotator"]), {"annotator": v["annotator"], "role": role,
                                                             "identity": dict(v.get("identity") or {"kind": "unrecorded"})})
    return [seen[k] for k in sorted(seen, key=lambda k: (k[0] != "junior", k[1]))]


def _kappa(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def rounds_text(rows: Sequence[Mapping[str, Any]], rounds: Sequence[Mapping[str, Any]]) -> list[str]:
    """One sentence per round: who judged, how many candidates it decided (and release rows), its kappa."""
    in_release = {r["id"] for r in rows if r["validation"]["status"] != "pending"}
    out = []
    for r in rounds:
        rows_here = sum(1 for i in r.get("ids", ()) if i in in_release)
        who = "; ".join(f"{a['role']} `{a['annotator']}`: {_who(a['identity'])}" for a in r["annotators"]) or \
            "annotators not listed"
        out.append(f"Round {r['round']} decided {r['n_outcomes']} candidates ({r['n_rejected']} rejected; "
                   f"{rows_here} of them are rows of this release), juniors' Cohen's kappa on the decision "
                   f"{_kappa(r['kappa_decision'])} over {r['n_double_annotated']} tasks annotated twice. "
                   f"Its annotators: {who}.")
    return out


def summary(rows: Sequence[Mapping[str, Any]], annotators: Sequence[Mapping[str, Any]] | None = None,
            n_outcomes: int | None = None, n_rejected: int | None = None,
            rounds: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The card's paragraph on validation (Markdown).

    ``rounds`` (the release stage's ``rounds_info``): with more than one round, each round is described on its
    own (who judged in it, what it decided, its kappa); one round reads as it always did.
    """
    n = len(rows)
    statuses = Counter(r["validation"]["status"] for r in rows)
    decided = statuses["accepted"] + statuses["revised"]
    pending = statuses["pending"]
    if decided == 0:
        text = ("Validation pending: no row of this release has been validated; every row's "
                "`validation.status` is `pending`. The toolkit's Label Studio workflow (two junior annotators per "
                "instruction, a senior for disagreements) produces the validation file that a rebuild applies.")
        return f"{text} {PAPER}"
    annotators = list(annotators) if annotators else annotators_from_rows(rows)
    kinds = Counter(a["identity"].get("kind") for a in annotators)
    several = bool(rounds) and len(rounds) > 1
    if decided == n:
        head = (f"Validated: all {n} rows of this release were accepted or revised by the validation "
                f"{f'rounds ({len(rounds)})' if several else 'round'} "
                f"({statuses['revised']} revised, their original text in `validation.original_instruction`).")
    else:
        head = (f"Partly validated: {decided} of {n} rows of this release carry a validation outcome "
                f"({statuses['accepted']} accepted, {statuses['revised']} revised); the other {pending} "
                f"{'is' if pending == 1 else 'are'} `pending`: not decided, not validated.")
    if n_rejected:
        head += (f" {n_rejected} candidates{f' of the {n_outcomes} decided' if n_outcomes is not None else ''} were "
                 "rejected; a rejected row was replaced by the next candidate of its cell's reserve.")
    juniors = [a for a in annotators if a["role"] == "junior"]
    seniors = [a for a in annotators if a["role"] == "senior"]
    kind_words = ", ".join(
        f"{k} {word if k == 1 else plural}"
        for kind, word, plural in (("person", "person", "people"), ("model", "model annotator", "model annotators"),
                                   ("unrecorded", "unrecorded", "unrecorded"))
        if (k := kinds.get(kind, 0))
    )
    who = [f"Who validated ({kind_words}):" if not several else
           f"Who validated, in {len(rounds)} rounds ({kind_words}, counted once per round and role):"]
    if several:
        who.extend(rounds_text(rows, rounds))
    else:
        for a in juniors + seniors:
            who.append(f"{a['role']} `{a['annotator']}`: {_who(a['identity'])}.")
    models = kinds.get("model", 0)
    these = "these rounds" if several else "this round"
    if models:
        note = (f"Every verdict of {these} came from a model, not a person" if models == len(annotators)
                else f"Some verdicts of {these} came from models, not people")
        note += ": each row's `validation.juniors[].identity` and `validation.senior.identity` say whose it is."
    else:
        note = "Every verdict records its annotator's identity (`validation.juniors[].identity`)."
    saw = WHAT_THEY_SAW if not kinds.get("unrecorded") else (
        "What the annotators saw was not recorded (a validation file of format 1; that screen showed the origin).")
    return " ".join([head, *who, saw, note, PAPER])
