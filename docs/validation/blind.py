"""Blind task sheets for model annotators, and their verdicts mapped back to instruction ids.

    python docs/validation/blind.py sheets --annotator junior1 --out DIR [--release hexainst] [--ids FILE] [--chunks N]
    python docs/validation/blind.py dev-sample --out DIR --synthetic DIR... [--natural DIR] [--release hexainst]
    python docs/validation/blind.py unblind --keys DIR/keys.jsonl --out FILE VERDICTS...
    python docs/validation/blind.py senior --out DIR --junior junior1=FILE --junior junior2=FILE [--release hexainst]
    python docs/validation/blind.py calibrate --keys DIR/keys.jsonl --reference FILE ANNOTATOR=FILE...

A model annotator (a separate agent session) sees only its own sheet: an opaque key, the claimed
category and the instruction text, in an order of its own (never the id, which names the origin,
never another annotator's verdicts). ``sheets`` writes the sheets and a key map (``keys.jsonl``,
mode 0600) that stays with the coordinator; ``unblind`` turns a sheet's verdicts back into the
validation verdict format that ``hexainst annotate import`` reads. ``dev-sample`` draws the
calibration rows (never in the release or its reserve); ``calibrate`` compares annotators' verdicts
on them with the reference reader's. ``senior`` writes the senior's sheet from the two juniors' unblinded
verdicts: exactly the tasks that ``hexainst.annotation.outcomes.triage`` sends to the senior, each with
a key of the senior's own, the claimed category, the origin (the senior may see it), the instruction,
the reason and both junior verdicts (never the juniors' names or identities). This script never
judges a row.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
from collections import Counter
from pathlib import Path

from hexainst.annotation.agreement import cohen_kappa
from hexainst.kernel.jsonfiles import read_jsonl

CATEGORIES = ("classification", "code", "generalqa", "generation", "math", "summarization")
VERDICT_FIELDS = ("category_correct", "errors", "decision", "corrected_instruction")


def _write_private(path: Path, lines: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)


def _release_rows(release: Path) -> list[dict]:
    import hexainst
    from hexainst.kernel.features import decode_rows

    return [*decode_rows(hexainst.load(release)), *decode_rows(hexainst.load_reserve(release))]


def sheets(rows: list[dict], annotator: str, out: Path, chunks: int, salt: str) -> None:
    """Shuffle ``rows`` in an order of this annotator's own and cut them into ``chunks`` sheets."""
    order = sorted(rows, key=lambda r: r["id"])
    random.Random(f"blind:{salt}:{annotator}:order").shuffle(order)
    keys, sheet_rows = [], []
    for row in order:
        key = hashlib.sha256(f"blind:{salt}:{annotator}:{row['id']}".encode()).hexdigest()[:12]
        keys.append({"key": key, "id": row["id"], "annotator": annotator})
        sheet_rows.append({"key": key, "category": row["category"], "instruction": row["instruction"]})
    size = -(-len(sheet_rows) // chunks)
    for i in range(chunks):
        part = sheet_rows[i * size:(i + 1) * size]
        if part:
            _write_private(out / annotator / f"sheet-{i + 1}.jsonl", part)
    _write_private(out / "keys" / f"{annotator}.keys.jsonl", keys)
    print(f"{annotator}: {len(sheet_rows)} tasks in {chunks} sheets under {out / annotator}")


def dev_sample(out: Path, synthetic: list[Path], natural: Path | None, release: Path,
               per_cell: int, natural_per_category: int, seed: int) -> None:
    """Calibration rows: synthetic candidates of development builds and natural candidates, none in the release."""
    released = _release_rows(release)
    taken = {r["id"] for r in released}
    texts = {r["instruction"] for r in released}
    rows = []
    for folder in synthetic:
        for category in CATEGORIES:
            cell = [r for r in read_jsonl(folder / f"{category}.synthetic.jsonl")
                    if r["id"] not in taken and r["instruction"] not in texts]
            cell.sort(key=lambda r: r["id"])
            for r in random.Random(f"dev:{seed}:{folder.name}:{category}").sample(cell, min(per_cell, len(cell))):
                rows.append({**r, "dev_batch": folder.name})
    if natural is not None:
        for category in CATEGORIES:
            cell = sorted((r for r in read_jsonl(natural / f"{category}.natural.jsonl")
                           if r["id"] not in taken and r["instruction"] not in texts), key=lambda r: r["id"])
            for r in random.Random(f"dev:{seed}:natural:{category}").sample(cell, natural_per_category):
                rows.append({**r, "dev_batch": "natural"})
    seen, unique = set(), []
    for r in rows:  # the same text from two batches is judged once
        if r["instruction"] not in seen:
            seen.add(r["instruction"])
            unique.append(r)
    _write_private(out / "dev-rows.jsonl", unique)
    print(f"{len(unique)} development rows -> {out / 'dev-rows.jsonl'}: "
          + ", ".join(f"{k} {v}" for k, v in sorted(Counter(r['dev_batch'] for r in unique).items())))


def unblind(keys_file: Path, files: list[Path], out: Path) -> None:
    keys = {k["key"]: k["id"] for k in read_jsonl(keys_file, what="key map")}
    verdicts, seen = [], set()
    for file in files:
        for n, v in enumerate(read_jsonl(file, what="verdicts"), 1):
            key = v.get("key")
            if key not in keys:
                raise SystemExit(f"{file}:{n}: key {key!r} is not in {keys_file}")
            if key in seen:
                raise SystemExit(f"{file}:{n}: a second verdict for key {key}")
            seen.add(key)
            verdicts.append({"id": keys[key], **{f: v.get(f) for f in VERDICT_FIELDS}})
    missing = set(keys) - seen
    print(f"{len(verdicts)} verdicts mapped to ids ({len(missing)} tasks without a verdict)")
    _write_private(out, sorted(verdicts, key=lambda v: v["id"]))


def _junior_annotations(juniors: dict[str, Path], known: set[str]):
    """The juniors' unblinded verdicts as :class:`Annotation` lists by id (the form triage reads)."""
    from hexainst.annotation.outcomes import Annotation

    annotations: dict[str, list] = {}
    for name, file in juniors.items():
        seen: set[str] = set()
        for n, v in enumerate(read_jsonl(file, what=f"{name}'s verdicts"), 1):
            iid = v.get("id")
            if iid not in known:
                raise SystemExit(f"{file}:{n}: id {iid!r} is not a row of the release or its reserve")
            if iid in seen:
                raise SystemExit(f"{file}:{n}: a second verdict of {name} for {iid}")
            missing = [f for f in VERDICT_FIELDS if f not in v]
            if missing or v["decision"] not in ("accept", "revise", "reject"):
                raise SystemExit(f"{file}:{n}: not a verdict ({', '.join(missing) or 'decision ' + repr(v['decision'])})")
            seen.add(iid)
            verdict = {"annotator": name, **{f: v[f] for f in VERDICT_FIELDS}}
            annotations.setdefault(iid, []).append(Annotation(n, name, (name, n), False, verdict))
    return annotations


def senior(rows: list[dict], juniors: dict[str, Path], out: Path, chunks: int, salt: str) -> dict[str, str]:
    """The senior's blind sheet: exactly the tasks triage sends to the senior; returns id -> reason.

    Each task: an opaque key of the senior's own, the claimed category, the origin, the instruction,
    the reason and the two junior verdicts as ``verdict A`` / ``verdict B`` in a seeded order per task
    (neither name nor identity: position does not tell which junior is which).
    """
    from hexainst.annotation.outcomes import triage

    if len(juniors) != 2:
        raise SystemExit(f"--junior: the senior's sheet needs exactly two juniors' verdict files, got {len(juniors)}")
    by_id = {r["id"]: r for r in rows}
    tri = triage(_junior_annotations(juniors, set(by_id)), set(juniors))
    needs = tri.needs_senior
    tasks, keys = [], []
    for iid in sorted(needs):
        row = by_id[iid]
        key = hashlib.sha256(f"blind:{salt}:senior:{iid}".encode()).hexdigest()[:12]
        pair = [{f: v[f] for f in VERDICT_FIELDS} for v in tri.juniors[iid]]
        random.Random(f"blind:{salt}:senior:{iid}:pair").shuffle(pair)
        tasks.append({"key": key, "category": row["category"], "origin": row["source"],
                      "instruction": row["instruction"], "reason": needs[iid],
                      "verdict A": pair[0], "verdict B": pair[1]})
        keys.append({"key": key, "id": iid, "annotator": "senior"})
    random.Random(f"blind:{salt}:senior:order").shuffle(tasks)
    size = max(1, -(-len(tasks) // chunks))
    for i in range(chunks):
        part = tasks[i * size:(i + 1) * size]
        if part or i == 0:
            _write_private(out / "senior" / f"sheet-{i + 1}.jsonl", part)
    _write_private(out / "keys" / "senior.keys.jsonl", keys)
    print(f"senior: {len(tasks)} tasks need the senior ({len(tri.disagreements)} disagreements, "
          f"{len(tri.revision_conflicts)} revision conflicts; {len(tri.awaiting_juniors)} rows still lack a junior "
          f"verdict) under {out / 'senior'}")
    return needs


def calibrate(keys_file: Path, reference: Path, annotators: dict[str, Path], rows_file: Path | None) -> dict:
    """Agreement of each annotator with the reference reader on keep/reject and on soundness."""
    keys = {k["key"]: k["id"] for k in read_jsonl(keys_file, what="key map")}
    ref = {keys[r["key"]]: r for r in read_jsonl(reference, what="reference reading")}
    batch = {}
    if rows_file is not None:
        batch = {r["id"]: r.get("dev_batch", "") for r in read_jsonl(rows_file)}
    result = {}
    for name, file in annotators.items():
        ann_keys = {k["key"]: k["id"] for k in read_jsonl(keys_file.parent / f"{name}.keys.jsonl")}
        mine = {ann_keys[v["key"]]: v for v in read_jsonl(file, what="verdicts")}
        ids = sorted(set(mine) & set(ref))
        keep_a = [mine[i]["decision"] != "reject" for i in ids]
        keep_r = [bool(ref[i]["keep"]) for i in ids]
        sound_a = ["unsound" not in mine[i]["errors"] for i in ids]
        sound_r = [bool(ref[i]["sound"]) for i in ids]
        unsound_ref = [i for i in ids if not ref[i]["sound"]]
        result[name] = {
            "n": len(ids),
            "keep_agreement": round(sum(x == y for x, y in zip(keep_a, keep_r)) / len(ids), 3),
            "keep_kappa": cohen_kappa(keep_a, keep_r),
            "sound_agreement": round(sum(x == y for x, y in zip(sound_a, sound_r)) / len(ids), 3),
            "sound_kappa": cohen_kappa(sound_a, sound_r),
            "reference_unsound": len(unsound_ref),
            "reference_unsound_rejected": sum(mine[i]["decision"] == "reject" for i in unsound_ref),
            "reference_kept": sum(keep_r),
            "reference_kept_accepted_or_revised": sum(k and a for k, a in zip(keep_r, keep_a)),
        }
    by_batch: dict[str, Counter] = {}
    for i, r in ref.items():
        c = by_batch.setdefault(batch.get(i, ""), Counter())
        c["n"] += 1
        c["keep"] += bool(r["keep"])
        c["sound"] += bool(r["sound"])
    result["reference_by_batch"] = {b: dict(c) for b, c in sorted(by_batch.items())}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sheets", help="blind task sheets for one annotator")
    s.add_argument("--annotator", required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--release", type=Path, default=Path("hexainst"))
    s.add_argument("--rows", type=Path, help="JSONL rows (id, category, instruction) instead of the release + reserve")
    s.add_argument("--ids", type=Path, help="only these instruction ids (one per line)")
    s.add_argument("--chunks", type=int, default=1)
    s.add_argument("--salt", default="round1")
    d = sub.add_parser("dev-sample", help="calibration rows, none in the release or its reserve")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--synthetic", type=Path, nargs="+", required=True)
    d.add_argument("--natural", type=Path)
    d.add_argument("--release", type=Path, default=Path("hexainst"))
    d.add_argument("--per-cell", type=int, default=10)
    d.add_argument("--natural-per-category", type=int, default=5)
    d.add_argument("--seed", type=int, default=0)
    u = sub.add_parser("unblind", help="a sheet's verdicts back to instruction ids")
    u.add_argument("--keys", type=Path, required=True)
    u.add_argument("--out", type=Path, required=True)
    u.add_argument("verdicts", type=Path, nargs="+")
    sr = sub.add_parser("senior", help="the senior's blind sheet from the two juniors' unblinded verdicts")
    sr.add_argument("--out", type=Path, required=True)
    sr.add_argument("--junior", action="append", required=True, metavar="NAME=FILE",
                    help="a junior's unblinded verdicts (the output of 'unblind'); give it twice")
    sr.add_argument("--release", type=Path, default=Path("hexainst"))
    sr.add_argument("--rows", type=Path, help="JSONL rows (id, category, source, instruction) instead of the release")
    sr.add_argument("--chunks", type=int, default=1)
    sr.add_argument("--salt", default="round1")
    c = sub.add_parser("calibrate", help="annotators against the reference reading")
    c.add_argument("--keys", type=Path, required=True, help="the reference reader's key map")
    c.add_argument("--reference", type=Path, required=True)
    c.add_argument("--rows", type=Path, help="dev-rows.jsonl (to split the reference by batch)")
    c.add_argument("annotators", nargs="+", help="NAME=VERDICTS (NAME's key map beside --keys)")
    args = parser.parse_args()
    if args.command == "sheets":
        if args.rows:
            rows = list(read_jsonl(args.rows))
        else:
            rows = _release_rows(args.release)
        if args.ids:
            wanted = set(args.ids.read_text().split())
            rows = [r for r in rows if r["id"] in wanted]
        sheets(rows, args.annotator, args.out, args.chunks, args.salt)
    elif args.command == "dev-sample":
        dev_sample(args.out, args.synthetic, args.natural, args.release, args.per_cell, args.natural_per_category,
                   args.seed)
    elif args.command == "senior":
        pairs = [j.split("=", 1) for j in args.junior]
        if any(len(p) != 2 or not p[0] for p in pairs):
            raise SystemExit("--junior: write NAME=FILE (e.g. junior1=junior1-verdicts.jsonl)")
        juniors = {name: Path(file) for name, file in pairs}
        if len(juniors) != len(pairs):
            raise SystemExit("--junior: the same junior name twice")
        rows = list(read_jsonl(args.rows)) if args.rows else _release_rows(args.release)
        senior(rows, juniors, args.out, args.chunks, args.salt)
    elif args.command == "unblind":
        unblind(args.keys, args.verdicts, args.out)
    else:
        files = dict(a.split("=", 1) for a in args.annotators)
        print(json.dumps(calibrate(args.keys, args.reference, {k: Path(v) for k, v in files.items()}, args.rows),
                         indent=1))


if __name__ == "__main__":
    main()
