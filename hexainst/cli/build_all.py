"""``build_all``: natural -> synthetic -> release, each stage skipped when already done.

Layout of the working folder (default ``work/``, git-ignored)::

    work/natural/      <category>.natural.jsonl, natural-report.json, natural.lock.json
    work/synthetic/    <category>.synthetic.jsonl, synthetic-report.json
    work/cache/synthetic/   the request cache (a rerun sends no request already answered)
    work/stages/<stage>.json  done-markers: the stage's inputs and the sha256 of its outputs

A stage is skipped when its marker records the same inputs and every output file still has the
recorded hash. The natural stage reuses ``natural.lock.json`` so a rebuild reads the same revisions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hexainst.builders import natural as natural_builder
from hexainst.builders import synthetic as synthetic_builder
from hexainst.kernel import atomic, environment
from hexainst.kernel.pools import NATURAL_LOCK

DEFAULT_WORK = "work"


def _sha256(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()


def _outputs(folder: Path) -> dict[str, str]:
    return {p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


class Stage:
    """One resumable stage: ``run()`` writes into ``folder``; the marker remembers inputs and outputs."""

    def __init__(self, work: Path, name: str, folder: Path, inputs: Mapping[str, Any]):
        self.name, self.folder, self.inputs = name, folder, dict(inputs)
        self.marker = work / "stages" / f"{name}.json"

    def done(self) -> bool:
        if not self.marker.exists() or not self.folder.is_dir():
            return False
        try:
            recorded = json.loads(self.marker.read_text("utf-8"))
        except json.JSONDecodeError:
            return False
        if recorded.get("inputs") != json.loads(json.dumps(self.inputs)):
            return False
        outputs = recorded.get("outputs") or {}
        return bool(outputs) and all(
            (self.folder / n).is_file() and _sha256(self.folder / n) == h for n, h in outputs.items()
        )

    def mark_done(self) -> None:
        atomic.write_text(
            self.marker,
            json.dumps({"inputs": self.inputs, "outputs": _outputs(self.folder)}, indent=2, sort_keys=True) + "\n",
        )

    def run(self, fn: Callable[[], Any], force: bool = False, log: Callable[[str], None] = print) -> bool:
        """Run ``fn`` unless the stage is done; return whether it ran."""
        if not force and self.done():
            log(f"[{self.name}] already done with the same inputs: skipped ({self.folder})")
            return False
        log(f"[{self.name}] running -> {self.folder}")
        fn()
        self.mark_done()
        return True


def build_all(
    *,
    work: Path,
    out: Path,
    sources: Path | None,
    base_url: str | None,
    model: str | None,
    per_category: int,
    validation: Path | None,
    seed: int,
    force: bool = False,
    embedded_threads: int | None = None,
    membership: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run every stage into ``work`` and write the release into ``out``; return the assembly report.

    ``membership``: ``{"model": ..., "k": ..., "threshold": ...}`` turns on Min-K%++ scores in the
    synthetic stage (see :mod:`hexainst.builders.synthetic.membership`).
    """
    from hexainst.builders.assembly.assemble import assemble, write_report
    from hexainst.builders.assembly.config import AssemblyConfig
    from hexainst.builders.natural.pipeline import OUTPUT_KIND as NATURAL_KIND
    from hexainst.kernel.outputs import claim_output_dir, claim_release_dir
    from hexainst.kernel.pools import ASSEMBLY_REPORT

    work = Path(work)
    natural_dir, synthetic_dir = work / "natural", work / "synthetic"
    cache_dir = work / "cache" / "synthetic"
    lock = natural_dir / NATURAL_LOCK
    base_url = base_url or environment.base_url()
    model = model or environment.model()
    # Every output location is checked before any work starts.
    claim_release_dir(out, inputs=[sources, validation, work], option="--out")
    claim_output_dir(natural_dir, NATURAL_KIND, inputs=[sources], option="--work")

    natural = Stage(
        work,
        "natural",
        natural_dir,
        {"sources": str(Path(sources).resolve()) if sources else "hub", "seed": seed},
    )
    natural.run(
        lambda: natural_builder.build(
            natural_dir, sources_dir=Path(sources) if sources else None,
            lock_file=lock if lock.exists() else None, seed=seed, progress=True,
        ),
        force=force,
    )

    natural_hash = hashlib.sha256(
        "".join(f"{n}:{h}" for n, h in _outputs(natural_dir).items() if n.endswith(".natural.jsonl")).encode()
    ).hexdigest()
    synthetic_inputs: dict[str, Any] = {"base_url": base_url or "embedded", "model": model,
                                        "per_category": per_category, "seed": seed, "natural_pools": natural_hash}
    membership = {k: v for k, v in (membership or {}).items() if v is not None}
    if membership:  # only when asked for, so markers of builds without scores stay valid
        synthetic_inputs["membership"] = membership
    synthetic = Stage(work, "synthetic", synthetic_dir, synthetic_inputs)
    synthetic.run(
        lambda: synthetic_builder.build(
            synthetic_dir, per_category, base_url=base_url, model=model, natural_pool_dir=natural_dir,
            cache_dir=cache_dir, seed=seed, progress=True, embedded_threads=embedded_threads,
            membership_model=membership.get("model"), membership_k=membership.get("k"),
            membership_threshold=membership.get("threshold"),
        ),
        force=force,
    )

    note = None
    if base_url is None:
        note = (
            "The embedded generator is google/gemma-3-270m, a 270M-parameter base model run on a CPU: many of "
            "its instructions are vague, ungrammatical or mislabelled, which validation is there to revise or "
            f"reject. {per_category} synthetic candidates per category were kept, so each synthetic cell's reserve "
            f"holds {max(0, per_category - 100)} rows"
        )
        if per_category - 100 < 30:
            note += ("; rebuild with a larger --per-category (the request cache is reused) before validating, or use "
                     "a stronger endpoint.")
        else:
            note += ", ready to replace the synthetic rows that validation rejects."
    print(f"[release] assembling -> {out}")
    report = assemble(
        [natural_dir, synthetic_dir], out, validation=validation, config=AssemblyConfig(seed=seed),
        sources_dir=str(sources) if sources else None, generator_note=note,
    )
    write_report(report, work / ASSEMBLY_REPORT)
    return report
