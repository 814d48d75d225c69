"""Every setting of the analysis, declared once: the command line builds its options from here.

:class:`AnalysisConfig` holds the parameters of the analysis (ISN sets, statistics, the eps
sweep, what to write), :class:`CausalConfig` those of the causal check; :class:`AnalyzeConfig` is
everything ``hexainst analyze`` takes (its stores and texts, the controls, both configs) and
:class:`BaselineConfig` everything ``hexainst baseline`` takes. Each field's default, range and
help is its :func:`~hexainst.kernel.settings.setting`. The configs check their values when built,
so a bad number stops before any work with one :class:`~hexainst.kernel.settings.SettingError`
naming the setting (``eps must be in (0, 1), got 1.5``; the command line names its flag).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace

from hexainst.analysis.recording.config import RecordingConfig
from hexainst.kernel.settings import SettingError, check_ranges, setting
from hexainst.kernel.vocab import DEFAULT_SEED

PathLike = str | os.PathLike[str]

#: Top-eps fraction of neurons per instruction (the paper: 1%).
DEFAULT_EPS = 0.01
#: eps values of the sweep table.
DEFAULT_SWEEP: tuple[float, ...] = (0.005, 0.01, 0.02, 0.05)
#: Tie rules at the threshold (see :mod:`hexainst.analysis.isn`).
TIE_RULES: tuple[str, ...] = ("paper", "exact-k")
#: One threshold over all neurons, or one per layer.
SCOPES: tuple[str, ...] = ("global", "per-layer")


#: What the causal check scores on a row: its response where it has one, or always the instruction's own last tokens.
CAUSAL_TARGETS: tuple[str, ...] = ("response", "continuation")


@dataclass(frozen=True)
class CausalConfig:
    """Parameters of the held-out causal check (:func:`hexainst.analysis.causal.heldout_causal_check`).

    ``n_boot``, ``ci_level``, ``seed`` and ``progress`` are the run's in ``hexainst analyze``
    (:meth:`for_run` takes them from its :class:`AnalysisConfig`); their defaults serve a direct call.
    """

    per_category: int = setting(20, "evaluated instructions per category, held out: each category's set is built "
                                    "from its other instructions only", low=1)
    #: Scored tokens per row: the response's first N, else the instruction's last N (None or 0 = all).
    max_predicted: int | None = setting(32, "score the first N tokens of a row's response, or the last N of its "
                                            "instruction where it has none (0 = all)", low=0)
    n_random: int = setting(3, "random neuron sets per category, matched on firing rate in the same layers", low=1)
    rate_pool: int = setting(5, "each set neuron's random partner is drawn among this many nearest-rate neurons of "
                                "its layer", low=1)
    targets: str = setting("response", "response: score a row's response where it has one (natural rows: the "
                                       "mirror's answer); continuation: always the instruction's own last tokens",
                           choices=CAUSAL_TARGETS)
    n_boot: int = setting(2000, "bootstrap resamples (rows within category) of the specificity interval", low=1)
    ci_level: float = setting(0.95, "level of the specificity interval", low=0, high=1, low_open=True,
                              high_open=True)
    seed: int = setting(DEFAULT_SEED, "seed of the held-out split, the random draws and the bootstrap", low=0)
    progress: bool = setting(True, "no progress bar")

    def __post_init__(self) -> None:
        check_ranges(self)
        _whole(self, "per_category", "n_random", "max_predicted", "rate_pool", "n_boot", "seed")
        if self.max_predicted == 0:
            object.__setattr__(self, "max_predicted", None)  # 0 = all, as None

    def for_run(self, run: AnalysisConfig) -> CausalConfig:
        """This config with the run's bootstrap, interval level, seed and progress (as ``hexainst analyze`` runs it)."""
        return replace(self, n_boot=run.n_boot, ci_level=run.ci_level, seed=run.seed, progress=run.progress)

    def parameters(self) -> dict[str, object]:
        """The check's parameters as results.json records them (its ``config``; the seed is recorded beside it)."""
        return {name: getattr(self, name) for name in ("per_category", "n_random", "max_predicted", "rate_pool",
                                                       "n_boot", "ci_level", "targets")}


def _whole(config: object, *names: str) -> None:
    """Each named setting is a whole number (or None): 2.5 and True are not counts or seeds."""
    for name in names:
        value = getattr(config, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise SettingError(name, f"must be a whole number, got {value!r}")


@dataclass(frozen=True)
class AnalysisConfig:
    """Every parameter of a run (written into results.json and report.md)."""

    eps: float = setting(DEFAULT_EPS, "top-eps fraction of neurons per instruction (1%% is 0.01)", low=0, high=1,
                         low_open=True, high_open=True)
    tie_rule: str = setting("paper", "paper: keep every neuron tied at the threshold; exact-k: exactly k, ties "
                                     "broken by mean activation (needs a store recorded with activation sums)",
                            choices=TIE_RULES)
    scope: str = setting("global", "one threshold over all neurons (global) or one per layer", choices=SCOPES)
    seed: int = setting(DEFAULT_SEED, "seed of sampling, permutations, bootstrap", low=0)
    #: A seeded sample of this many instructions per category (the paper: 50); None = all.
    sample: int | None = setting(None, "analyse a seeded sample of N instructions per category (the paper: 50); "
                                       "default all", low=1, metavar="N")
    include_self_pairs: bool = setting(False, "include J(I, I) = 1 in the diagonal category means, as the paper did")
    sweep_eps: tuple[float, ...] = setting(DEFAULT_SWEEP, "eps values of the sweep, comma-separated, each in (0, 1)",
                                           low=0, high=1, low_open=True, high_open=True)
    sweep_tie_rules: tuple[str, ...] = setting(TIE_RULES, "tie rules of the sweep", choices=TIE_RULES)
    n_permutations: int = setting(2000, "label shuffles of the permutation test", low=1)
    n_sweep_permutations: int = setting(500, "label shuffles per sweep cell and for the length-adjusted test", low=1)
    n_boot: int = setting(1000, "bootstrap resamples for the CIs", low=1)
    ci_level: float = setting(0.95, "level of the confidence intervals", low=0, high=1, low_open=True,
                              high_open=True)
    #: Also compare categories on instructions matched by token length
    #: (:mod:`hexainst.analysis.length_matching`): quantile strata of T, tested with
    #: ``n_sweep_permutations`` label shuffles like the length-adjusted regression.
    length_matched: bool = setting(False, "also compare categories on instructions matched by token length "
                                          "(quantile strata of T; beside the length-adjusted regression, same "
                                          "number of label shuffles)")
    length_strata: int = setting(10, "length strata of the length-matched comparison", low=1, metavar="N")
    venn_ids: tuple[str, ...] = setting((), "instruction id for Fig. 6 (repeatable; default: the first of each "
                                            "category)", metavar="ID")
    save_sets: bool = setting(True, "do not write the ISN set files (isn_sets/)")
    note: str = setting("", "a line quoted at the top of the report (what this run is)")
    progress: bool = setting(True, "no progress bars")

    def __post_init__(self) -> None:
        if not isinstance(self.eps, (int, float)) or isinstance(self.eps, bool):
            raise SettingError("eps", f"must be a number in (0, 1), got {self.eps!r}")
        check_ranges(self)
        _whole(self, "seed", "sample", "n_permutations", "n_sweep_permutations", "n_boot", "length_strata")
        if not self.sweep_eps:
            raise SettingError("sweep_eps", "needs at least one value")
        if not self.sweep_tie_rules:
            raise SettingError("sweep_tie_rules", f"needs at least one of {', '.join(TIE_RULES)}")
        if not isinstance(self.ci_level, float):
            raise SettingError("ci_level", f"must be a number in (0, 1), got {self.ci_level!r}")

    def parameters(self) -> dict[str, object]:
        """The parameters as results.json records them (tuples as lists; not ``progress``)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self) if f.name != "progress"}


@dataclass(frozen=True)
class AnalyzeConfig:
    """Everything ``hexainst analyze`` needs: the stores, the report folder, the texts, and the settings.

    ``store``: the activation store (the base model when ``compare`` names the fine-tuned one);
    ``untrained``: stores of the same architecture with random weights, one per seed; ``release``
    or ``rows``: where the instruction texts and provenance come from (default: the packaged
    release); ``sources``: the offline mirror of the natural sources, for the causal check's
    responses (default: ``$HEXAINST_SOURCES``).
    """

    store: PathLike
    out: PathLike
    compare: PathLike | None = None
    untrained: tuple[PathLike, ...] = ()
    release: PathLike | None = None
    rows: PathLike | None = None
    sources: PathLike | None = None
    tokenizer: str | None = setting(None, "tokenizer for the lexical baseline (default: the store header's model; "
                                          "'gemma3-270m-gguf' works)")
    lexical: bool = setting(True, "skip the lexical baseline (token-type sets of the instructions under the model's "
                                  "tokenizer, built like ISN sets; computed by default from --release/--rows or the "
                                  "packaged release)")
    causal: bool = setting(False, "run the causal check on --store's model (dense only)")
    causal_model: str | None = setting(None, "model to load (default: the store header's name_or_path; "
                                             "'gemma3-270m-gguf' works)")
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    #: The causal check's parameters (used when ``causal`` is on).
    causal_check: CausalConfig = field(default_factory=CausalConfig)

    def text_inputs(self) -> list[PathLike | None]:
        """The files besides the stores that the run reads (the report folder must not be or hold them)."""
        return [self.rows, self.release, self.sources]

    def rows_source(self) -> str:
        """Where the rows come from, as a message names it."""
        return str(self.rows or self.release or "the packaged release")


@dataclass(frozen=True)
class BaselineConfig:
    """Everything ``hexainst baseline`` needs: the pair, the run's folder, the rows, and how to record and analyse.

    ``pairs_file``: the pairs JSON (default: the paper's pairs); ``model_root``: a folder holding the
    models as ``<hub id>`` or ``<last part of the hub id>`` (else they load from the Hub); ``rows``
    (JSONL) or ``release`` (default: the packaged release): what is recorded. ``out`` gets
    ``stores/base``, ``stores/fine-tuned`` (resumed when rerun) and ``analysis/``.
    """

    pair: str
    out: PathLike
    pairs_file: PathLike | None = None
    model_root: PathLike | None = None
    release: PathLike | None = None
    rows: PathLike | None = None
    per_category: int | None = setting(None, "only the first N rows per category", low=1, metavar="N")
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.per_category is not None and (isinstance(self.per_category, bool) or not isinstance(self.per_category, int)):
            raise SettingError("per_category", f"must be a whole number, got {self.per_category!r}")
