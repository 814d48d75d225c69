"""Draw the blind review sample of a release, and tally the judges' answers (docs/quality-review.md).

    python docs/quality-review/review.py draw  [--release hexainst] [--seed 0] [--per-category 15]
    python docs/quality-review/review.py tally final.judgments-a.jsonl [final.judgments-b.jsonl ...]
    python docs/quality-review/review.py draw-compare --other DIR --name NAME [--release hexainst] [--per-category 10]
    python docs/quality-review/review.py tally-compare NAME NAME.judgments-a.jsonl [NAME.judgments-b.jsonl ...]

``draw`` writes ``final.requests.jsonl`` (what judges see: key, category, instruction, shuffled)
and ``final.keys.jsonl`` (key -> row id, never shown to judges). ``tally`` joins judgments to
rows by key and prints, per category and overall, the well-formed, in-category, leaked and pass
counts, and the agreement between judges. ``draw-compare`` mixes the synthetic rows of two
releases (the same number per category from each) in one shuffled sheet under opaque keys, so a
judge cannot tell which build a row came from; ``tally-compare`` splits the counts by build.
This script never judges a row: the judgments come
from people (here: separate sessions that did not build the release) applying the rubric.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections import Counter
from pathlib import Path

from hexainst.kernel.jsonfiles import read_jsonl

HERE = Path(__file__).resolve().parent
CATEGORIES = ("classification", "code", "generalqa", "generation", "math", "summarization")


def draw(release: Path, seed: int, per_category: int) -> None:
    import hexainst
    from hexainst.kernel.features import decode_rows

    rows = sorted((r for r in decode_rows(hexainst.load(release)) if r["source"] == "synthetic"), key=lambda r: r["id"])
    sample = []
    for category in CATEGORIES:
        cell = [r for r in rows if r["category"] == category]
        sample += random.Random(f"quality-review:{seed}:{category}").sample(cell, per_category)
    random.Random(f"quality-review:{seed}:order").shuffle(sample)
    requests, keys = [], []
    for row in sample:
        key = hashlib.sha256(f"quality-review:{seed}:{row['id']}".encode()).hexdigest()[:12]
        requests.append({"key": key, "category": row["category"], "instruction": row["instruction"]})
        keys.append({"key": key, "id": row["id"]})
    (HERE / "final.requests.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests))
    (HERE / "final.keys.jsonl").write_text("".join(json.dumps(k) + "\n" for k in keys))
    print(f"{len(requests)} rows drawn from {len(rows)} synthetic rows of {release}")


FIELDS = ("well_formed", "in_category", "answer_leaked", "pass")


def read_judgments(file: Path, requests: dict) -> dict:
    answers = {a["key"]: a for a in read_jsonl(file, what="judgments file")}
    missing = set(requests) - set(answers)
    if missing:
        raise SystemExit(f"{file}: no judgment for {len(missing)} rows")
    return answers


def count(requests: dict, answers: dict, keys) -> dict:
    """Per category and overall: rows judged and the yes answers of each field (pass included)."""
    counts = {c: Counter() for c in (*CATEGORIES, "all")}
    for key in keys:
        a = answers[key]
        a = {**a, "pass": a["well_formed"] and a["in_category"] and not a["answer_leaked"]}
        for c in (requests[key]["category"], "all"):
            counts[c]["n"] += 1
            for f in FIELDS:
                counts[c][f] += bool(a[f])
    return counts


def tally(files: list[Path]) -> None:
    requests = {r["key"]: r for r in read_jsonl(HERE / "final.requests.jsonl")}
    judges = [read_judgments(file, requests) for file in files]
    for j, answers in enumerate(judges):
        counts = count(requests, answers, requests)
        print(f"judge {j + 1} ({files[j].name})")
        print(f"{'category':<16}" + "".join(f"{f:>15}" for f in FIELDS))
        for c, n in counts.items():
            print(f"{c:<16}" + "".join(f"{n[f]:>9}/{n['n']:<5}" for f in FIELDS))
    if len(judges) == 2:
        for f in ("well_formed", "in_category", "answer_leaked"):
            same = sum(judges[0][k][f] == judges[1][k][f] for k in requests)
            print(f"agreement on {f}: {same}/{len(requests)}")


def _sample(release: Path, label: str, seed: int, per_category: int) -> list[dict]:
    import hexainst
    from hexainst.kernel.features import decode_rows

    rows = sorted((r for r in decode_rows(hexainst.load(release)) if r["source"] == "synthetic"), key=lambda r: r["id"])
    sample = []
    for category in CATEGORIES:
        cell = [r for r in rows if r["category"] == category]
        sample += [{**r, "build": label} for r in random.Random(f"compare:{seed}:{label}:{category}").sample(cell, per_category)]
    return sample


def draw_compare(release: Path, other: Path, name: str, seed: int, per_category: int) -> None:
    sample = _sample(release, "release", seed, per_category) + _sample(other, "other", seed, per_category)
    random.Random(f"compare:{seed}:{name}:order").shuffle(sample)
    requests, keys = [], []
    for row in sample:
        key = hashlib.sha256(f"compare:{seed}:{name}:{row['build']}:{row['id']}".encode()).hexdigest()[:12]
        requests.append({"key": key, "category": row["category"], "instruction": row["instruction"]})
        keys.append({"key": key, "build": row["build"], "release": str(release if row["build"] == "release" else other),
                     "id": row["id"]})
    if len({r["key"] for r in requests}) != len(requests):
        raise SystemExit("two rows got the same key; pick another --seed")
    (HERE / f"{name}.requests.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests))
    (HERE / f"{name}.keys.jsonl").write_text("".join(json.dumps(k) + "\n" for k in keys))
    print(f"{len(requests)} rows drawn: {per_category} per category from each of {release} and {other}")


def tally_compare(name: str, files: list[Path]) -> None:
    builds = {k["key"]: k["build"] for k in read_jsonl(HERE / f"{name}.keys.jsonl")}
    requests = {r["key"]: r for r in read_jsonl(HERE / f"{name}.requests.jsonl")}
    for file in files:
        answers = read_judgments(file, requests)
        print(f"judge {Path(file).name}")
        print(f"{'build':<10}{'category':<16}" + "".join(f"{f:>15}" for f in FIELDS))
        for build in ("release", "other"):
            counts = count(requests, answers, [k for k in requests if builds[k] == build])
            for c, n in counts.items():
                print(f"{build:<10}{c:<16}" + "".join(f"{n[f]:>9}/{n['n']:<5}" for f in FIELDS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("draw")
    d.add_argument("--release", type=Path, default=Path("hexainst"))
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--per-category", type=int, default=15)
    t = sub.add_parser("tally")
    t.add_argument("judgments", type=Path, nargs="+")
    dc = sub.add_parser("draw-compare")
    dc.add_argument("--release", type=Path, default=Path("hexainst"))
    dc.add_argument("--other", type=Path, required=True)
    dc.add_argument("--name", required=True)
    dc.add_argument("--seed", type=int, default=0)
    dc.add_argument("--per-category", type=int, default=10)
    tc = sub.add_parser("tally-compare")
    tc.add_argument("name")
    tc.add_argument("judgments", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "draw":
        draw(args.release, args.seed, args.per_category)
    elif args.command == "draw-compare":
        draw_compare(args.release, args.other, args.name, args.seed, args.per_category)
    elif args.command == "tally-compare":
        tally_compare(args.name, args.judgments)
    else:
        tally(args.judgments)


if __name__ == "__main__":
    main()
