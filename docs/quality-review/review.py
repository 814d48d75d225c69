"""Draw the blind review sample of a release, and tally the judges' answers (docs/quality-review.md).

    python docs/quality-review/review.py draw  [--release hexainst] [--seed 0] [--per-category 15]
    python docs/quality-review/review.py tally final.judgments-a.jsonl [final.judgments-b.jsonl ...]

``draw`` writes ``final.requests.jsonl`` (what judges see: key, category, instruction, shuffled)
and ``final.keys.jsonl`` (key -> row id, never shown to judges). ``tally`` joins judgments to
rows by key and prints, per category and overall, the well-formed, in-category, leaked and pass
counts, and the agreement between judges. This script never judges a row: the judgments come
from people (here: separate sessions that did not build the release) applying the rubric.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections import Counter
from pathlib import Path

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


def tally(files: list[Path]) -> None:
    requests = {r["key"]: r for r in map(json.loads, (HERE / "final.requests.jsonl").read_text().splitlines())}
    judges = []
    for file in files:
        answers = {a["key"]: a for a in map(json.loads, Path(file).read_text().splitlines())}
        missing = set(requests) - set(answers)
        if missing:
            raise SystemExit(f"{file}: no judgment for {len(missing)} rows")
        judges.append(answers)
    fields = ("well_formed", "in_category", "answer_leaked", "pass")
    for j, answers in enumerate(judges):
        counts = {c: Counter() for c in (*CATEGORIES, "all")}
        for key, row in requests.items():
            a = answers[key]
            a = {**a, "pass": a["well_formed"] and a["in_category"] and not a["answer_leaked"]}
            for c in (row["category"], "all"):
                counts[c]["n"] += 1
                for f in fields:
                    counts[c][f] += bool(a[f])
        print(f"judge {j + 1} ({files[j].name})")
        print(f"{'category':<16}" + "".join(f"{f:>15}" for f in fields))
        for c, n in counts.items():
            print(f"{c:<16}" + "".join(f"{n[f]:>9}/{n['n']:<5}" for f in fields))
    if len(judges) == 2:
        for f in ("well_formed", "in_category", "answer_leaked"):
            same = sum(judges[0][k][f] == judges[1][k][f] for k in requests)
            print(f"agreement on {f}: {same}/{len(requests)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("draw")
    d.add_argument("--release", type=Path, default=Path("hexainst"))
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--per-category", type=int, default=15)
    t = sub.add_parser("tally")
    t.add_argument("judgments", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "draw":
        draw(args.release, args.seed, args.per_category)
    else:
        tally(args.judgments)


if __name__ == "__main__":
    main()
