"""Run a recipe with ``transformers.Trainer``: resumable, seeded, float32, weights in the cache.

Layout under ``root`` (default ``<cache>/finetuned``, the cache being ``$HEXAINST_CACHE`` or
``~/.cache/hexainst``)::

    <recipe>/<variant>-<recipe fp>-<rows fp>/        the fine-tuned model (save_pretrained) + tokenizer
        hexainst-finetune.json                       manifest: recipe, variant, base model, rows, losses, time
    <recipe>/.work-<variant>-<recipe fp>-<rows fp>/  Trainer checkpoints while it runs (removed at the end)

``recipe fp`` is :meth:`Recipe.fingerprint` (what decides the weights), ``rows fp`` is
:attr:`Split.fingerprint` (the training and held-out rows, which depend on the mirror and on the
release whose instructions are left out). A folder with a manifest is finished: :func:`fine_tune`
returns it without training again; a changed recipe, mirror or release is a new folder. A killed
run resumes from its last checkpoint (``save_steps``). The model folder appears in one rename, so
a half-written model is never mistaken for a finished one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexainst.analysis.recording.loading import load_model, resolve_model
from hexainst.kernel import environment
from hexainst.kernel.atomic import staged_dir, write_text
from hexainst.kernel.jsonfiles import dumps_stable, read_json

from .data import Split, encode_rows, load_split, training_rows
from .recipe import Recipe, check_variant

MANIFEST = "hexainst-finetune.json"
FORMAT = "hexainst-finetune"


@dataclass(frozen=True)
class FineTuned:
    """A finished fine-tune: its folder (loadable with ``from_pretrained``) and manifest."""

    path: Path
    manifest: dict[str, Any]
    #: True when an earlier finished run was returned instead of training.
    reused: bool = False


def default_root() -> Path:
    return environment.cache_dir() / "finetuned"


def model_dir(recipe: Recipe, variant: str, split: Split, root: str | os.PathLike[str] | None = None) -> Path:
    root = Path(root) if root is not None else default_root()
    return root / recipe.name / f"{variant}-{recipe.fingerprint(variant)}-{split.fingerprint}"


def finished(recipe: Recipe, variant: str, split: Split, root: str | os.PathLike[str] | None = None) -> FineTuned | None:
    """The finished fine-tune of ``recipe``/``variant`` on ``split``'s rows under ``root``, or None."""
    path = model_dir(recipe, variant, split, root)
    manifest = path / MANIFEST
    if not manifest.is_file():
        return None
    doc = read_json(manifest, what="fine-tune manifest")
    if doc.get("fingerprint") != recipe.fingerprint(variant) or doc.get("rows_fingerprint") != split.fingerprint:
        return None  # pragma: no cover - the folder name holds both
    return FineTuned(path=path, manifest=doc)


def _freeze(model: Any, patterns: list[str]) -> dict[str, int]:
    frozen = trainable = 0
    seen: set[int] = set()
    for name, param in model.named_parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        if any(p in name for p in patterns):
            param.requires_grad_(False)
            frozen += param.numel()
        else:
            trainable += param.numel()
    return {"trainable": trainable, "frozen": frozen}


class _Collate:
    """Pads ``input_ids``/``labels`` with transformers' seq2seq collator after dropping ``length``."""

    def __init__(self, tokenizer: Any) -> None:
        from transformers import DataCollatorForSeq2Seq  # deferred: transformers is heavy; `--help` must not load it

        self.inner = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100, return_tensors="pt")

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        return self.inner([{k: v for k, v in f.items() if k != "length"} for f in features])


def _last_checkpoint(work: Path) -> str | None:
    """The latest checkpoint the Trainer finished writing, or None.

    A run killed while it saves leaves a ``checkpoint-N`` folder without its weights or with a cut
    ``trainer_state.json`` (the Trainer writes that file last); ``transformers``' own
    ``get_last_checkpoint`` would pick it and the resume would fail. Such a folder is skipped.
    """
    if not work.is_dir():
        return None
    complete = []
    for folder in work.glob("checkpoint-*"):
        step = folder.name.removeprefix("checkpoint-")
        if not (folder.is_dir() and step.isdigit()):
            continue
        if not any((folder / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")):
            continue
        try:
            json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        complete.append((int(step), folder))
    return str(max(complete)[1]) if complete else None


def fine_tune(
    recipe: Recipe,
    variant: str,
    *,
    sources: str | os.PathLike[str] | None = None,
    release: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    split: Split | None = None,
    progress: bool = True,
) -> FineTuned:
    """Fine-tune ``recipe.model`` as ``variant`` (``tuned``, ``control`` or ``shuffled``); reuse a finished one.

    ``split`` overrides the recipe's rows (tests pass made-up rows); otherwise they are read from
    the mirror with the release excluded (:func:`~hexainst.analysis.finetune.data.load_split`).
    """
    check_variant(variant)
    split = split if split is not None else load_split(recipe, sources, release)
    done = finished(recipe, variant, split, root)
    if done is not None:
        return FineTuned(path=done.path, manifest=done.manifest, reused=True)

    import torch  # deferred: torch is heavy; `hexainst --help` must not load it
    import transformers  # deferred: transformers is heavy; `hexainst --help` must not load it
    from datasets import Dataset  # deferred: datasets is heavy; `hexainst --help` must not load it
    from transformers import Trainer, TrainingArguments  # deferred: transformers is heavy, as above

    t = recipe.training
    torch.set_num_threads(int(t["threads"]))
    loaded = load_model(resolve_model(recipe.model), dtype="float32", progress=progress)
    model, tokenizer = loaded.model, loaded.tokenizer
    examples = encode_rows(recipe, tokenizer, training_rows(recipe, split, variant), variant)
    params = _freeze(model, list(t["freeze"]))
    model.train()

    target = model_dir(recipe, variant, split, root)
    work = target.parent / f".work-{target.name}"
    work.mkdir(parents=True, exist_ok=True)
    args = TrainingArguments(
        output_dir=str(work),
        max_steps=int(t["steps"]),
        per_device_train_batch_size=int(t["batch_size"]),
        gradient_accumulation_steps=int(t["gradient_accumulation"]),
        learning_rate=float(t["learning_rate"]),
        lr_scheduler_type=t["lr_scheduler"],
        warmup_steps=int(t["warmup_steps"]),
        weight_decay=float(t["weight_decay"]),
        max_grad_norm=float(t["max_grad_norm"]),
        optim=t["optimizer"],
        seed=int(t["seed"]),
        data_seed=int(t["seed"]),
        train_sampling_strategy="group_by_length" if t["group_by_length"] else "random",
        length_column_name="length",
        remove_unused_columns=False,
        logging_steps=1,
        include_num_input_tokens_seen="non_padding",
        save_strategy="steps",
        save_steps=int(t["save_steps"]),
        save_total_limit=1,
        report_to="none",
        use_cpu=True,
        bf16=False,
        fp16=False,
        dataloader_num_workers=0,
        disable_tqdm=not progress,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(examples),
                      data_collator=_Collate(tokenizer), processing_class=tokenizer)
    resume = _last_checkpoint(work)
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - started

    losses = [{"step": int(e["step"]), "loss": float(e["loss"])} for e in trainer.state.log_history if "loss" in e]
    tokens_seen = int(getattr(trainer.state, "num_input_tokens_seen", 0) or 0)
    manifest = {
        "format": FORMAT,
        "format_version": 1,
        "recipe": recipe.doc,
        "variant": variant,
        "fingerprint": recipe.fingerprint(variant),
        "rows_fingerprint": split.fingerprint,
        "base_model": loaded.info,
        "rows": split.summary(),
        "examples": len(examples),
        "supervised_tokens_per_epoch": sum(sum(1 for x in e["labels"] if x != -100) for e in examples),
        "parameters": params,
        "train": {
            "steps": int(trainer.state.global_step),
            "seconds_this_run": round(seconds, 1),
            "resumed_from": Path(resume).name if resume else None,
            "train_runtime": float(output.metrics.get("train_runtime", seconds)),
            "input_tokens_seen": tokens_seen,
            "first_loss": losses[0]["loss"] if losses else None,
            "last_loss": losses[-1]["loss"] if losses else None,
            "loss_history": losses,
        },
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "threads": int(t["threads"]),
    }
    model.eval()
    with staged_dir(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_text(tmp / MANIFEST, dumps_stable(manifest))
    shutil.rmtree(work, ignore_errors=True)
    return FineTuned(path=target, manifest=manifest)


def manifest_summary(manifest: dict[str, Any]) -> str:
    tr = manifest["train"]
    return json.dumps({"variant": manifest["variant"], "steps": tr["steps"], "first_loss": tr["first_loss"],
                       "last_loss": tr["last_loss"], "seconds": tr["seconds_this_run"]})


def training_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a report keeps of a finished run's manifest: steps, times, the mean loss of the first and of the
    last 8 logged steps, the loss history, the rows and the fingerprints."""
    import numpy as np  # deferred: this module is on the path of `hexainst --help`, which must not load numpy

    tr = manifest["train"]
    history = tr["loss_history"]
    head = [e["loss"] for e in history[:8]]
    tail = [e["loss"] for e in history[-8:]]
    return {
        "steps": tr["steps"], "seconds": tr["seconds_this_run"], "train_runtime": tr["train_runtime"],
        "resumed_from": tr["resumed_from"], "input_tokens_seen": tr.get("input_tokens_seen"),
        "loss_first8_mean": float(np.mean(head)) if head else None,
        "loss_last8_mean": float(np.mean(tail)) if tail else None,
        "loss_history": history, "examples": manifest["examples"], "rows": manifest["rows"],
        "parameters": manifest["parameters"], "fingerprint": manifest["fingerprint"],
        "rows_fingerprint": manifest["rows_fingerprint"],
        "versions": manifest["versions"], "threads": manifest["threads"],
    }
