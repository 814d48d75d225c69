"""``hexainst analyze`` as one call: :func:`run` takes an :class:`~hexainst.analysis.config.AnalyzeConfig` and
returns an :class:`AnalyzeResult`.

The stage's entry point, in the project's shape (config in, result out; cf. ``build_all`` and
``recorder.run``). It opens and checks the stores, builds the controls' inputs (untrained stores,
the lexical baseline's tokenizer and texts, the provenance clusters), loads the causal check's
model and checks its tokenizer against the store's, then hands everything to
:func:`hexainst.analysis.pipeline.analyze`. A Python caller gets the same checks as the command
line; errors name settings (:class:`~hexainst.kernel.settings.SettingError`), which the shell
turns into its flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexainst.analysis.causal_responses import natural_responses
from hexainst.analysis.compute import CausalSpec, LexicalSpec, check_causal_counts
from hexainst.analysis.config import AnalyzeConfig, PathLike
from hexainst.analysis.data import check_comparable, open_store, read_rows
from hexainst.analysis.nulls import provenance_cluster
from hexainst.analysis.pipeline import analyze, claim_analysis_dir
from hexainst.analysis.recording.loading import load_model, load_tokenizer, resolve_model, tokenizer_sha256
from hexainst.kernel.environment import SOURCES, mirror
from hexainst.kernel.errors import UserError
from hexainst.kernel.settings import SettingError


@dataclass(frozen=True)
class AnalyzeResult:
    """What an analysis wrote: the report folder, results.json's content, and warnings about the stores
    (those whose weights and texts cannot be checked), to show once the report is written."""

    out: Path
    results: dict[str, Any]
    warnings: list[str]


def run(config: AnalyzeConfig) -> AnalyzeResult:
    """Analyse ``config.store`` (with ``config.compare``, ``config.untrained``, the controls and, when asked,
    the causal check) into the report folder ``config.out``; every input is checked before any work."""
    inputs = config.text_inputs()
    claim_analysis_dir(config.out, inputs=[config.store, config.compare, *config.untrained, *inputs])
    store_a = open_store(config.store)
    store_b = open_store(config.compare) if config.compare else None
    untrained = [open_store(u) for u in config.untrained]
    if store_b is not None:
        check_comparable(store_a, store_b)
    warnings = [f"{store.path}: {store.unchecked}" for store in (store_a, store_b)
                if store is not None and getattr(store, "unchecked", None)]
    lexical, clusters, lexical_skipped = controls_inputs(config, store_a)
    causal = causal_spec(config, store_a) if config.causal else None
    results = analyze(store_a, config.out, store_b=store_b, config=config.analysis, causal=causal, inputs=inputs,
                      untrained=untrained, lexical=lexical, clusters=clusters, lexical_skipped=lexical_skipped)
    return AnalyzeResult(out=Path(config.out), results=results, warnings=warnings)


def _rows(config: AnalyzeConfig, what: str) -> list[dict[str, Any]]:
    return read_rows(config.rows, config.release, what=what)


def controls_inputs(config: AnalyzeConfig, store_a: Any) -> tuple[LexicalSpec | None, dict[str, str] | None, str | None]:
    """(lexical spec or None, id -> provenance cluster or None, why the lexical baseline is missing).

    The release (or the rows file) gives the texts and the provenance. Asked for explicitly (a
    tokenizer, a release or a rows file given), a missing piece is an error; by default a baseline
    that cannot be built is named in the report, never silently dropped.
    """
    explicit = bool(config.tokenizer or config.release or config.rows)
    try:
        rows = _rows(config, "the lexical baseline's texts and the clusters' provenance")
    except UserError as exc:
        if explicit:
            raise
        return None, None, f"no release rows: {exc}"
    by_id = {str(r["id"]): r for r in rows}
    ids = list(store_a.ids)
    missing = [i for i in ids if i not in by_id]
    if missing:
        msg = f"{len(missing)} of the store's ids are not in {config.rows_source()} (first: {missing[0]})"
        if explicit:
            raise UserError(msg + "; pass the release the store was recorded from")
        return None, None, msg
    clusters = {i: provenance_cluster(by_id[i]) for i in ids}
    if not config.lexical:
        return None, clusters, "--no-lexical"  # the report's words (results.json keeps them)
    name = config.tokenizer or (store_a.header.get("model") or {}).get("name_or_path")
    try:
        tokenizer = load_tokenizer(resolve_model(str(name)))  # a GGUF model's cached conversion, without weights
    except (UserError, OSError, ValueError) as exc:
        if config.tokenizer:
            raise
        return None, clusters, f"the tokenizer of {name} could not be loaded ({str(exc).splitlines()[0][:160]}); " \
                               "pass --tokenizer"
    texts = {i: str(by_id[i]["instruction"]) for i in ids}
    return LexicalSpec(tokenizer=tokenizer, texts=texts), clusters, None


def causal_spec(config: AnalyzeConfig, store_a: Any) -> CausalSpec:
    """What the causal check needs besides the store: the texts, the natural rows' responses, and the model
    (``causal_model``, else the one the store header names), whose tokenizer must be the store's."""
    texts = {str(r["id"]): str(r["instruction"]) for r in _rows(config, "the causal check's texts")}
    responses, responses_source = causal_responses(config, store_a)
    name = config.causal_model or store_a.header.get("model", {}).get("name_or_path")
    if not name:
        raise SettingError("causal_model", "not given, and the store header names no model")
    if store_a.is_moe:
        raise SettingError("causal", f"supports dense models only; store {store_a.path} is an MoE store")
    if not config.causal_model:
        check_recorded_path(str(name), store_a.path)
    check_causal_counts(list(store_a.categories), config.causal_check.per_category, config.analysis.sample)
    loaded = load_model(resolve_model(str(name)), dtype="float32", progress=config.analysis.progress)
    sha = tokenizer_sha256(loaded.tokenizer)
    want = store_a.header.get("tokenizer", {}).get("sha256")
    if sha != want:
        whose = f"{name}: its tokenizer" if config.causal_model else f"needed: the tokenizer of {name} (the store's model)"
        raise SettingError("causal_model", f"{whose} (sha256 {sha[:12]}) is not the one the store was recorded with "
                                           f"({str(want)[:12]})")
    return CausalSpec(model=loaded.model, tokenizer=loaded.tokenizer, texts=texts, model_name=str(name),
                      config=config.causal_check, responses=responses, responses_source=responses_source)


def causal_responses(config: AnalyzeConfig, store_a: Any) -> tuple[dict[str, str] | None, str | None]:
    """(id -> reference response of the store's natural rows, the mirror's folder), or (None, None)
    without ``sources`` and ``$HEXAINST_SOURCES`` (then every row is scored on its instruction)."""
    folder = mirror(config.sources or None)
    if folder is None:
        return None, None
    if not folder.is_dir():
        problem = f"{folder}: not a folder (the offline mirror of the natural sources)"
        if config.sources:
            raise SettingError("sources", problem)
        raise UserError(f"${SOURCES} {problem}")
    ids = set(store_a.ids)
    rows = [r for r in _rows(config, "the causal check's responses") if str(r["id"]) in ids]
    return natural_responses(rows, folder), str(folder)


def check_recorded_path(name: str, store_path: PathLike) -> None:
    """A model path an old store recorded relative to where it was made is not a Hub id: say so (one line)."""
    path = Path(name).expanduser()
    if path.is_absolute() or path.exists():
        return
    pathlike = name.startswith((".", "~")) or name.count("/") > 1 or (Path(store_path).parent / name).exists()
    if pathlike:
        raise SettingError("causal_model", f"not given, and the store header names the model {name!r}, a path "
                                           f"relative to where the store was recorded, not found from {Path.cwd()}; "
                                           "give the model's folder")
