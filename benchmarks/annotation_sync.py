"""Benchmark: a validation round at HexaInst scale, one Label Studio instance per annotator.

Creates the template database once (migrations), starts the round's instances (two juniors and
the senior) from copies of it, imports ``--rows`` candidates into both juniors' projects, re-syncs
them (nothing to import), sends a top-up batch of ``--top-up`` new candidates, has both juniors
annotate ``--annotate`` tasks through the API, then exports and adjudicates. Prints the timings,
and as its last line a JSON object with them and the ratio of a fresh migration to an instance
start from the template (what copying the template saves per instance).

    python benchmarks/annotation_sync.py --rows 1236 --annotate 100 --top-up 60
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from hexainst.annotation import labeling_config as lc
from hexainst.annotation.server import migrate_template
from hexainst.annotation.session import TEMPLATE_DIR, Session
from hexainst.annotation.sync import index_project
from hexainst.kernel.records import natural_row
from hexainst.kernel.vocab import CATEGORIES


def rows(n: int, start: int = 0) -> list[dict]:
    return [
        natural_row(
            category=CATEGORIES[i % len(CATEGORIES)], instruction=f"Benchmark instruction number {i}.",
            license="MIT", source_name="bench", dataset_id="bench/bench", revision="r", config=None,
            split="test", row_id=str(i), task_name=None, pattern_id="p",
        )  # fmt: skip
        for i in range(start, start + n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1236)
    parser.add_argument("--annotate", type=int, default=100)
    parser.add_argument("--top-up", type=int, default=60)
    parser.add_argument("--data-dir", type=Path, help="the round's folder (default: a temporary one)")
    args = parser.parse_args()
    figures: dict[str, float | int] = {"rows": args.rows, "annotated_tasks": args.annotate, "top_up": args.top_up}
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data_dir or Path(tmp) / "round"
        session = Session.create(data)
        t = time.perf_counter()
        migrate_template(data / TEMPLATE_DIR, progress=False)
        figures["migrate_template_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        servers = session.start(progress=False)
        figures["start_round_s"] = round(time.perf_counter() - t, 2)
        figures["instances"] = len(servers)
        try:
            t = time.perf_counter()
            session.setup()
            figures["setup_s"] = round(time.perf_counter() - t, 2)
            candidates = rows(args.rows)
            t = time.perf_counter()
            session.sync_candidates(candidates, progress=False)
            figures["import_s"] = round(time.perf_counter() - t, 2)
            t = time.perf_counter()
            reports = session.sync_candidates(candidates, progress=False)
            figures["resync_s"] = round(time.perf_counter() - t, 2)
            assert all(r.n_imported == 0 for r in reports.values())
            t = time.perf_counter()
            reports = session.sync_candidates(candidates + rows(args.top_up, start=args.rows), progress=False)
            figures["top_up_s"] = round(time.perf_counter() - t, 2)
            assert all(r.n_imported == args.top_up for r in reports.values())
            result = lc.verdict_to_result(
                {"decision": "accept", "category_correct": True, "errors": [], "corrected_instruction": None}
            )
            t = time.perf_counter()
            for inst in session.juniors:
                tasks = index_project(session.client(inst), session.project(inst)).tasks
                client = session.client(inst, as_person=True)
                for iid in sorted(tasks)[: args.annotate]:
                    client.annotations.create(id=tasks[iid][0], result=result)
            figures["annotations_per_s"] = round(len(session.juniors) * args.annotate / (time.perf_counter() - t), 1)
            t = time.perf_counter()
            doc, _ = session.adjudicate()
            figures["export_and_adjudicate_s"] = round(time.perf_counter() - t, 2)
            assert len(doc["outcomes"]) == args.annotate
        finally:
            for server in servers:
                server.stop()
    figures["migration_over_instance_start"] = round(
        figures["migrate_template_s"] / (figures["start_round_s"] / figures["instances"]), 1
    )
    for key, value in figures.items():
        print(f"{key:>32}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
