"""Per-cell rates of a validation file: what each round judged, kept and rejected, and how the annotators agreed.

    python docs/validation/rates.py --validation hexainst/validation.json --work work [--round N] --out FILE

Cells come from the build's candidate pools (``WORK/natural``, ``WORK/synthetic``): a rejected
candidate has left the release and its reserve, so the release alone cannot place it. Per cell:
candidates judged, accepted / revised / rejected, acceptance (accepted or revised over judged),
Cohen's kappa between the two juniors on the decision and on category correctness (the project's
own ``cohen_kappa``; ``null`` where undefined, e.g. every answer the same), tasks decided by the
senior, how often the senior's decision differs from each junior's, and rows both juniors called
unsound. Reads the file; never judges a row.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from hexainst.annotation.agreement import cohen_kappa
from hexainst.kernel.pools import read_pools


def _kappa(a: list, b: list) -> float | None:
    value = cohen_kappa(a, b)
    return None if value is None or value != value else round(float(value), 3)


def cell_rates(outcomes: list[dict[str, Any]], cell_of: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per cell (and ``all``): the counts and agreement of ``outcomes`` (decided ones only)."""
    by_cell: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in outcomes:
        if o["status"] in ("accepted", "revised", "rejected"):
            if o["id"] not in cell_of:
                raise SystemExit(f"outcome {o['id']}: not a candidate of the build's pools (wrong --work?)")
            by_cell[cell_of[o["id"]]].append(o)
            by_cell["all"].append(o)
    out = {}
    for cell in sorted(by_cell, key=lambda c: (c == "all", c)):
        rows = by_cell[cell]
        n = {s: sum(o["status"] == s for o in rows) for s in ("accepted", "revised", "rejected")}
        pairs = [sorted(o["juniors"], key=lambda v: v["annotator"]) for o in rows if len(o["juniors"]) == 2]
        senior = [o for o in rows if o.get("senior")]
        differs = defaultdict(int)
        for o in senior:
            for v in o["juniors"]:
                differs[v["annotator"]] += v["decision"] != o["senior"]["decision"]
        out[cell] = {
            "judged": len(rows), **n,
            "acceptance": round((n["accepted"] + n["revised"]) / len(rows), 3),
            "kappa_decision": _kappa([p[0]["decision"] for p in pairs], [p[1]["decision"] for p in pairs]),
            "kappa_category_correct": _kappa([p[0]["category_correct"] for p in pairs],
                                             [p[1]["category_correct"] for p in pairs]),
            "senior": len(senior),
            **{f"senior_differs_from_{name}": k for name, k in sorted(differs.items())},
            "unsound_both": sum(all("unsound" in v["errors"] for v in p) for p in pairs),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--validation", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("work"), help="the build's working folder (its pools)")
    parser.add_argument("--round", type=int, help="only the outcomes of this round (format 3 files)")
    parser.add_argument("--source", default="", help="a line saying where the file came from")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.out.exists():  # replace only a rates file this script wrote, never another file
        try:
            earlier = json.loads(args.out.read_text("utf-8"))
        except (OSError, ValueError):
            earlier = None
        if not (isinstance(earlier, dict) and set(earlier) == {"source", "cells"}):
            raise SystemExit(f"--out {args.out}: exists and is not a rates file of this script; name another file")
    doc = json.loads(args.validation.read_text("utf-8"))
    pools = read_pools([args.work / "natural", args.work / "synthetic"])
    cell_of = {r["id"]: f"{c}/{s}" for (c, s), rows in pools.items() for r in rows}
    outcomes = [o for o in doc["outcomes"] if args.round is None or o.get("round", 1) == args.round]
    result = {"source": args.source or str(args.validation), "cells": cell_rates(outcomes, cell_of)}
    tmp = args.out.with_name(f".{args.out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, args.out)
    print(f"{result['cells'].get('all', {}).get('judged', 0)} decided outcomes -> {args.out}")


if __name__ == "__main__":
    main()
