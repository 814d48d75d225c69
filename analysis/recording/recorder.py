"""The recorder: one forward pass of the base model per batch, counts into an activation store.

For each instruction it keeps T, the per-neuron counts of tokens with activation > 0 (routed
tokens only, for experts), the router's top-k selection counts (MoE) and optionally
per-neuron activation sums. It never calls ``generate()`` and never computes LM-head logits:
it runs ``model.model`` (the adapter's ``decoder``) under ``torch.inference_mode``.

Batches: within each store shard, instructions are sorted by length (longest first) and
padded; padding is masked out of every count, and positions are given explicitly (so left and
right padding see the same positions). On the tiny test models batch size and padding never
change a count. On a real model a float activation within rounding of zero can change sign with
the batch it was computed in (its padded length, the other rows, the attention kernel), so a few
cells in millions can differ by one between batchings (measured in docs/recording-speed.md). The
batching and the attention implementation are therefore written into the header (``recording``)
and a store resumes only with the same ones; batch size 1 feeds every instruction alone, unpadded,
so its counts depend on nothing but the instruction.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from hexainst.analysis.recording.adapters import adapter_for
from hexainst.analysis.recording.config import INPUT_MODES, RecordingConfig
from hexainst.analysis.recording.loading import (
    check_device,
    check_model_folder,
    load_model,
    model_info,
    tokenizer_sha256,
)
from hexainst.analysis.recording.store import (
    MAX_TOKENS,
    OUTPUT_KIND,
    ActivationStore,
    StoreError,
    StoreWriter,
    check_resumable_recording,
    claim_store_dir,
    make_layout,
    merge_stores,
)
from hexainst.kernel.atomic import swap_in_dir
from hexainst.kernel.disk_space import full_disk_is_one_line
from hexainst.kernel.errors import UserError
from hexainst.kernel.features import decode_rows
from hexainst.kernel.output_lock import writer_lock
from hexainst.kernel.outputs import read_marker, write_marker

log = logging.getLogger(__name__)
_D = RecordingConfig()


@dataclass(frozen=True)
class InputPolicy:
    """How an instruction becomes model input; recorded in the store header.

    ``mode="raw"``: the instruction text with the tokenizer's usual special tokens (default,
    identical for a base model and its fine-tuned version). ``mode="chat"``: one user turn
    through the tokenizer's chat template with the generation prompt, tokenised in one step
    (the template's BOS only; no second one). ``bos_in_T``: whether a leading BOS token counts
    as one of the T tokens (it is always fed to the model).
    """

    mode: str = "raw"
    add_special_tokens: bool = True
    bos_in_T: bool = True

    def __post_init__(self) -> None:
        if self.mode not in INPUT_MODES:
            raise UserError(f"unknown input policy mode {self.mode!r}; expected one of {', '.join(INPUT_MODES)}")

    @classmethod
    def coerce(cls, value: InputPolicy | Mapping[str, Any] | str | None) -> InputPolicy:
        if value is None:
            return cls()
        if isinstance(value, InputPolicy):
            return value
        if isinstance(value, str):
            return cls(mode=value)
        unknown = set(value) - {"mode", "add_special_tokens", "bos_in_T"}
        if unknown:
            raise UserError(f"unknown input policy keys: {', '.join(sorted(unknown))}")
        return cls(**value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def tokenize(tokenizer: Any, text: str, policy: InputPolicy) -> tuple[list[int], int]:
    """Token ids of one instruction and how many leading tokens to leave out of T (0 or 1)."""
    if policy.mode == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise UserError("input policy 'chat' needs a tokenizer with a chat template; this one has none")
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
        )
        if isinstance(ids, Mapping) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        ids = list(ids)
    else:
        ids = list(tokenizer(text, add_special_tokens=policy.add_special_tokens)["input_ids"])
    skip = 0
    bos = getattr(tokenizer, "bos_token_id", None)
    if not policy.bos_in_T and bos is not None and ids and ids[0] == bos:
        skip = 1
    return ids, skip


def _decode_rows(rows: Any) -> list[dict[str, Any]]:
    """Rows as dicts with string category/source; each must have an id, a category and an instruction."""
    out = decode_rows(rows)
    for i, row in enumerate(out):
        missing = [k for k in ("id", "category", "instruction") if k not in row]
        if missing:
            raise UserError(f"row {i} ({row.get('id', '?')}) lacks {', '.join(missing)}")
    return out


def _batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Local row indices grouped into batches, longest first (ties in row order)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _pad(batch_ids: list[list[int]], skips: list[int], pad_id: int, side: str):
    """input_ids, attention_mask, position_ids (B, S) int64 and valid (B, S) bool (counted tokens)."""
    import torch  # deferred: torch (~1 s); analyze imports this module (via causal) and needs torch only with a model

    length = max(len(ids) for ids in batch_ids)
    b = len(batch_ids)
    input_ids = torch.full((b, length), pad_id, dtype=torch.long)
    attention = torch.zeros((b, length), dtype=torch.long)
    positions = torch.zeros((b, length), dtype=torch.long)
    valid = torch.zeros((b, length), dtype=torch.bool)
    for r, (ids, skip) in enumerate(zip(batch_ids, skips)):
        n = len(ids)
        start = 0 if side == "right" else length - n
        input_ids[r, start:start + n] = torch.tensor(ids, dtype=torch.long)
        attention[r, start:start + n] = 1
        positions[r, start:start + n] = torch.arange(n)
        valid[r, start + skip:start + n] = True
    return input_ids, attention, positions, valid


def _input_device(decoder: Any, fallback: str) -> Any:
    import torch  # deferred: torch (~1 s); analyze imports this module (via causal) and needs torch only with a model

    try:
        return decoder.get_input_embeddings().weight.device
    except AttributeError:  # pragma: no cover
        return torch.device(fallback)


def run_batch(decoder: Any, hooks: Any, batch_ids: list[list[int]], skips: list[int], pad_id: int,
              padding_side: str, device: Any) -> tuple[dict[str, Any] | None, Any]:
    """One padded forward pass of ``decoder``; with ``hooks`` (a CountingHooks) also its counts.

    Returns ``(hooks.collect() or None, valid)`` with ``valid`` the (B, S) bool mask of counted tokens.
    """
    import torch  # deferred: torch (~1 s); analyze imports this module (via causal) and needs torch only with a model

    input_ids, attention, positions, valid = _pad(batch_ids, skips, pad_id, padding_side)
    if hooks is not None:
        hooks.start_batch(valid.to(device))
    with torch.inference_mode():
        decoder(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            position_ids=positions.to(device),
            use_cache=False,
        )
    return (hooks.collect() if hooks is not None else None), valid


#: How the recorder forms batches (written into the store header).
BATCH_ORDER = "within each shard, by length, longest first (ties in row order)"


def recording_settings(model: Any, batch_size: int, padding_side: str, device: Any,
                       device_map: Any = None) -> dict[str, Any]:
    """The ``recording`` block of a store header: what, besides the model and inputs, can move a count.

    Counts are integers, but the activations they count are floats: a value within rounding of 0
    can change sign with the batch it was computed in (padding length, batch rows), the attention
    kernel and the device's arithmetic. See docs/recording-speed.md for the measured size of that
    effect. A store resumes only with the same settings, so that its header says how every shard
    was recorded.
    """
    config = getattr(model, "config", None)
    if device_map is None and getattr(model, "hf_device_map", None):
        device_map = "custom"
    return {
        "attn_implementation": str(getattr(config, "_attn_implementation", None) or "unknown"),
        "batch_size": int(batch_size),
        "padding_side": padding_side,
        "batch_order": BATCH_ORDER,
        "device_type": str(getattr(device, "type", device)).split(":")[0],
        "device_map": device_map if isinstance(device_map, (str, type(None))) else "custom",
    }


def _message(text: str, level: int = logging.INFO) -> None:
    """A note on the ``hexainst`` logger (the command line shows it unless ``-q``). Each one is logged before
    the recording's progress bar starts, so none is written across the bar."""
    log.log(level, text)


@dataclass(frozen=True)
class RecordingResult:
    """What a recording leaves: the store (opened, every shard checked) and how many instructions this run recorded
    (the rest were already there)."""

    store: ActivationStore
    recorded_now: int


def run(config: RecordingConfig, rows: Iterable[Mapping[str, Any]]) -> RecordingResult:
    """Record SPARCOM statistics for ``rows`` into the store folder ``config.out`` and open it.

    ``config.model``: a loaded causal LM (then ``config.tokenizer``) or a Hub id / local folder /
    ``.gguf`` file (see :func:`hexainst.analysis.recording.loading.load_model`). ``rows``: dicts with
    ``id``, ``category``, ``source`` and ``instruction`` (a ``datasets.Dataset`` from
    ``hexainst.load()`` works: ClassLabel ints are decoded).

    ``config.out`` is checked before any work: a new or empty folder, or an activation store. A
    store with the same model, tokenizer, policy, recording settings and rows is resumed: shards on
    disk that match their checksum are kept, missing or corrupt ones recorded (again). With
    ``overwrite`` an existing store is replaced, but only once the new one is complete (it is
    recorded beside it, in ``.<name>.overwrite``, which a killed run resumes). ``config.inputs``:
    files the rows came from, which ``out`` must not be or hold. ``random_init``: record the
    untrained baseline, the same architecture and tokenizer with weights initialised from the
    config under this seed (see :func:`~hexainst.analysis.recording.loading.load_model`).
    """
    from hexainst.analysis.recording.hooks import CountingHooks  # deferred: hooks loads torch at import

    if config.out is None:
        raise UserError("a recording needs its store folder (out)")
    policy = InputPolicy(mode=config.input_policy, add_special_tokens=config.special_tokens,
                         bos_in_T=config.bos_in_t)
    rows = _decode_rows(rows)
    if not rows:
        raise UserError("no rows to record")
    model_path = config.model if isinstance(config.model, (str, Path)) else None
    local_model = [model_path] if model_path is not None and Path(model_path).exists() else []
    target = claim_store_dir(config.out, inputs=[*config.inputs, *local_model])
    with writer_lock(target, what="activation store"), full_disk_is_one_line(
            target, "activation store", "the shards written so far are kept: free space, then rerun the same "
            "command to resume"):  # one writer at a time; a full disk is one line
        write_dir = target
        if config.overwrite and target.is_dir() and any(target.iterdir()):
            write_dir = _overwrite_dir(target)
        elif not config.overwrite:  # a resume with other batch settings: refused before the model loads
            check_resumable_recording(target, {"batch_size": int(config.batch_size),
                                               "padding_side": config.padding_side})
        model, tokenizer, info = _load(config)
        model.eval()
        adapter = adapter_for(model)
        decoder = adapter.decoder_module(model)
        in_device = _input_device(decoder, config.device)
        tokenized = _tokenize_rows(rows, tokenizer, policy)
        _check_lengths(rows, tokenized, model)
        with CountingHooks(model, adapter, with_sums=config.with_sums) as hooks:
            layout = make_layout(
                hooks.layout["blocks"], n_layers=hooks.layout["n_layers"], n_experts=hooks.layout["n_experts"],
                top_k=hooks.layout["top_k"], rows_per_shard=config.rows_per_shard, with_sums=config.with_sums,
            )
            writer_args = dict(
                instructions=[{"id": r["id"], "category": r["category"], "source": r.get("source"),
                               "instruction": str(r["instruction"])} for r in rows],
                layout=layout,
                model=info,
                tokenizer={"name_or_path": getattr(tokenizer, "name_or_path", None), "sha256": tokenizer_sha256(tokenizer),
                           "class": type(tokenizer).__name__},
                input_policy=policy.as_dict(),
                recording=recording_settings(model, config.batch_size, config.padding_side, in_device,
                                             config.device_map),
                created_by=dict(config.created_by or {}, device=str(in_device)),
            )
            if write_dir != target:
                writer = _overwrite_writer(write_dir, writer_args)
            else:
                writer = StoreWriter(write_dir, **writer_args)
            total = _record_pending(writer, layout, tokenized, decoder, hooks, _pad_id(tokenizer), in_device, config)
        writer.finish()  # every shard there and matching its checksum
        if write_dir != target:
            swap_in_dir(write_dir, target)
        store = ActivationStore.open(target)
        store.recorded_now = total
        return RecordingResult(store=store, recorded_now=total)


def _load(config: RecordingConfig) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, what the header records about the model) from ``config.model``: loaded here from a
    name or path, or the model object given (with ``config.tokenizer``)."""
    name = config.model
    if isinstance(name, (str, Path)):
        if config.device_map is None:
            check_device(config.device)
        if config.gguf_file is None and not str(name).endswith(".gguf"):
            _check_architecture(str(name), config.revision)
        loaded = load_model(str(name), gguf_file=config.gguf_file, dtype=config.dtype, device=config.device,
                            device_map=config.device_map, revision=config.revision, convert=config.convert_gguf,
                            progress=config.progress, random_init=config.random_init)
        return loaded.model, loaded.tokenizer, loaded.info
    if config.random_init is not None:
        raise UserError("random_init needs a model path or Hub id (its config is read), not a model object")
    if config.tokenizer is None:
        raise UserError("record() with a model object needs tokenizer=")
    return name, config.tokenizer, model_info(name, revision=config.revision)


def _tokenize_rows(rows: Sequence[Mapping[str, Any]], tokenizer: Any, policy: InputPolicy) -> list[tuple[list[int], int]]:
    """Every row's (token ids, leading tokens left out of T), before any forward pass: T is known before the
    forward, and length sorting needs it."""
    tokenized = []
    for row in rows:
        ids, skip = tokenize(tokenizer, str(row["instruction"]), policy)
        if len(ids) - skip <= 0:
            raise UserError(f"instruction {row['id']} has no tokens to count under input policy {policy.as_dict()}")
        tokenized.append((ids, skip))
    return tokenized


def _pad_id(tokenizer: Any) -> int:
    """The padding token: the tokenizer's, else its EOS, else 0 (padding is masked out of every count)."""
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0


def _record_pending(writer: StoreWriter, layout: dict[str, Any], tokenized: Sequence[tuple[list[int], int]], decoder: Any, hooks: Any,
                    pad_id: int, in_device: Any, config: RecordingConfig) -> int:
    """Record and write every shard the store still lacks (missing or failing its checksum); return how many
    instructions that was."""
    pending = writer.pending_shards()
    for shard in writer.corrupt:
        _message(f"{writer.path}: {writer.shard_name(shard)} does not match its checksum; recording it again",
                 logging.WARNING)
    if pending and len(pending) < len(writer.ranges):
        _message(f"{writer.path}: resuming, {len(writer.ranges) - len(pending)} of {len(writer.ranges)} shards "
                 "already recorded")
    total = sum(writer.ranges[s][1] - writer.ranges[s][0] for s in pending)
    bar = tqdm(total=total, desc="recording", unit="instr", disable=not config.progress)
    try:
        for shard in pending:
            start, stop = writer.ranges[shard]
            _record_shard(writer, layout, shard, tokenized[start:stop], decoder, hooks, pad_id, in_device, config, bar)
    finally:
        bar.close()
    return total


def _record_shard(writer: StoreWriter, layout: dict[str, Any], shard: int, local: Sequence[tuple[list[int], int]], decoder: Any, hooks: Any,
                  pad_id: int, in_device: Any, config: RecordingConfig, bar: Any) -> None:
    """One shard: its instructions in batches (longest first), their counts gathered in row order and written."""
    with_sums, batch_size, padding_side = config.with_sums, config.batch_size, config.padding_side
    n_cols = layout["n_cols"]
    n_tokens = np.array([len(ids) - skip for ids, skip in local], dtype=np.int64)
    counts_parts: dict[int, Any] = {}
    routing = np.zeros((len(local), layout["n_layers"], layout["n_experts"]), dtype=np.int32) \
        if layout["is_moe"] else None
    sums = np.zeros((len(local), n_cols), dtype=np.float32) if with_sums and not layout["is_moe"] else None
    sums_parts: dict[int, Any] = {}
    for batch in _batches([len(ids) for ids, _ in local], batch_size):
        result, valid = run_batch(decoder, hooks, [local[i][0] for i in batch],
                                  [local[i][1] for i in batch], pad_id, padding_side, in_device)
        got_t = valid.sum(dim=1).numpy()
        if not np.array_equal(got_t, n_tokens[batch]):  # pragma: no cover - internal invariant
            raise StoreError("internal error: token mask and T disagree")
        for r, i in enumerate(batch):
            row_counts = result["counts"][r]
            if layout["is_moe"]:
                counts_parts[i] = sp.csr_matrix(row_counts.reshape(1, -1))
                routing[i] = result["routing"][r]
                if with_sums:
                    sums_parts[i] = sp.csr_matrix(result["sums"][r].reshape(1, -1))
            else:
                counts_parts[i] = row_counts
                if with_sums:
                    sums[i] = result["sums"][r]
        bar.update(len(batch))
    order = range(len(local))
    if layout["is_moe"]:
        counts = sp.vstack([counts_parts[i] for i in order], format="csr")
        if with_sums:
            sums = sp.vstack([sums_parts[i] for i in order], format="csr")
    else:
        counts = np.stack([counts_parts[i] for i in order])
    writer.write_shard(shard, n_tokens=n_tokens, counts=counts, routing=routing, sums=sums)


def record(
    model_or_path: Any,
    rows: Iterable[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    batch_size: int = _D.batch_size,
    dtype: str = _D.dtype,
    input_policy: InputPolicy | Mapping[str, Any] | str | None = None,
    device: str = _D.device,
    device_map: str | dict | None = _D.device_map,
    gguf_file: str | None = None,
    convert_gguf: bool = _D.convert_gguf,
    tokenizer: Any = None,
    revision: str | None = None,
    with_sums: bool = _D.with_sums,
    progress: bool = True,
    rows_per_shard: int = _D.rows_per_shard,
    padding_side: str = _D.padding_side,
    overwrite: bool = False,
    created_by: Mapping[str, Any] | None = None,
    inputs: Iterable[str | Path | None] = (),
    random_init: int | None = None,
) -> ActivationStore:
    """:func:`run` with its config given as keywords (the tests' and notebooks' call); returns the store, whose
    ``recorded_now`` says how many instructions this call recorded."""
    policy = InputPolicy.coerce(input_policy)
    config = RecordingConfig(
        batch_size=batch_size, dtype=dtype, device=device, device_map=device_map, rows_per_shard=rows_per_shard,
        padding_side=padding_side, with_sums=with_sums, convert_gguf=convert_gguf, input_policy=policy.mode,
        special_tokens=policy.add_special_tokens, bos_in_t=policy.bos_in_T, gguf_file=gguf_file, revision=revision,
        random_init=random_init, overwrite=overwrite, progress=progress, model=model_or_path, out=Path(out_dir),
        tokenizer=tokenizer, inputs=tuple(inputs), created_by=created_by,
    )
    return run(config, rows).store


def _check_architecture(name_or_path: str, revision: str | None) -> None:
    """Before the weights load: a model without a recording adapter (a BERT folder) is one line, not a load
    report of missing and unexpected keys followed by that line. A config that cannot be read is left to
    the loader, which names the problem."""
    from transformers import AutoConfig  # deferred: transformers loads in seconds

    check_model_folder(name_or_path)  # one line for a folder that is no model, or a Hub id with no Hub to reach
    kwargs = {"revision": revision} if revision is not None and not Path(name_or_path).exists() else {}
    try:
        config = AutoConfig.from_pretrained(name_or_path, **kwargs)
    except Exception:  # noqa: BLE001 - load_model reports a missing or broken model in its own words
        return
    adapter_for(config)


def _check_lengths(rows: Sequence[Mapping[str, Any]], tokenized: Sequence[tuple[list[int], int]], model: Any) -> None:
    """Before any forward pass: every instruction must fit the model's positions and a uint16 count.

    The spec counts every real token of the input (T), so an instruction is never truncated; one
    longer than the model takes (a 1 MB text asked for 40 GB of attention) is one line naming it.
    """
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    limit = MAX_TOKENS - 1
    why = f"counts are uint16, so T must stay below {MAX_TOKENS:,}"
    if isinstance(positions, int) and 0 < positions < limit:
        limit, why = positions, f"the model takes at most {positions:,} (its max_position_embeddings)"
    longest = max(range(len(rows)), key=lambda i: len(tokenized[i][0]))
    n = len(tokenized[longest][0])
    if n > limit:
        over = sum(1 for ids, _ in tokenized if len(ids) > limit)
        more = f" ({over} instructions are over)" if over > 1 else ""
        raise UserError(f"instruction {rows[longest]['id']} has {n:,} tokens; {why}: shorten it or leave it out of "
                        f"the rows to record{more} (the spec counts every token: nothing is truncated)")


def _overwrite_dir(target: Path) -> Path:
    """Where ``overwrite`` records before swapping in: ``.<name>.overwrite`` beside the store."""
    return target.with_name(f".{target.name}.overwrite")


def _overwrite_writer(write_dir: Path, writer_args: dict[str, Any]) -> StoreWriter:
    """A writer in the overwrite folder: resumes a killed overwrite of the same recording, else starts afresh."""
    if write_dir.exists():
        if read_marker(write_dir) is None and any(write_dir.iterdir()):
            raise StoreError(f"{write_dir} exists and was not written by hexainst; move it away to overwrite "
                             f"{write_dir.name[1:-len('.overwrite')]}")
        try:
            return StoreWriter(write_dir, **writer_args)
        except StoreError:
            shutil.rmtree(write_dir)  # our own leftover of another recording
    return StoreWriter(write_dir, **writer_args)


def run_data_parallel(config: RecordingConfig, rows: Sequence[Mapping[str, Any]]) -> RecordingResult | None:
    """:func:`run` with one process per device (launch with ``accelerate launch``), then merged.

    Rows are split between processes by ``accelerate``'s ``PartialState.split_between_processes``
    (``device="cpu"``: gloo processes on the CPU; otherwise each process takes its own device)
    (contiguous, in order); each process records its part under ``out/parts/rank-NNNNN``;
    the main process merges the parts into ``out`` and returns the result (others return None).
    """
    from accelerate import PartialState  # deferred: accelerate loads torch

    if config.out is None:
        raise UserError("a recording needs its store folder (out)")
    on_cpu = str(config.device).startswith("cpu")
    state = PartialState(cpu=on_cpu)
    out = claim_store_dir(config.out, inputs=config.inputs)  # every process checks: all stop alike
    state.wait_for_everyone()
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out, OUTPUT_KIND, complete=False)  # the parts go inside: a rerun finds its own folder
    state.wait_for_everyone()
    device = str(state.device) if not on_cpu and config.device_map is None else config.device  # one per process
    rows = _decode_rows(rows)
    out_dir = config.out
    with state.split_between_processes(rows) as part:
        part_dir = out_dir / "parts" / f"rank-{state.process_index:05d}"
        if part:
            run(dataclasses.replace(config, out=part_dir, inputs=(), device=device,
                                    progress=config.progress and state.is_local_main_process), part)
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    parts = sorted(p for p in (out_dir / "parts").iterdir() if (p / "header.json").is_file())
    store = merge_stores(parts, out_dir)
    return RecordingResult(store=store, recorded_now=len(store))
