"""Fine-tune a model into a base/fine-tuned pair for the alteration analysis (issue #16).

- :mod:`.recipe`: recipes as data (``recipes/*.json``), two variants (``tuned``, ``control``);
- :mod:`.data`: the rows (Alpaca from the mirror, release instructions left out), their tokens;
- :mod:`.train`: ``transformers.Trainer`` on a recipe, resumable, weights in the cache;
- :mod:`.evaluate`: NLL of held-out responses given their instructions, greedy answers.
"""

from .recipe import DEFAULT_RECIPE, VARIANTS, Recipe, RecipeError, load_recipe
from .train import FineTuned, fine_tune, finished, model_dir

__all__ = ["DEFAULT_RECIPE", "VARIANTS", "FineTuned", "Recipe", "RecipeError", "fine_tune", "finished",
           "load_recipe", "model_dir"]
