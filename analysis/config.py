"""Every default of the analysis, in one place: the command line reads its defaults from here.

:class:`AnalysisConfig` holds the parameters of ``hexainst analyze`` (ISN sets, statistics,
the eps sweep, what to write), :class:`CausalConfig` those of the causal check. Both check their
values when built, so a bad number stops the command before any work with one line naming the
option (``--eps must be in (0, 1), got 1.5``); the Python API gets the same
:class:`ConfigError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from hexainst.kernel.errors import UserError
from hexainst.kernel.vocab import DEFAULT_SEED

#: Top-eps fraction of neurons per instruction (the paper: 1%).
DEFAULT_EPS = 0.01
#: eps values of the sweep table.
DEFAULT_SWEEP: tuple[float, ...] = (0.005, 0.01, 0.02, 0.05)
#: Tie rules at the threshold (see :mod:`hexainst.analysis.isn`).
TIE_RULES: tuple[str, ...] = ("paper", "exact-k")
#: One threshold over all neurons, or one per layer.
SCOPES: tuple[str, ...] = ("global", "per-layer")


class ConfigError(UserError, ValueError):
    """A parameter of the analysis is out of range (the message names the option)."""


def _option(name: str) -> str:
    """The command-line option of a config field (``n_boot`` -> ``--bootstrap``)."""
    return _OPTIONS.get(name, "--" + name.replace("_", "-"))


_OPTIONS = {
    "n_permutations": "--permutations",
    "n_sweep_permutations": "--sweep-permutations",
    "n_boot": "--bootstrap",
    "include_self_pairs": "--include-self-pairs",
    "venn_ids": "--venn-id",
    "per_category": "--causal-per-category",
    "max_predicted": "--causal-max-tokens",
    "n_random": "--causal-draws",
}


def check_eps(value: float, option: str = "--eps") -> float:
    """``value`` as a float in (0, 1), else :class:`ConfigError` naming ``option``."""
    try:
        eps = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{option} must be a number in (0, 1), got {value!r}") from None
    if not (math.isfinite(eps) and 0 < eps < 1):
        raise ConfigError(f"{option} must be in (0, 1) (1% is 0.01), got {value!r}")
    return eps


def _at_least(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{_option(name)} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class CausalConfig:
    """Parameters of the held-out causal check (``--causal``; :func:`hexainst.analysis.causal.heldout_causal_check`)."""

    #: Evaluated instructions per category (held out: the category's other instructions build its set).
    per_category: int = 20
    #: Scored tokens per row: the response's first N, else the instruction's last N (None = all).
    max_predicted: int | None = 32
    #: Random draws, matched on firing rate, per category set.
    n_random: int = 3

    def __post_init__(self) -> None:
        _at_least("per_category", self.per_category, 1)
        _at_least("n_random", self.n_random, 1)
        if self.max_predicted is not None:
            _at_least("max_predicted", self.max_predicted, 1)


@dataclass(frozen=True)
class AnalysisConfig:
    """Every parameter of a run (written into results.json and report.md)."""

    eps: float = DEFAULT_EPS
    tie_rule: str = "paper"
    scope: str = "global"
    seed: int = DEFAULT_SEED
    #: A seeded sample of this many instructions per category (the paper: 50); None = all.
    sample: int | None = None
    include_self_pairs: bool = False
    sweep_eps: tuple[float, ...] = DEFAULT_SWEEP
    sweep_tie_rules: tuple[str, ...] = TIE_RULES
    n_permutations: int = 2000
    n_sweep_permutations: int = 500
    n_boot: int = 1000
    ci_level: float = 0.95
    #: Also compare categories on instructions matched by token length (``--length-matched``,
    #: :mod:`hexainst.analysis.length_matching`): quantile strata of T, tested with
    #: ``n_sweep_permutations`` label shuffles like the length-adjusted regression.
    length_matched: bool = False
    length_strata: int = 10
    venn_ids: tuple[str, ...] = ()
    save_sets: bool = True
    note: str = ""
    progress: bool = True

    def __post_init__(self) -> None:
        check_eps(self.eps)
        if self.tie_rule not in TIE_RULES:
            raise ConfigError(f"--tie-rule must be one of {', '.join(TIE_RULES)}, got {self.tie_rule!r}")
        if self.scope not in SCOPES:
            raise ConfigError(f"--scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        _at_least("seed", self.seed, 0)
        if self.sample is not None:
            _at_least("sample", self.sample, 1)
        if not self.sweep_eps:
            raise ConfigError("--sweep-eps needs at least one value")
        for eps in self.sweep_eps:
            check_eps(eps, "--sweep-eps")
        bad = [t for t in self.sweep_tie_rules if t not in TIE_RULES]
        if bad or not self.sweep_tie_rules:
            raise ConfigError(f"sweep tie rules must be among {', '.join(TIE_RULES)}, got {self.sweep_tie_rules!r}")
        for name in ("n_permutations", "n_sweep_permutations", "n_boot", "length_strata"):
            _at_least(name, getattr(self, name), 1)
        if not (isinstance(self.ci_level, float) and 0 < self.ci_level < 1):
            raise ConfigError(f"ci_level must be in (0, 1), got {self.ci_level!r}")

    def parameters(self) -> dict[str, object]:
        """The parameters as results.json records them (tuples as lists; not ``progress``)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self) if f.name != "progress"}
