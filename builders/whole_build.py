"""The whole build: natural -> synthetic -> release in order, each stage skipped when already done, and top-up rounds.

What ``hexainst build all`` (``make dataset``) and ``hexainst build topup`` run; the shell only
parses their options into :class:`BuildConfig` / :class:`TopupConfig` and prints the result.

Layout of the working folder (default ``work/``, git-ignored)::

    work/natural/      <category>.natural.jsonl, natural-report.json, natural.lock.json
    work/synthetic/    <category>.synthetic.jsonl, synthetic-report.json, synthetic-requests.json
    work/cache/synthetic/   the request cache (a rerun sends no request already answered)
    work/stages/<stage>.json  done-markers: the stage's inputs and the sha256 of its outputs
    work/stages/topup.json    the candidates top-up rounds added per cell

A stage is skipped when its marker records the same inputs and every output file still has the
recorded hash. The natural stage reuses ``natural.lock.json`` so a rebuild reads the same revisions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hexainst.builders import natural as natural_builder
from hexainst.builders import release as release_builder
from hexainst.builders import synthetic as synthetic_builder
from hexainst.builders.natural.config import NaturalConfig
from hexainst.builders.natural.pipeline import OUTPUT_KIND as NATURAL_KIND
from hexainst.builders.release.config import ReleaseConfig
from hexainst.builders.release.make import previous_order, write_report
from hexainst.builders.release.reserve import expected_rates, reserve_plan
from hexainst.builders.release.select import rank_key
from hexainst.builders.synthetic.client import preflight
from hexainst.builders.synthetic.config import OUTPUT_KIND as SYNTHETIC_KIND
from hexainst.builders.synthetic.config import SyntheticConfig
from hexainst.builders.synthetic.endpoint import redact_url, requested, resolve_endpoint
from hexainst.builders.synthetic.prompts import metaprompts
from hexainst.kernel import atomic, environment
from hexainst.kernel.digests import file_sha256
from hexainst.kernel.jsonfiles import read_json
from hexainst.kernel.log import STDOUT
from hexainst.kernel.output_lock import writer_lock
from hexainst.kernel.outputs import OutputError, OutputSettingError, claim_output_dir, claim_release_dir
from hexainst.kernel.pools import NATURAL_LOCK, RELEASE_REPORT, read_pools
from hexainst.kernel.release import (
    GENERATIONS_FILE,
    RATES_FILE,
    TOPUP_FILE,
    VALIDATION_FILE,
    read_release_rows,
    read_reserve,
)
from hexainst.kernel.settings import SettingError, setting
from hexainst.kernel.validation_file import read as read_validation
from hexainst.kernel.vocab import CATEGORIES, DEFAULT_SEED, ROWS_PER_CELL

DEFAULT_WORK = "work"

log = logging.getLogger(__name__)


def _note(message: str) -> None:
    """A progress note, shown on standard output as the ``print`` it replaces showed it."""
    log.info(message, extra=STDOUT)


def _outputs(folder: Path) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


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
            (self.folder / n).is_file() and file_sha256(self.folder / n) == h for n, h in outputs.items()
        )

    def mark_done(self) -> None:
        atomic.write_text(
            self.marker,
            json.dumps({"inputs": self.inputs, "outputs": _outputs(self.folder)}, indent=2, sort_keys=True) + "\n",
        )

    def run(self, fn: Callable[[], Any], force: bool = False, log: Callable[[str], None] | None = None) -> bool:
        """Run ``fn`` unless the stage is done; return whether it ran. ``log`` shows its progress notes
        (default: the module's logger, on standard output)."""
        log = log or _note
        if not force and self.done():
            log(f"[{self.name}] already done with the same inputs: skipped ({self.folder})")
            return False
        log(f"[{self.name}] running -> {self.folder}")
        fn()
        self.mark_done()
        return True


#: The whole build's ``per_category``: without it, each category's synthetic target is sized from its reserve.
PER_CATEGORY_HELP = ("synthetic candidates to keep per category, reserve included (default: 100 + the reserve "
                     "each category's expected rejection rate asks for)")


@dataclass(frozen=True)
class BuildConfig:
    """Everything ``build all`` needs: where it works and writes, and each stage's own config.

    ``seed`` is the seed of every stage: it replaces the seed of the three stage configs;
    ``per_category``, when given, replaces ``synthetic.per_category``.
    """

    out: Path = setting(help="release folder: a new or empty folder, or an earlier HexaInst release "
                             "('make dataset' uses hexainst/)", metavar="DIR")
    work: Path = setting(Path(DEFAULT_WORK), "working folder for pools, request cache and stage markers",
                         metavar="DIR")
    force: bool = setting(False, "rerun finished stages too (the request cache still applies)")
    seed: int = setting(DEFAULT_SEED, "seed for every stage")
    validation: Path | None = setting(
        None, "validation.json to apply in the release stage (default: the one the --out release ships, "
              "validation.json in that folder, if any: rebuilding a validated release applies its "
              "own verdicts again; the new release ships the file applied)", metavar="FILE")
    shipped_validation: bool = setting(
        True, "apply no validation file, not even the one the release folder ships (every row pending)")
    per_category: int | None = setting(None, PER_CATEGORY_HELP, low=1, metavar="N")
    natural: NaturalConfig = field(default_factory=NaturalConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    release: ReleaseConfig = field(default_factory=ReleaseConfig)

    def check(self) -> BuildConfig:
        """Raise :class:`SettingError` for settings that contradict each other; return self."""
        if self.validation is not None and not self.shipped_validation:
            raise SettingError("shipped_validation", "contradicts a validation file given too; give one of them")
        return self

    def seeded(self) -> tuple[NaturalConfig, SyntheticConfig, ReleaseConfig]:
        """The three stage configs with this build's seed (and its ``per_category``, when given)."""
        return _seeded(self.natural, self.synthetic, self.release, self.seed, self.per_category)


def _seeded(natural: NaturalConfig, synthetic: SyntheticConfig, release: ReleaseConfig, seed: int,
            per_category: int | None) -> tuple[NaturalConfig, SyntheticConfig, ReleaseConfig]:
    if per_category is not None:
        synthetic = synthetic.replace(per_category=per_category)
    return (dataclasses.replace(natural, seed=seed), synthetic.replace(seed=seed), dataclasses.replace(release, seed=seed))


@dataclass(frozen=True)
class TopupConfig:
    """Everything ``build topup`` needs: the release built earlier, its working folder, the validation file."""

    out: Path = setting(help="the release folder built earlier ('make dataset': hexainst)", metavar="DIR")
    validation: Path = setting(help="validation.json from 'hexainst annotate export'", metavar="FILE")
    work: Path = setting(Path(DEFAULT_WORK), "the working folder of the build that made the release", metavar="DIR")
    seed: int = setting(DEFAULT_SEED, "the build's seed")
    oversample: bool = setting(
        False, "ask for short / acceptance new candidates per cell, the acceptance (accepted or revised over "
               "decided) measured in that cell by the validation file and the cell's pending rows counted at that "
               "acceptance, so that one more round over the pending and the new rows is expected to fill it "
               "(default: exactly as many as the cell is short, pending rows counted as usable)")
    per_category: int | None = setting(None, PER_CATEGORY_HELP, low=1, metavar="N")
    natural: NaturalConfig = field(default_factory=NaturalConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    release: ReleaseConfig = field(default_factory=ReleaseConfig)

    def seeded(self) -> tuple[NaturalConfig, SyntheticConfig, ReleaseConfig]:
        """The three stage configs with this build's seed (and its ``per_category``, when given)."""
        return _seeded(self.natural, self.synthetic, self.release, self.seed, self.per_category)


@dataclass(frozen=True)
class BuildResult:
    """What a whole build wrote: the release folder and its release report (``assembly-report.json``)."""

    out: Path
    report: dict[str, Any]


@dataclass(frozen=True)
class TopupResult:
    """What a top-up round found and did.

    ``cells``: per cell, the rows still usable, pending and the shortfall (:func:`shortfalls`);
    ``added``: new candidates per cell that got any; ``new_ids``: their ids; ``report``: the
    release report of the rewritten release (``None`` when no cell was short).
    """

    out: Path
    cells: dict[str, dict[str, int]]
    added: dict[str, int]
    new_ids: list[str]
    report: dict[str, Any] | None


def synthetic_targets(synthetic: SyntheticConfig, plan: Mapping[str, Mapping[str, Any]], explicit: bool) -> SyntheticConfig:
    """The synthetic stage's per-category targets: ``--per-category`` when given, else 100 + each cell's planned reserve."""
    if explicit:
        return synthetic
    extra = {c: int(plan[f"{c}/synthetic"]["reserve"]) + int(synthetic.extra.get(c, 0)) for c in CATEGORIES}
    return synthetic.replace(per_category=ROWS_PER_CELL, extra=extra)


def build_all(config: BuildConfig) -> BuildResult:
    """Run every stage into ``config.work`` and write the release into ``config.out``.

    Every output location is checked before any work. A release folder that ships its generations
    (``generations/synthetic.jsonl``) fills the request cache first, so rebuilding a committed
    release sends no request; the new release ships the generations it used. Likewise a release that
    ships its validation file (``validation.json``) has it applied again unless ``config.validation``
    names another file or ``config.shipped_validation`` is false, and one that ships a top-up record
    (``topup.json``) is rebuilt with those candidates, in the order it holds them.

    Holds the writers' locks on ``config.out`` and ``config.work`` (:mod:`hexainst.kernel.output_lock`).
    """
    config.check()
    out, validation = Path(config.out), config.validation
    natural, synthetic, release = config.seeded()
    with _locked(out, Path(config.work)), tempfile.TemporaryDirectory(prefix="hexainst-shipped-") as tmp:
        shipped = out / VALIDATION_FILE
        if validation is None and config.shipped_validation and shipped.is_file():
            validation = Path(tmp) / VALIDATION_FILE  # a copy: the release folder is rewritten, and is no input
            shutil.copyfile(shipped, validation)
            log.info(f"[release] applying the validation file the release ships ({shipped}); --no-validation: none", extra=STDOUT)
        release = shipped_rates(out, release, Path(tmp))
        topup_record = out / TOPUP_FILE
        report = _build_all(out, work=Path(config.work), force=config.force, natural=natural, synthetic=synthetic,
                            release=release, validation=validation, per_category_explicit=config.per_category is not None,
                            shipped_topup=read_topup(topup_record) if topup_record.is_file() else None)
    return BuildResult(out=out, report=report)


def _build_all(
    out: Path,
    *,
    work: Path,
    force: bool,
    natural: NaturalConfig,
    synthetic: SyntheticConfig,
    release: ReleaseConfig,
    validation: Path | None,
    per_category_explicit: bool,
    shipped_topup: dict[str, int] | None,
) -> dict[str, Any]:
    if work.exists() and not work.is_dir():
        raise OutputSettingError("work", f"{work}: is a file, not a folder; name a folder")
    natural_dir, synthetic_dir = work / "natural", work / "synthetic"
    cache_dir = Path(synthetic.cache_dir) if synthetic.cache_dir is not None else work / "cache" / "synthetic"
    sources = environment.mirror(natural.sources_dir)
    lock = natural_dir / NATURAL_LOCK
    base_url, model = requested(synthetic.base_url, synthetic.model)
    synthetic = synthetic.replace(base_url=base_url, model=model, natural_pool_dir=natural_dir,
                                  cache_dir=cache_dir).check()
    # Every output location is checked before any work starts.
    claim_release_dir(out, inputs=[sources, validation, release.rejection_rates, work], option="out")
    claim_output_dir(natural_dir, NATURAL_KIND, inputs=[sources], option="work")
    claim_output_dir(synthetic_dir, SYNTHETIC_KIND, inputs=[natural_dir, cache_dir], option="work")
    plan = reserve_plan(expected_rates(release.rejection_rates), release.rows_per_cell, cap=release.max_reserve)
    extra = _topup_extra(work) or (shipped_topup or {})
    synthetic = synthetic_targets(_with_topup(synthetic, extra), plan, per_category_explicit)

    natural_stage = Stage(work, "natural", natural_dir,
                          {"sources": str(Path(sources).resolve()) if sources else "hub", "seed": natural.seed})
    if force or not (natural_stage.done() and _synthetic_stage(work, natural_dir, synthetic_dir, synthetic).done()):
        _check_endpoint(synthetic)  # the synthetic stage will ask it: before the natural stage's long work
    natural_stage.run(
        lambda: natural_builder.run(dataclasses.replace(natural, out_dir=natural_dir, sources_dir=sources,
                                                        lock_file=lock if lock.exists() else None)),
        force=force,
    )

    shipped = Path(out) / GENERATIONS_FILE
    if shipped.is_file():
        added = synthetic_builder.import_generations(shipped, cache_dir)
        if added:
            log.info(f"[synthetic] {added} answers from {shipped} added to the request cache {cache_dir}", extra=STDOUT)
    synthetic_stage = _synthetic_stage(work, natural_dir, synthetic_dir, synthetic)
    synthetic_stage.run(lambda: synthetic_builder.run(synthetic.replace(out_dir=synthetic_dir)), force=force)

    log.info(f"[release] assembling -> {out}", extra=STDOUT)
    with tempfile.TemporaryDirectory(prefix="hexainst-generations-") as tmp:
        generations = Path(tmp) / "synthetic.jsonl"
        synthetic_builder.export_generations(cache_dir, generations, used_only_for=synthetic_dir)
        report = release_builder.run(dataclasses.replace(
            release, pools=(natural_dir, synthetic_dir), out_dir=out, validation_file=validation,
            sources_dir=sources, generations=generations,
            reserve_sizes=reserve_sizes(plan, extra) if extra and release.reserve is None else None,
            # A topped-up release keeps its order (what was annotated never moves): the folder is its record.
            previous=out if shipped_topup else None,
            topup={"extra": extra} if extra else None,
        )).report
    write_report(report, work / RELEASE_REPORT)
    return report


def _synthetic_stage(work: Path, natural_dir: Path, synthetic_dir: Path, synthetic: SyntheticConfig) -> Stage:
    """The synthetic stage, its inputs including the natural pools as they are now in ``natural_dir``."""
    natural_hash = hashlib.sha256(
        "".join(f"{n}:{h}" for n, h in _outputs(natural_dir).items() if n.endswith(".natural.jsonl")).encode()
    ).hexdigest()
    return Stage(work, "synthetic", synthetic_dir, {**stage_inputs(synthetic), "natural_pools": natural_hash,
                                                    "metaprompt_version": metaprompts()["version"]})


def _check_endpoint(synthetic: SyntheticConfig) -> None:
    """Ask a remote endpoint once (``GET /models``): one line if it is down or lacks the model. The embedded
    generator and an offline replay ask nothing."""
    resolve_endpoint(synthetic.base_url, synthetic.model, synthetic.generator, offline=synthetic.offline,
                     listed=preflight)


def stage_inputs(config: SyntheticConfig) -> dict[str, Any]:
    """What makes a synthetic build's output: every setting except where things are kept and how they are shown."""
    skip = {"out_dir", "cache_dir", "natural_pool_dir", "progress", "embedded_threads", "embedded_batch", "embedded_dtype",
            "concurrency", "timeout", "max_retries"}
    out = {}
    for name, value in sorted(dataclasses.asdict(config).items()):
        if name in skip or (name.startswith("membership") and value is None):
            continue
        if name == "base_url":  # credentials in the URL never reach a file (the key is not a setting at all)
            value = redact_url(value)
        out[name] = str(value) if isinstance(value, Path) else value
    return out


def shipped_rates(out: Path, release: ReleaseConfig, tmp: Path) -> ReleaseConfig:
    """``release`` planning with the rejection rates the release in ``out`` ships, unless it names its own.

    A release records the rates its reserves were planned with; rebuilding it with them keeps every
    reserve (and so every synthetic request) as it was, whatever rates the toolkit bundles by then.
    """
    file = Path(out) / RATES_FILE
    if release.rejection_rates is not None or not file.is_file():
        return release
    copy = tmp / RATES_FILE  # a copy: the release folder is rewritten, and is no input
    shutil.copyfile(file, copy)
    return dataclasses.replace(release, rejection_rates=copy)


TOPUP_STATE = "topup.json"


def _topup_extra(work: Path) -> dict[str, int]:
    """Candidates added by earlier top-up rounds, per cell (``work/stages/topup.json``), so that a rebuild keeps them."""
    file = work / "stages" / TOPUP_STATE
    return read_topup(file) if file.is_file() else {}


def topup_so_far(work: Path, out: Path) -> dict[str, int]:
    """Candidates earlier top-up rounds added, per cell: the work folder's record, else the one the release ships.

    A fresh clone rebuilt with ``build all`` has the release's record but none in its work folder; a
    top-up there must add to the earlier rounds, not replace them (it asked the synthetic stage for
    too few candidates, and found too few new ones).
    """
    return _topup_extra(work) or (read_topup(Path(out) / TOPUP_FILE) if (Path(out) / TOPUP_FILE).is_file() else {})


def read_topup(file: Path) -> dict[str, int]:
    """A top-up record ``{"extra": {"<category>/<source>": n}}`` (the work folder's, or the one a release ships)."""
    doc = read_json(file, what="top-up record")
    extra = doc.get("extra") if isinstance(doc, dict) else None
    cells = {f"{c}/{s}" for c in CATEGORIES for s in ("natural", "synthetic")}
    if not isinstance(extra, dict) or any(k not in cells or not isinstance(v, int) or isinstance(v, bool) or v < 0
                                          for k, v in extra.items()):
        raise OutputError(f"{file}: not a top-up record ({{\"extra\": {{\"math/synthetic\": 12, ...}}}} expected)")
    return {cell: int(n) for cell, n in extra.items()}


def _with_topup(synthetic: SyntheticConfig, topup_extra: Mapping[str, int]) -> SyntheticConfig:
    """The synthetic config plus the candidates earlier top-up rounds added to synthetic cells."""
    added = {cell.split("/")[0]: n for cell, n in topup_extra.items() if cell.endswith("/synthetic")}
    if not added:
        return synthetic
    merged = {c: int(synthetic.extra.get(c, 0)) + int(added.get(c, 0)) for c in CATEGORIES}
    return synthetic.replace(extra={c: n for c, n in merged.items() if n})


def reserve_sizes(plan: Mapping[str, Mapping[str, Any]], topup_extra: Mapping[str, int]) -> dict[str, int]:
    return {cell: int(entry["reserve"]) + int(topup_extra.get(cell, 0)) for cell, entry in plan.items()}


def shortfalls(out: Path, outcomes: Mapping[str, Mapping[str, Any]],
               rows_per_cell: int = ROWS_PER_CELL) -> dict[str, dict[str, int]]:
    """Per cell of the release in ``out``: rows still usable (release + reserve, not rejected) and the shortfall."""
    usable: dict[str, int] = {f"{c}/{s}": 0 for c in CATEGORIES for s in ("natural", "synthetic")}
    pending = dict.fromkeys(usable, 0)
    for row in [*read_release_rows(out), *read_reserve(out)]:
        status = (outcomes.get(row["id"]) or {}).get("status")
        if status != "rejected":
            usable[f"{row['category']}/{row['source']}"] += 1
        if status not in DECIDED:
            pending[f"{row['category']}/{row['source']}"] += 1
    return {cell: {"usable": n, "pending": pending[cell], "short": max(0, rows_per_cell - n)} for cell, n in usable.items()}


#: Validation statuses that are a decision (anything else, or no outcome, is still pending).
DECIDED = ("accepted", "revised", "rejected")


#: A top-up with ``--oversample`` takes each cell's acceptance, measured by the validation file, as at
#: least this floor (so a cell where nothing passed asks for a bounded number of candidates).
MIN_ACCEPTANCE = 0.05
#: ... and asks for enough candidates that the next round fills the cell with this probability.
FILL_PROBABILITY = 0.95


def candidates_to_fill(cell: Mapping[str, int], acceptance: float | None, rows_per_cell: int = ROWS_PER_CELL,
                       probability: float = FILL_PROBABILITY) -> int:
    """New candidates a cell needs so that one more round fills it with at least ``probability``.

    ``cell`` is an entry of :func:`shortfalls`: its decided rows that were kept stay, and its pending
    rows and the new ones each pass at the cell's measured ``acceptance`` (at least
    ``MIN_ACCEPTANCE``), so the rows kept after the round are ``kept + Binomial(pending + n,
    acceptance)``; the answer is the smallest ``n`` for which that reaches ``rows_per_cell`` with
    ``probability``. The acceptance is taken as known (its own sampling error is not added). Without a
    measured acceptance it is the plain shortfall (pending rows counted as usable).
    """
    from scipy.stats import binom  # deferred: scipy.stats (~0.7 s); `hexainst --help` imports this module

    if acceptance is None:
        return int(cell["short"])
    pending = int(cell["pending"])
    missing = rows_per_cell - (int(cell["usable"]) - pending)
    if missing <= 0:
        return 0
    p = min(1.0, max(float(acceptance), MIN_ACCEPTANCE))

    def fills(n: int) -> bool:  # P(Binomial(pending + n, p) >= missing) >= probability
        return bool(binom.sf(missing - 1, pending + n, p) >= probability)

    if fills(0):
        return 0
    hi = max(1, math.ceil(missing / p) - pending)
    while not fills(hi):
        hi *= 2
    lo = 0  # fills(lo) is false, fills(hi) is true
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fills(mid) else (mid, hi)
    return hi




def cell_acceptance(cell_of: Mapping[str, str], outcomes: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Per cell: accepted or revised / decided, over every decided candidate of the build (``cell_of``: id -> cell).

    Counted over the build's pools, not the release: a rejected candidate leaves the release and its
    reserve, so the release alone would show every cell at 100%.
    """
    decided: dict[str, list[bool]] = {}
    for id_, outcome in outcomes.items():
        status = outcome.get("status")
        if id_ in cell_of and status in DECIDED:
            decided.setdefault(cell_of[id_], []).append(status != "rejected")
    return {cell: sum(kept) / len(kept) for cell, kept in sorted(decided.items())}


def topup(config: TopupConfig) -> TopupResult:
    """Give every cell that validation leaves short that many new candidates, appended to its reserve.

    With ``config.oversample``, a cell gets enough new candidates that one more round of validation,
    over its pending rows and the new ones together, fills it with probability ``FILL_PROBABILITY``
    at the acceptance (accepted or revised over decided) measured in that cell by the validation
    file (:func:`candidates_to_fill`; a cell with nothing decided gets its plain shortfall).

    Natural cells take the next pool rows by rank; synthetic cells get new slots of the same seeded
    plan (same filters, every earlier answer reused). The release is rewritten with everything
    selected before kept in place and the new candidates (validation pending) at the end of their
    cells' reserves.
    """
    out = Path(config.out)
    natural, synthetic, release = config.seeded()
    with _locked(out, Path(config.work)), tempfile.TemporaryDirectory(prefix="hexainst-shipped-") as tmp:
        return _topup(out, Path(config.validation), work=Path(config.work), natural=natural, synthetic=synthetic,
                      release=shipped_rates(out, release, Path(tmp)),
                      per_category_explicit=config.per_category is not None, oversample=config.oversample)


@contextlib.contextmanager
def _locked(out: Path, work: Path) -> Iterator[None]:
    """The writers' locks on the release folder and the working folder (the lock is re-entrant: one folder given
    twice is locked once)."""
    with writer_lock(out, what="release folder"), writer_lock(work, what="working folder"):
        yield


def _check_same_build(out: Path, work: Path, known: set[str]) -> None:
    """The release in ``out`` was made from the pools in ``work`` (else the top-up would blame the validation file)."""
    ids = [r["id"] for r in read_release_rows(out)]
    foreign = [i for i in ids if i not in known]
    if foreign:
        raise OutputSettingError("work", f"{work}: its pools did not make the release {out} ({len(foreign)} of its "
                                         f"{len(ids)} rows, e.g. {foreign[0]!r}, are not in them); give the working "
                                         "folder of the build that made it")


def _topup(out: Path, validation: Path, *, work: Path, natural: NaturalConfig, synthetic: SyntheticConfig,
           release: ReleaseConfig, per_category_explicit: bool, oversample: bool) -> TopupResult:
    natural_dir, synthetic_dir = work / "natural", work / "synthetic"
    cache_dir = Path(synthetic.cache_dir) if synthetic.cache_dir is not None else work / "cache" / "synthetic"
    claim_release_dir(out, inputs=[validation, work], option="out")
    if not validation.is_file():  # named before the working folder's checks, which would hide it
        what = "is a folder, not a file" if validation.is_dir() else "does not exist"
        raise SettingError("validation", f"{validation}: the validation file {what}")
    for folder in (natural_dir, synthetic_dir):
        if not folder.is_dir():
            raise OutputSettingError("work", f"{work}: no {folder.name}/ pools; run the whole build "
                                             "(hexainst build all) with this working folder first")
    # The top-up rewrites both pool folders: they must be that build's own (its working folder, not a stage's output).
    claim_output_dir(natural_dir, NATURAL_KIND, option="work")
    claim_output_dir(synthetic_dir, SYNTHETIC_KIND, inputs=[natural_dir, cache_dir], option="work")
    pools = read_pools([natural_dir, synthetic_dir])
    known = {r["id"] for rows in pools.values() for r in rows}
    _check_same_build(out, work, known)
    outcomes = {o["id"]: o for o in read_validation(validation, known)["outcomes"]}
    cell_of = {r["id"]: f"{category}/{source}" for (category, source), rows in pools.items() for r in rows}
    acceptance = cell_acceptance(cell_of, outcomes) if oversample else {}
    cells = shortfalls(out, outcomes, release.rows_per_cell)
    if oversample:  # pending rows count at the acceptance their cell has shown so far
        need = {cell: n for cell, v in cells.items()
                if (n := candidates_to_fill(v, acceptance.get(cell), release.rows_per_cell))}
    else:
        need = {cell: v["short"] for cell, v in cells.items() if v["short"]}
    if not need:
        return TopupResult(out=out, cells=cells, added={}, new_ids=[], report=None)
    previous = previous_order(out)

    topup_extra = topup_so_far(work, out)
    topup_extra = {cell: topup_extra.get(cell, 0) + need.get(cell, 0) for cell in {*topup_extra, *need}}
    added = {cell.split("/")[0]: n for cell, n in need.items() if cell.endswith("/synthetic")}
    if added:
        plan = reserve_plan(expected_rates(release.rejection_rates), release.rows_per_cell, cap=release.max_reserve)
        base_url, model = requested(synthetic.base_url, synthetic.model)
        config = synthetic_targets(
            _with_topup(synthetic, topup_extra).replace(base_url=base_url, model=model, natural_pool_dir=natural_dir,
                                                        cache_dir=cache_dir),
            plan, per_category_explicit).check()
        log.info(f"[topup] {sum(added.values())} more synthetic candidates: "
                 + ", ".join(f"{c} +{n}" for c, n in sorted(added.items())), extra=STDOUT)
        synthetic_builder.run(config.replace(out_dir=synthetic_dir))
        pools = read_pools([natural_dir, synthetic_dir])

    sizes: dict[str, int] = {}
    new_ids: list[str] = []
    for (category, source), ids in previous.items():
        sizes[f"{category}/{source}"] = max(0, len(ids) - release.rows_per_cell)
    for cell, n in need.items():
        category, source = cell.split("/")
        before = set(previous.get((category, source), []))
        fresh = sorted((r for r in pools[(category, source)] if r["id"] not in before
                        and (outcomes.get(r["id"]) or {}).get("status") != "rejected"),
                       key=lambda r: rank_key(release.seed, r["id"]))[:n]
        if len(fresh) < n:
            raise OutputError(f"cell {cell}: only {len(fresh)} new candidates available, {n} needed")
        new_ids += [r["id"] for r in fresh]
        sizes[cell] = sizes.get(cell, 0) + n
    with tempfile.TemporaryDirectory(prefix="hexainst-generations-") as tmp:
        generations = Path(tmp) / "synthetic.jsonl"
        synthetic_builder.export_generations(cache_dir, generations, used_only_for=synthetic_dir)
        report = release_builder.run(dataclasses.replace(
            release, pools=(natural_dir, synthetic_dir), out_dir=out, validation_file=validation,
            sources_dir=natural.sources_dir, generations=generations, previous=out, reserve_sizes=sizes,
            topup={"extra": topup_extra})).report
    write_report(report, work / RELEASE_REPORT)
    atomic.write_text(work / "stages" / TOPUP_STATE, json.dumps({"extra": topup_extra}, indent=2, sort_keys=True) + "\n")
    return TopupResult(out=out, cells=cells, added=need, new_ids=new_ids, report=report)
