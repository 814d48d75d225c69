"""Fine-tune a model into a base/fine-tuned pair for the alteration analysis (issue #16).

Public API: :func:`run` (config in, result out: what ``hexainst finetune run`` calls).

- :mod:`.config`: the settings of ``hexainst finetune`` (:class:`FinetuneConfig`);
- :mod:`.recipe`: recipes as data (``recipes/*.json``), three arms (``tuned``, ``control``,
  ``shuffled``), a run = (arm, seed);
- :mod:`.data`: the rows (Alpaca from the mirror, release instructions left out), their tokens;
- :mod:`.train`: ``transformers.Trainer`` on a recipe, resumable, weights in the cache;
- :mod:`.evaluate`: NLL of held-out responses given their instructions, greedy answers;
- :mod:`.design`, :mod:`.design_report`, :mod:`.design_claims`: the multi-seed design of issue #22
  (instruction-following gain, ISN changes and their overlap between arms, intervals over runs and
  rows, a report that refuses p-values it cannot carry, the claims table with computed verdicts);
- :mod:`.report`: the earlier single-run report.
"""

from hexainst.kernel.settings import SettingError

from .config import FinetuneConfig
from .recipe import DEFAULT_RECIPE, VARIANTS, Recipe, RecipeError, load_recipe
from .train import FineTuned, fine_tune, finished, model_dir

__all__ = ["DEFAULT_RECIPE", "VARIANTS", "FineTuned", "FinetuneConfig", "Recipe", "RecipeError", "fine_tune", "finished",
           "load_recipe", "model_dir", "run"]


def run(config: FinetuneConfig) -> FineTuned:
    """Fine-tune ``config.variant`` of the config's recipe (its ``seed`` and ``steps`` applied): config in,
    result out, what ``hexainst finetune run`` calls. A finished run is returned as it is (``reused``).
    :func:`fine_tune` is the same with a :class:`Recipe` object and an optional split (tests, other recipes)."""
    if config.variant is None:
        raise SettingError("variant", "must name the arm to fine-tune (" + ", ".join(VARIANTS) + ")")
    return fine_tune(config.load_recipe(), config.variant, sources=config.sources, release=config.release,
                     root=config.root, progress=config.progress)
