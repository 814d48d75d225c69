"""Render the dataset card (``README.md`` of a release) from ``cards/hexainst.md``.

The YAML header is a ``huggingface_hub.DatasetCardData``: licence, configs (``default`` plus one
per category) and ``dataset_info`` written by ``datasets``' own ``DatasetInfosDict`` (features and
exact ``num_examples``). The prose sections follow Datasheets for Datasets and are filled from the
rows themselves plus ``build_info``, which the release stage supplies:

``build_info`` keys (all optional)::

    mode            "mirror" | "hub" | "test": where the natural sources came from
    sources_dir     the mirror folder, for a mirror build (not written into the card: it varies by machine)
    load_path       what to pass to load_dataset in the card's snippet (default "hexainst")
    sources         [{name, dataset_id, config, split, revision, license}]
    filters         [{stage, reason, removed}]
    generator_note  one sentence on how the synthetic half was generated
    agreement       the "agreement" block of a one-round validation file (None with several rounds)
    validation      hexainst.kernel.validation_file.rounds_info of the validation file applied: who validated in which
                    round, what each round decided, its kappa
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hexainst.kernel.features import dataset_from_rows, release_features
from hexainst.kernel.templating import environment
from hexainst.kernel.validation_text import summary as validation_text
from hexainst.kernel.version import __version__
from hexainst.kernel.vocab import CATEGORIES, ROWS_PER_CELL, SCHEMA_VERSION, SOURCES, VALIDATION_STATUSES

if TYPE_CHECKING:
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard, DatasetCardData

#: The card templates: the repository's ``cards/`` folder, shipped as the package ``hexainst.cards``.
CARDS_DIR = Path(str(resources.files("hexainst.cards")))
TEMPLATE = CARDS_DIR / "hexainst.md"
LICENSE_TEMPLATE = CARDS_DIR / "LICENSE.md"
#: The card's template is plain Jinja (as huggingface_hub's DatasetCard.from_template renders it: block
#: lines kept, the file's last newline dropped); the licence keeps its last newline.
_CARD_TEMPLATES = environment(CARDS_DIR, trim_blocks=False, lstrip_blocks=False, keep_trailing_newline=False)
_LICENSE_TEMPLATES = environment(CARDS_DIR, trim_blocks=False, lstrip_blocks=False)


def _dataset_info(release_rows: Sequence[Mapping[str, Any]], counts: Mapping[str, int]) -> DatasetInfosDict:
    import datasets  # deferred: heavy (about 1 s), and `import hexainst` / `hexainst --help` reach this module
    from datasets.info import DatasetInfo, DatasetInfosDict  # deferred: as above
    infos = {}
    sizes = {}
    for category in counts:
        ds = dataset_from_rows([r for r in release_rows if r["category"] == category])
        sizes[category] = ds.data.nbytes
    for name, n, nbytes in [("default", sum(counts.values()), sum(sizes.values()))] + [
        (c, counts[c], sizes[c]) for c in counts
    ]:
        splits = datasets.SplitDict()
        splits.add(datasets.SplitInfo(name="train", num_bytes=nbytes, num_examples=n))
        infos[name] = DatasetInfo(features=release_features(), splits=splits, dataset_size=nbytes)
    return DatasetInfosDict(infos)


def _length_stats(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for category in CATEGORIES:
        for source in SOURCES:
            words = [len(r["instruction"].split()) for r in rows if r["category"] == category and r["source"] == source]
            if words:
                out.append(
                    {
                        "category": category,
                        "source": source,
                        "min": min(words),
                        "median": f"{statistics.median(words):g}",
                        "mean": f"{statistics.fmean(words):.1f}",
                        "max": max(words),
                    }
                )
    return out


def _fmt(x: Any) -> str:
    return "n/a" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


def _agreement(block: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not block:
        return None
    types = block.get("error_type_agreement") or {}
    return {
        "n_double_annotated": block.get("n_double_annotated", "n/a"),
        "kappa_decision": _fmt(block.get("kappa_decision")),
        "kappa_category_correct": _fmt(block.get("kappa_category_correct")),
        "n_disagreements": block.get("n_disagreements", "n/a"),
        "error_types": [
            {"name": k, "kappa": _fmt(v.get("kappa")), "percent": _fmt(v.get("percent"))} for k, v in types.items()
        ],
    }


def _rounds_table(rows: Sequence[Mapping[str, Any]], rounds: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The card's per-round table, only when the validation file holds several rounds (one round: the agreement block)."""
    if len(rounds) < 2:
        return []
    decided = {r["id"] for r in rows if r["validation"]["status"] != "pending"}
    out = []
    for r in rounds:
        out.append({
            "round": r["round"],
            "annotators": ", ".join(f"{a['annotator']} ({a['identity'].get('kind')})" for a in r["annotators"]) or "n/a",
            "n_outcomes": r["n_outcomes"],
            "n_rejected": r["n_rejected"],
            "n_rows": sum(1 for i in r.get("ids", ()) if i in decided),
            "kappa_decision": _fmt(r["kappa_decision"]),
            "kappa_category_correct": _fmt(r["kappa_category_correct"]),
            "n_disagreements": r["n_disagreements"],
        })
    return out


def _build_text(info: Mapping[str, Any], generators: list[dict[str, Any]]) -> tuple[str, str | None]:
    mode = info.get("mode", "test")
    gen = ", ".join(f"`{g['model']}` at {g['endpoint_host']}" for g in generators) or "no generator"
    if mode == "mirror":
        notice = (
            "This is a local build: the natural half comes from an offline mirror of the source datasets "
            "(subsets of them), not from the Hugging Face Hub, so it differs from a Hub build."
        )
        text = (
            f"Local build. Natural candidates were read from an offline mirror of the source datasets: subsets of "
            f"the public datasets, with the sha256 of each mirror file recorded as its revision (the mirror's "
            f"location is not recorded: the same files give the same release wherever they are). Synthetic "
            f"candidates were generated by {gen}."
        )
    elif mode == "hub":
        notice = None
        text = (
            "Natural candidates were streamed from the Hugging Face Hub at the revisions listed above. "
            f"Synthetic candidates were generated by {gen}."
        )
    else:
        notice = "This release was written from test rows: it is not HexaInst."
        text = "Written from rows supplied directly to the release writer (no build pipeline)."
    note = info.get("generator_note")
    if note:
        text += " " + note
    if generators:
        text += " " + _synthetic_text(generators, info.get("quality_review"))
    return text, notice


#: The model the paper (arXiv 2505.21191) generated its synthetic half with.
PAPER_GENERATOR = "deepseek-reasoner"


def _synthetic_text(generators: list[dict[str, Any]], review: Mapping[str, Any] | None) -> str:
    """How the synthetic half compares with the paper's, and its measured quality when a blind read applies."""
    models = sorted({g["model"] for g in generators})
    if models == [PAPER_GENERATOR]:
        text = "The paper generated its synthetic half with DeepSeek R1 (`deepseek-reasoner`), as this build did."
    else:
        text = (
            "The paper generated its synthetic half with DeepSeek R1 (`deepseek-reasoner`); this build did not: its "
            f"synthetic rows come from {', '.join(f'`{m}`' for m in models)}, so they are not the paper's and are "
            "weaker than R1's."
        )
    if review and review.get("generator_model") in models:
        text += (
            f" A blind read of {review['rows']} synthetic rows of this release ({review['per_cell']} per category, "
            f"seeded sample, judged by {review.get('judges', 1)} judge{'s' if review.get('judges', 1) > 1 else ''} "
            f"without knowing how they were made; {review['document']}) found on average "
            f"{_percent(review['well_formed'])} well-formed and self-contained, {_percent(review['in_category'])} in "
            f"their category, and {_percent(review['answer_leaked'])} leaking their answer."
        )
    return text


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.0f}%"


def _card_data(release_rows: Sequence[Mapping[str, Any]], counts: Mapping[str, int]) -> DatasetCardData:
    """The card's YAML header: licence, configs (default + one per category), dataset_info."""
    from huggingface_hub import DatasetCardData  # deferred: heavy, see _dataset_info
    configs = [{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}] + [
        {"config_name": c, "data_files": [{"split": "train", "path": f"data/{c}.parquet"}]} for c in counts
    ]
    n = len(release_rows)
    size = "n<1K" if n < 1000 else "1K<n<10K" if n < 10000 else "10K<n<100K"
    card_data = DatasetCardData(
        pretty_name="HexaInst",
        language=["en"],
        license="other",
        license_name="hexainst-per-row",
        license_link="LICENSE.md",
        task_categories=["text-generation"],
        tags=["instruction-following", "interpretability", "sparcom"],
        size_categories=[size],
        configs=configs,
    )
    _dataset_info(release_rows, counts).to_dataset_card_data(card_data)
    return card_data


def _cells(rows: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """Rows per category and source, and whether every cell holds its ROWS_PER_CELL."""
    cell = Counter((r["category"], r["source"]) for r in rows)
    cells = [
        {
            "category": c,
            "natural": cell[(c, "natural")],
            "synthetic": cell[(c, "synthetic")],
            "total": cell[(c, "natural")] + cell[(c, "synthetic")],
        }
        for c in CATEGORIES
    ]
    return cells, all(cell[(c, s)] == ROWS_PER_CELL for c in CATEGORIES for s in SOURCES)


def _sources(rows: Sequence[Mapping[str, Any]], build_info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The natural sources with their rows here: those the build read, or else those the rows name."""
    by_source: Counter = Counter()
    for r in rows:
        nat = r["provenance"]["natural"]
        if nat:
            by_source[nat["source_name"]] += 1
            if nat["task_name"]:
                by_source[f"{nat['source_name']} ({nat['task_name']})"] += 1
    sources = [{**s, "rows": by_source.get(s["name"], 0)} for s in build_info.get("sources", [])]
    if sources:
        return sources
    seen = {}
    for r in rows:
        nat = r["provenance"]["natural"]
        if nat and nat["source_name"] not in seen:
            seen[nat["source_name"]] = {
                "name": nat["source_name"],
                "dataset_id": nat["dataset_id"],
                "config": nat["config"],
                "split": nat["split"],
                "revision": nat["revision"],
                "license": r["license"],
                "rows": by_source[nat["source_name"]],
            }
    return list(seen.values())


def _generators(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    gens: Counter = Counter()
    for r in rows:
        syn = r["provenance"]["synthetic"]
        if syn:
            gens[(syn["generator_model"], syn["endpoint_host"])] += 1
    return [{"model": m, "endpoint_host": h, "rows": k} for (m, h), k in sorted(gens.items())]


def _membership(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """How many synthetic rows carry a membership score, and its range; None when none does."""
    scored = [r["provenance"]["synthetic"]["membership_score"] for r in rows
              if r["provenance"].get("synthetic") and r["provenance"]["synthetic"].get("membership_score") is not None]
    return {"rows": len(scored), "low": min(scored), "high": max(scored)} if scored else None


def render_card(
    release_rows: Sequence[Mapping[str, Any]],
    reserve_rows: Sequence[Mapping[str, Any]],
    counts: Mapping[str, int],
    build_info: Mapping[str, Any],
) -> DatasetCard:
    """The card for a release made of ``release_rows`` (already validated and ordered), laid out by ``TEMPLATE``."""
    round_info = build_info.get("validation") or {}
    generators = _generators(release_rows)
    build_description, notice = _build_text(build_info, generators)
    cells, complete = _cells(release_rows)
    statuses = Counter(r["validation"]["status"] for r in release_rows)
    text = _CARD_TEMPLATES.get_template(TEMPLATE.name).render(
        card_data=_card_data(release_rows, counts).to_yaml(),
        toolkit_version=__version__,
        build_notice=notice,
        load_path=build_info.get("load_path", "hexainst"),
        n_rows=len(release_rows),
        complete=complete,
        cells=cells,
        length_stats=_length_stats(release_rows),
        schema_file=f"hexainst/kernel/schema/record.v{SCHEMA_VERSION}.schema.json",
        n_reserve=len(reserve_rows),
        synthetic_license="other",
        sources=_sources(release_rows, build_info),
        licenses=[{"license": k, "rows": v} for k, v in sorted(Counter(r["license"] for r in release_rows).items())],
        generators=generators,
        membership=_membership(release_rows),
        filters=list(build_info.get("filters", [])),
        validation_summary=validation_text(
            release_rows, round_info.get("annotators"), round_info.get("n_outcomes"), round_info.get("n_rejected"),
            round_info.get("rounds"),
        ),
        ships_validation=bool(round_info),
        validation_statuses=[{"status": s, "rows": statuses[s]} for s in VALIDATION_STATUSES if statuses[s]],
        agreement=_agreement(build_info.get("agreement")),
        rounds=_rounds_table(release_rows, round_info.get("rounds") or []),
        build_description=build_description,
    )
    from huggingface_hub import DatasetCard  # deferred: heavy, see _dataset_info

    return DatasetCard(text)


def render_license(release_rows: Sequence[Mapping[str, Any]]) -> str:
    """``LICENSE.md`` of a release: the licences of its rows and the sources behind each."""
    rows_by: Counter = Counter()
    sources_by: dict[str, set[str]] = {}
    for r in release_rows:
        rows_by[r["license"]] += 1
        nat = r["provenance"]["natural"]
        name = nat["source_name"] if nat else f"synthetic ({r['provenance']['synthetic']['generator_model']})"
        sources_by.setdefault(r["license"], set()).add(name)
    licenses = [
        {"license": k, "rows": rows_by[k], "sources": ", ".join(sorted(sources_by[k]))} for k in sorted(rows_by)
    ]
    return _LICENSE_TEMPLATES.get_template(LICENSE_TEMPLATE.name).render(licenses=licenses)
