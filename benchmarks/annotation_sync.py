"""Benchmark: Label Studio round trip at HexaInst scale (server start, import, re-sync, export).

Starts a fresh server in a temporary data dir (or ``--data-dir``), signs up two juniors, imports
``--rows`` candidates, re-syncs them (nothing to import), has both juniors annotate ``--annotate``
tasks through the API, then exports and adjudicates. Prints a JSON object with the timings last.

    python benchmarks/annotation_sync.py --rows 1236 --annotate 100
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from hexainst.annotation import labeling_config as lc
from hexainst.annotation.accounts import Account
from hexainst.annotation.server import LabelStudioServer
from hexainst.annotation.session import Session, new_admin
from hexainst.annotation.sync import index_project
from hexainst.kernel.records import natural_row
from hexainst.kernel.vocab import CATEGORIES


def rows(n: int) -> list[dict]:
    return [
        natural_row(
            category=CATEGORIES[i % len(CATEGORIES)], instruction=f"Benchmark instruction number {i}.",
            license="MIT", source_name="bench", dataset_id="bench/bench", revision="r", config=None,
            split="test", row_id=str(i), task_name=None, pattern_id="p",
        )  # fmt: skip
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1236)
    parser.add_argument("--annotate", type=int, default=100)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    figures: dict[str, float | int] = {"rows": args.rows, "annotated_tasks": args.annotate}
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data_dir or Path(tmp) / "data"
        session = Session(admin=new_admin(), accounts=[
            Account("junior", "junior1", "junior1@hexainst.local", "bench-junior-1"),
            Account("junior", "junior2", "junior2@hexainst.local", "bench-junior-2"),
        ])  # fmt: skip
        server = LabelStudioServer(data, session.admin)
        t = time.perf_counter()
        server.start(timeout=600)
        figures["first_start_s"] = round(time.perf_counter() - t, 2)
        server.stop()
        t = time.perf_counter()
        server.start(timeout=600)
        figures["warm_start_s"] = round(time.perf_counter() - t, 2)
        try:
            session.url = server.url
            t = time.perf_counter()
            session.setup()
            figures["setup_s"] = round(time.perf_counter() - t, 2)
            candidates = rows(args.rows)
            t = time.perf_counter()
            session.sync_candidates(candidates, progress=False)
            figures["import_s"] = round(time.perf_counter() - t, 2)
            t = time.perf_counter()
            report = session.sync_candidates(candidates, progress=False)
            figures["resync_s"] = round(time.perf_counter() - t, 2)
            assert report.n_imported == 0
            tasks = index_project(session.client(), session.junior_project).tasks
            clients = {name: session.client(name) for name in ("junior1", "junior2")}
            result = lc.verdict_to_result(
                {"decision": "accept", "category_correct": True, "errors": [], "corrected_instruction": None}
            )
            t = time.perf_counter()
            for iid in sorted(tasks)[: args.annotate]:
                for client in clients.values():
                    client.annotations.create(id=tasks[iid][0], result=result)
            figures["annotations_per_s"] = round(2 * args.annotate / (time.perf_counter() - t), 1)
            t = time.perf_counter()
            doc, _ = session.adjudicate()
            figures["export_and_adjudicate_s"] = round(time.perf_counter() - t, 2)
            assert len(doc["outcomes"]) == args.annotate
        finally:
            server.stop()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
