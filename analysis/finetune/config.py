"""Every setting of ``hexainst finetune``, declared once: the command line builds its options here.

:class:`FinetuneConfig` holds what the fine-tune actions (run, path, evaluate, record, changes,
report) are given besides their files: the recipe, the run (variant, steps, seed), the seeds of
the design, and the numbers of evaluation, recording and ISN changes. Each field's default,
range and help is its :func:`~hexainst.kernel.settings.setting`; the config checks its values
when built (a :class:`~hexainst.kernel.settings.SettingError` naming the setting).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hexainst.kernel.settings import SettingError, check_ranges, setting

from .recipe import DEFAULT_RECIPE, VARIANTS, Recipe, load_recipe


@dataclass(frozen=True)
class FinetuneConfig:
    """The settings of one ``hexainst finetune`` action (each action reads the ones it needs)."""

    recipe: str = setting(DEFAULT_RECIPE, "bundled recipe name or recipe JSON file")
    root: Path | None = setting(None, "where fine-tuned models live (default: $HEXAINST_CACHE/finetuned, i.e. "
                                      "~/.cache/hexainst/finetuned)")
    sources: Path | None = setting(None, "offline mirror of the natural sources holding the recipe's rows "
                                         "(default $HEXAINST_SOURCES)")
    release: Path | None = setting(None, "release whose instructions are left out of the rows (default: the "
                                         "bundled release)")
    variant: str | None = setting(None, "tuned: instruction -> response; control: the responses alone (same "
                                        "tokens, steps, schedule); shuffled: the tuned format with each instruction "
                                        "paired with another row's response", choices=VARIANTS)
    steps: int | None = setting(None, "override the recipe's steps (e.g. a short pilot; the runs used, if any)",
                                low=1)
    seed: int | None = setting(None, "training seed of this run (default: the recipe's); the held-out split stays "
                                     "the recipe's", low=0)
    seeds: tuple[int, ...] = setting((0, 1, 2), "training seeds of the runs to use; runs not finished are left "
                                                "out and counted", low=0)
    threads: int | None = setting(None, "torch threads (default: the recipe's); 1 is faster where other jobs "
                                        "oversubscribe the CPU", low=1)
    per_category: int = setting(50, "release rows per category (the paper's 50)", low=1)
    sample_seed: int = setting(0, "seed of the sample", low=0)
    batch_size: int = setting(8, "instructions per forward pass", low=1)
    eps: float = setting(0.01, "ISN fraction (the paper's 0.01)", low=0, high=1, low_open=True, high_open=True)
    note: str = setting("", "a line quoted at the top of the report")
    progress: bool = setting(True, "no progress bars")

    def __post_init__(self) -> None:
        check_ranges(self)
        object.__setattr__(self, "seeds", tuple(sorted(set(self.seeds))))
        if not self.seeds:
            raise SettingError("seeds", "needs at least one seed")

    def load_recipe(self) -> Recipe:
        """The recipe named by ``recipe``, with the ``steps`` override and the training ``seed`` when given."""
        recipe = load_recipe(self.recipe)
        if self.steps is not None:
            recipe = recipe.with_overrides(steps=self.steps)
        if self.seed is not None:
            recipe = recipe.with_seed(self.seed)
        return recipe
