"""Fine-tune a model into a base/fine-tuned pair for the alteration analysis (issue #16).

- :mod:`.config`: the settings of ``hexainst finetune`` (:class:`FinetuneConfig`);
- :mod:`.recipe`: recipes as data (``recipes/*.json``), three arms (``tuned``, ``control``,
  ``shuffled``), a run = (arm, seed);
- :mod:`.data`: the rows (Alpaca from the mirror, release instructions left out), their tokens;
- :mod:`.train`: ``transformers.Trainer`` on a recipe, resumable, weights in the cache;
- :mod:`.evaluate`: NLL of held-out responses given their instructions, greedy answers;
- :mod:`.design`, :mod:`.design_report`: the multi-seed design of issue #22 (instruction-following
  gain, ISN changes and their overlap between arms, a report that refuses p-values it cannot carry);
- :mod:`.report`: the earlier single-run report.
"""

from .config import FinetuneConfig
from .recipe import DEFAULT_RECIPE, VARIANTS, Recipe, RecipeError, load_recipe
from .train import FineTuned, fine_tune, finished, model_dir

__all__ = ["DEFAULT_RECIPE", "VARIANTS", "FineTuned", "FinetuneConfig", "Recipe", "RecipeError", "fine_tune", "finished",
           "load_recipe", "model_dir"]
