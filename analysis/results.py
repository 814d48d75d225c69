"""What an analysis computes, as plain objects: computed by :mod:`~hexainst.analysis.compute`,
drawn and written by :mod:`~hexainst.analysis.render`, reported by :mod:`~hexainst.analysis.report`.

Arrays stay numpy arrays here (figures and tables are drawn from them). :func:`to_json` is the one
place that turns results into JSON values (numpy -> lists, NaN -> null), which is what
``results.json`` holds and what the report is rendered from.

Shapes: ``m`` categories, ``L`` layers, ``n`` instructions.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hexainst.analysis.config import AnalysisConfig
from hexainst.analysis.controls import HeadlineStat
from hexainst.analysis.isn import IsnSets
from hexainst.analysis.length_matching import LengthMatchedResult
from hexainst.analysis.metrics import ExpertSelection
from hexainst.analysis.stats import LengthAdjustedResult, PermutationResult

#: Field metadata: leave the field out of the JSON (e.g. ISN sets, written as their own files).
NOT_IN_JSON = {"json": False}
#: Field metadata: leave the field out of the JSON when it is None (sections that did not run).
OMIT_IF_NONE = {"omit_if_none": True}


def to_json(value: Any) -> Any:
    """A JSON-safe copy of ``value``: dataclasses as dicts, numpy as lists and numbers, NaN as None.

    A dataclass may define ``__json__()`` returning what stands for it (then converted too).
    """
    if hasattr(value, "__json__"):
        return to_json(value.__json__())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if not f.metadata.get("json", True) or (v is None and f.metadata.get("omit_if_none")):
                continue
            out[f.name] = to_json(v)
        return out
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


@dataclass
class SizeStats:
    """Mean, min and max of ISN set sizes |S(I)|."""

    mean: float
    min: int
    max: int


@dataclass
class IsnSizes:
    """ISN set sizes of one store: the target k and the actual sizes."""

    target_k: int | None
    n_cols: int
    overall: SizeStats
    per_category: dict[str, SizeStats]
    #: instructions per category (for the table; not in results.json, which has it under "instructions")
    n_per_category: dict[str, int] = field(default_factory=dict, metadata=NOT_IN_JSON)


@dataclass
class CategoryMatrix:
    """A category x category matrix of mean pairwise values with bootstrap CIs and a permutation test.

    matrix, ci_low, ci_high: float [m, m].
    """

    categories: list[str]
    matrix: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    permutation: PermutationResult


@dataclass
class JaccardResult(CategoryMatrix):
    """Fig. 3: category means of ISN-set Jaccard, with chance level and the length-adjusted test."""

    chance_matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # float [m, m]
    chance_overall: float = math.nan
    length_adjusted: LengthAdjustedResult | None = None
    #: Same-category contrast on length-matched pairs (``--length-matched``).
    length_matched: LengthMatchedResult | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass
class SweepEntry:
    """One (eps, tie rule) cell of the sweep; ``skipped`` says why a cell was not computed."""

    eps: float
    tie_rule: str
    scope: str
    skipped: str | None = None
    target_k: int | None = None
    mean_size: float | None = None
    min_size: int | None = None
    max_size: int | None = None
    diagonal: float | None = None
    off_diagonal: float | None = None
    difference: float | None = None
    p_value: float | None = None
    n_permutations: int | None = None
    diagonal_per_category: dict[str, float] | None = None

    def __json__(self) -> dict[str, Any]:
        keys = ("eps", "tie_rule", "scope")
        if self.skipped is not None:
            return {k: getattr(self, k) for k in keys} | {"skipped": self.skipped}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "skipped"}


@dataclass
class ModelResult:
    """Everything computed on one store (one model)."""

    label: str  # "model", or "base" / "fine-tuned"
    model: str
    n_layers: int
    is_moe: bool
    isn_sizes: IsnSizes
    jaccard: JaccardResult
    #: Fig. 4 (MoE only): category means of Pearson r between routing-frequency vectors.
    routing_pearson: CategoryMatrix | None = field(default=None, metadata=OMIT_IF_NONE)
    #: Fig. 5 data: category -> mean ISNs per layer, float [L].
    isn_per_layer: dict[str, np.ndarray] = field(default_factory=dict)
    sweep: list[SweepEntry] = field(default_factory=list)
    #: Fig. 5 intervals: category -> cluster-bootstrap CI of the mean ISNs per layer, float [L] each.
    isn_per_layer_low: dict[str, np.ndarray] = field(default_factory=dict)
    isn_per_layer_high: dict[str, np.ndarray] = field(default_factory=dict)
    #: The ISN sets at the main (eps, tie rule): written under isn_sets/, not into the JSON.
    sets: IsnSets | None = field(default=None, metadata=NOT_IN_JSON)
    #: The pairwise Jaccard matrix float [n, n] (for the controls; not written).
    pair: np.ndarray | None = field(default=None, metadata=NOT_IN_JSON)

    def __json__(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.metadata.get("json", True) and f.name != "label"
               and not (getattr(self, f.name) is None and f.metadata.get("omit_if_none"))}
        return out


@dataclass
class CategoryValue:
    """A per-category mean of per-instruction values with its bootstrap CI."""

    mean: float
    ci_low: float
    ci_high: float


@dataclass
class AlterationResult:
    """Base vs fine-tuned: Table 1 (paired Jaccard), Table 2 and 6 (MoE), Fig. 6."""

    table1_jaccard: dict[str, CategoryValue]
    table1_overall: float
    table2_pearson: dict[str, CategoryValue] | None = field(default=None, metadata=OMIT_IF_NONE)
    table6: dict[str, ExpertSelection] | None = field(default=None, metadata=OMIT_IF_NONE)
    #: Fig. 6: "<id> (<short category>)" -> int [L, 3] (base only, both, fine-tuned only).
    fig6_venn: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class LengthStats:
    """Instruction length T (tokens) of one category."""

    mean: float
    median: float
    min: int
    max: int
    q05: float = math.nan
    q25: float = math.nan
    q75: float = math.nan
    q95: float = math.nan


@dataclass
class StoreInfo:
    """Where a store is and its header, summarised (see :func:`hexainst.analysis.data.header_summary`)."""

    path: str
    header: dict[str, Any]


@dataclass
class UntrainedInfo:
    """One untrained baseline store: its seed, where it is, its ISN set sizes and Fig. 3 matrix."""

    label: str
    seed: int | None
    path: str
    model: str
    mean_set_size: float
    matrix: np.ndarray  # float [m, m] category means of Jaccard
    isn_per_layer: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class LexicalInfo:
    """The lexical baseline: token-type sets under the model's tokenizer (see :mod:`hexainst.analysis.lexical`)."""

    vocab_size: int
    target_k: int
    mean_set_size: float
    min_set_size: int
    max_set_size: int
    matrix: np.ndarray  # float [m, m]
    rule: str


@dataclass
class ControlsResult:
    """The model against its controls: untrained seeds, lexical baseline, excess, nulls and clusters."""

    categories: list[str]
    untrained: list[UntrainedInfo]
    lexical: LexicalInfo | None
    lexical_skipped: str | None
    headlines: list[HeadlineStat]
    model_matrix: np.ndarray  # float [m, m]
    untrained_mean_matrix: np.ndarray | None
    excess_matrix: np.ndarray | None
    untrained_per_layer: dict[str, np.ndarray] | None
    clusters_per_category: dict[str, int]
    cluster_rule: str
    n_strata: int
    n_boot: int
    ci_level: float


@dataclass
class ClaimRow:
    """One claim of the paper: its reading and ours side by side, and the verdict."""

    claim: str
    paper_reading: str
    paper_value: str
    our_reading: str
    our_value: str
    verdict: str


@dataclass
class AnalysisResults:
    """One run: parameters, inputs and every section's results.

    ``models`` maps the label ("model", or "base" and "fine-tuned") to its results; the JSON has
    them at the top level under their labels, as before.
    """

    config: AnalysisConfig
    categories: list[str]
    stores: dict[str, StoreInfo]
    n_instructions: int
    per_category: dict[str, int]
    lengths: dict[str, dict[str, LengthStats]]
    models: dict[str, ModelResult]
    alteration: AlterationResult | None = None
    #: The held-out causal check's result (:class:`hexainst.analysis.causal.HeldoutCausalResult`).
    causal: Any = None
    #: Untrained and lexical baselines, excess, nulls (:mod:`hexainst.analysis.controls`).
    controls: ControlsResult | None = None
    #: T of every analysed instruction per category (for the length figure; not in the JSON).
    n_tokens: dict[str, np.ndarray] = field(default_factory=dict)

    def __json__(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "parameters": self.config.parameters(),
            "stores": self.stores,
            "instructions": {"n": self.n_instructions, "per_category": self.per_category},
            "lengths": self.lengths,
        }
        out.update(self.models)
        if self.alteration is not None:
            out["alteration"] = self.alteration
        if self.causal is not None:
            out["causal"] = self.causal
        if self.controls is not None:
            out["controls"] = self.controls
        return out
