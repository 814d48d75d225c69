"""Benchmark: generation throughput against the stub server, and a warm rerun.

600 requests (100 slots per category) against the stub at 200 ms latency with concurrency 16,
through the builder's own request path (cache, async client, parsing). The ideal wall time is
600 / 16 x 0.2 s = 7.5 s; ``ratio`` = measured / ideal (target <= 1.25). Then the same 600
slots again with the warm cache: ``warm_requests`` must be 0.

    python benchmarks/generation.py [--requests 600] [--latency 0.2] [--concurrency 16]

The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from hexainst.builders.synthetic import prompts
from hexainst.builders.synthetic.cache import RequestCache
from hexainst.builders.synthetic.client import Client
from hexainst.builders.synthetic.config import SyntheticConfig
from hexainst.builders.synthetic.endpoint import resolve_endpoint
from hexainst.builders.synthetic.examples import ExamplePool
from hexainst.builders.synthetic.pipeline import Generation, Planner
from hexainst.kernel.processes import free_port
from hexainst.kernel.vocab import CATEGORIES


class StubProcess:
    """The stub as its own process (``python -m hexainst.builders.synthetic.stub_server``), so that its
    work does not share this process's GIL with the client being measured."""

    def __init__(self, latency: float) -> None:
        self.latency = latency

    def __enter__(self) -> StubProcess:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hexainst.builders.synthetic.stub_server", "--port", str(self.port),
             "--latency", str(self.latency)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"stub server did not start: {line!r}")
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        return self

    def served(self) -> int:
        with urllib.request.urlopen(f"{self.base_url}/stats", timeout=10) as resp:
            return int(json.load(resp)["requests"])

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


async def _run(gen: Generation, slots: list[prompts.Slot]) -> list:
    return await asyncio.gather(*(gen.slot(s) for s in slots))


def _pass(base_url: str, cache: RequestCache, slots: list[prompts.Slot], concurrency: int) -> tuple[float, Client, int]:
    """One request per slot (one candidate), through the builder's client, planner and parser."""
    endpoint = resolve_endpoint(base_url, "stub-model", env={})
    config = SyntheticConfig(seed=0, candidates=1, max_attempts=3, concurrency=concurrency)
    client = Client(endpoint, cache, offline=False, concurrency=concurrency, timeout=30.0, max_retries=2)
    gen = Generation(client, Planner(endpoint, config, ExamplePool.from_natural({})), config)
    t0 = time.perf_counter()
    results = asyncio.run(_run(gen, slots))
    wall = time.perf_counter() - t0
    return wall, client, sum(1 for cands in results for c in cands if c.parsed is not None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=600)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--concurrency", type=int, default=16)
    args = p.parse_args(argv)
    per = args.requests // len(CATEGORIES)
    slots = [prompts.slot(c, k, 0) for c in CATEGORIES for k in range(per)]
    with tempfile.TemporaryDirectory() as tmp, StubProcess(args.latency) as stub:
        cache = RequestCache(Path(tmp) / "cache")
        cold_wall, cold, parsed = _pass(stub.base_url, cache, slots, args.concurrency)
        cold_served = stub.served()
        warm_wall, warm, _ = _pass(stub.base_url, cache, slots, args.concurrency)
        warm_served = stub.served() - cold_served
    ideal = len(slots) / args.concurrency * args.latency
    figures = {
        "requests": cold.tally.requests,
        "served_by_stub": cold_served,
        "parsed_answers": parsed,
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "wall_s": round(cold_wall, 3),
        "ideal_s": round(ideal, 3),
        "ratio": round(cold_wall / ideal, 3),
        "requests_per_s": round(cold.tally.requests / cold_wall, 1),
        "warm_wall_s": round(warm_wall, 3),
        "warm_requests": warm_served,  # what the stub saw, not what the client believes
        "warm_cache_hits": warm.tally.cache_hits,
    }
    print(f"cold: {figures['requests']} requests in {cold_wall:.2f} s (ideal {ideal:.2f} s, ratio {figures['ratio']}); "
          f"warm: {warm_served} requests, {warm.tally.cache_hits} cache hits in {warm_wall:.2f} s", file=sys.stderr)
    print(json.dumps(figures, sort_keys=True))
    return 0 if figures["ratio"] <= 1.25 and warm_served == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
