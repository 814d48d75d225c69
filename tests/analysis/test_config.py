"""AnalysisConfig and CausalConfig: the one home of the defaults, range-checked, read by argparse."""

from __future__ import annotations

import pytest

from hexainst.analysis.config import DEFAULT_EPS, DEFAULT_SWEEP, AnalysisConfig, CausalConfig
from hexainst.cli import build_parser
from hexainst.kernel.errors import UserError
from hexainst.kernel.settings import SettingError
from hexainst.kernel.vocab import DEFAULT_SEED


def test_defaults_are_the_papers() -> None:
    cfg = AnalysisConfig()
    assert (cfg.eps, DEFAULT_EPS, cfg.tie_rule, cfg.scope, cfg.seed) == (0.01, 0.01, "paper", "global", DEFAULT_SEED)
    assert cfg.sweep_eps == DEFAULT_SWEEP == (0.005, 0.01, 0.02, 0.05)
    # issue 22: 20 held-out instructions per category, 3 rate-matched random draws
    assert CausalConfig() == CausalConfig(per_category=20, max_predicted=32, n_random=3)


def test_the_command_line_reads_its_defaults_from_the_configs() -> None:
    from hexainst.cli.analyze import analysis_config

    args = build_parser().parse_args(["analyze", "--store", "s", "--out", "o"])
    assert analysis_config(args) == AnalysisConfig()
    assert (args.per_category, args.max_predicted, args.n_random) == (
        CausalConfig.per_category, CausalConfig.max_predicted, CausalConfig.n_random)
    base = build_parser().parse_args(["baseline", "llama2-7b", "--out", "o"])
    assert analysis_config(base) == AnalysisConfig()


@pytest.mark.parametrize("kwargs, message", [
    ({"eps": 0}, "eps must be in (0, 1)"),
    ({"eps": 1.0}, "eps must be in (0, 1)"),
    ({"eps": float("nan")}, "eps must be in (0, 1)"),
    ({"eps": "a"}, "eps must be a number"),
    ({"sweep_eps": (0.01, 1.5)}, "sweep_eps must be in (0, 1)"),
    ({"sweep_eps": ()}, "sweep_eps needs at least one value"),
    ({"n_permutations": 0}, "n_permutations must be >= 1, got 0"),
    ({"n_sweep_permutations": -3}, "n_sweep_permutations must be >= 1"),
    ({"n_boot": 0}, "n_boot must be >= 1"),
    ({"n_boot": 2.5}, "n_boot must be a whole number"),
    ({"sample": 0}, "sample must be >= 1"),
    ({"seed": -1}, "seed must be >= 0"),
    ({"tie_rule": "loose"}, "tie_rule must be one of paper, exact-k"),
    ({"scope": "layer"}, "scope must be one of global, per-layer"),
    ({"ci_level": 1.0}, "ci_level must be in (0, 1)"),
])
def test_out_of_range_values_name_their_setting(kwargs, message) -> None:
    with pytest.raises(SettingError) as info:
        AnalysisConfig(**kwargs)
    assert message in str(info.value) and info.value.setting == next(iter(kwargs))
    assert isinstance(info.value, UserError)  # the command line prints one line, exit 2


def test_causal_config_ranges() -> None:
    with pytest.raises(SettingError, match="per_category must be >= 1"):
        CausalConfig(per_category=0)
    with pytest.raises(SettingError, match="max_predicted must be >= 0"):
        CausalConfig(max_predicted=-1)
    with pytest.raises(SettingError, match="n_random must be >= 1"):
        CausalConfig(n_random=0)
    assert CausalConfig(max_predicted=None).max_predicted is None  # all predicted tokens
    assert CausalConfig(max_predicted=0) == CausalConfig(max_predicted=None)  # 0 = all, as on the command line


def test_parameters_are_what_results_json_records() -> None:
    params = AnalysisConfig(venn_ids=("a",), progress=False).parameters()
    assert "progress" not in params
    assert params["sweep_eps"] == [0.005, 0.01, 0.02, 0.05] and params["venn_ids"] == ["a"]


def test_a_cross_check_in_the_stage_names_the_setting_and_the_command_line_its_flag() -> None:
    from hexainst.analysis.compute import check_causal_counts
    from hexainst.cli.options import flag_for

    with pytest.raises(SettingError) as info:
        check_causal_counts(["code", "code", "math", "math", "math"], 2)
    assert info.value.setting == "per_category"
    assert str(info.value).startswith("per_category 2: category code has 2 analysed instructions")
    args = build_parser().parse_args(["analyze", "--store", "s", "--out", "o", "--causal"])
    assert info.value.naming(flag_for(args, info.value.setting)).startswith("--causal-per-category 2: category code")


def test_analyze_and_baseline_build_their_configs_from_the_command_line() -> None:
    from hexainst.analysis.config import AnalyzeConfig, BaselineConfig
    from hexainst.cli.options import config_from

    args = build_parser().parse_args(["analyze", "--store", "s", "--out", "o", "--untrained", "u1", "u2",
                                      "--no-lexical", "--causal", "--causal-model", "m", "--tokenizer", "t",
                                      "--causal-per-category", "4"])
    cfg = config_from(args, AnalyzeConfig, causal_check=config_from(args, CausalConfig))
    assert (cfg.store, cfg.out, cfg.untrained, cfg.lexical, cfg.causal, cfg.causal_model, cfg.tokenizer) == (
        "s", "o", ("u1", "u2"), False, True, "m", "t")
    assert cfg.causal_check.per_category == 4
    plain = build_parser().parse_args(["analyze", "--store", "s", "--out", "o"])
    assert config_from(plain, AnalyzeConfig) == AnalyzeConfig(store="s", out="o")
    assert not AnalyzeConfig(store="s", out="o").causal and AnalyzeConfig(store="s", out="o").lexical
    base = build_parser().parse_args(["baseline", "tiny", "--out", "o", "--per-category", "3"])
    assert (config_from(base, BaselineConfig).pair, config_from(base, BaselineConfig).per_category) == ("tiny", 3)
    with pytest.raises(SettingError, match="per_category must be >= 1, got 0"):
        BaselineConfig(pair="tiny", out="o", per_category=0)


def test_the_causal_check_takes_the_runs_statistics() -> None:
    run = AnalysisConfig(n_boot=50, ci_level=0.9, seed=7, progress=False)
    cfg = CausalConfig(per_category=4).for_run(run)
    assert (cfg.n_boot, cfg.ci_level, cfg.seed, cfg.progress, cfg.per_category) == (50, 0.9, 7, False, 4)
    # results.json's causal "config": the keys and order it had before the check took this config
    assert list(cfg.parameters()) == ["per_category", "n_random", "max_predicted", "rate_pool", "n_boot", "ci_level",
                                      "targets"]
    with pytest.raises(SettingError, match="targets must be one of response, continuation"):
        CausalConfig(targets="answer")
    with pytest.raises(SettingError, match="rate_pool must be >= 1"):
        CausalConfig(rate_pool=0)
