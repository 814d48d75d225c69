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

import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from hexainst.kernel.disk_space import full_disk_is_one_line
from hexainst.kernel.output_lock import writer_lock
from hexainst.analysis.recording.config import INPUT_MODES, RecordingConfig
from hexainst.analysis.recording.store import (
    MAX_TOKENS,
    ActivationStore,
    StoreError,
    StoreWriter,
    OUTPUT_KIND,
    claim_store_dir,
    make_layout,
)
from hexainst.kernel.atomic import swap_in_dir
from hexainst.kernel.errors import UserError
from hexainst.kernel.features import decode_rows

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
    def coerce(cls, value: "InputPolicy | Mapping[str, Any] | str | None") -> "InputPolicy":
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
    import torch

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
    import torch

    try:
        return decoder.get_input_embeddings().weight.device
    except AttributeError:  # pragma: no cover
        return torch.device(fallback)


def run_batch(decoder: Any, hooks: Any, batch_ids: list[list[int]], skips: list[int], pad_id: int,
              padding_side: str, device: Any) -> tuple[dict[str, Any] | None, Any]:
    """One padded forward pass of ``decoder``; with ``hooks`` (a CountingHooks) also its counts.

    Returns ``(hooks.collect() or None, valid)`` with ``valid`` the (B, S) bool mask of counted tokens.
    """
    import torch

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


def _message(text: str, progress: bool) -> None:
    if progress:
        from tqdm.auto import tqdm

        tqdm.write(text, file=sys.stderr)


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
    """Record SPARCOM statistics for ``rows`` into the store folder ``out_dir`` and open it.

    ``model_or_path``: a loaded causal LM (then pass ``tokenizer``) or a Hub id / local folder /
    ``.gguf`` file (see :func:`hexainst.analysis.recording.loading.load_model`). ``rows``: dicts with
    ``id``, ``category``, ``source`` and ``instruction`` (a ``datasets.Dataset`` from
    ``hexainst.load()`` works: ClassLabel ints are decoded).

    ``out_dir`` is checked before any work: a new or empty folder, or an activation store. A store
    with the same model, tokenizer, policy, recording settings and rows is resumed: shards on disk
    that match their checksum are kept, missing or corrupt ones recorded (again). With
    ``overwrite`` an existing store is replaced, but only once the new one is complete (it is
    recorded beside it, in ``.<name>.overwrite``, which a killed run resumes). ``inputs``: files
    the rows came from, which ``out_dir`` must not be or hold. The returned store's
    ``recorded_now`` says how many instructions this call recorded. ``random_init``: record the
    untrained baseline, the same architecture and tokenizer with weights initialised from the
    config under this seed (see :func:`~hexainst.analysis.recording.loading.load_model`).
    """
    import torch
    from tqdm.auto import tqdm

    from hexainst.analysis.recording.adapters import adapter_for
    from hexainst.analysis.recording.hooks import CountingHooks
    from hexainst.analysis.recording.loading import check_device, load_model, model_info, tokenizer_sha256

    RecordingConfig(batch_size=batch_size, dtype=dtype, device=device,
                    device_map=device_map if isinstance(device_map, (str, type(None))) else "custom",
                    rows_per_shard=rows_per_shard, padding_side=padding_side, with_sums=with_sums,
                    convert_gguf=convert_gguf)  # range checks, before any work
    policy = InputPolicy.coerce(input_policy)
    rows = _decode_rows(rows)
    if not rows:
        raise UserError("no rows to record")
    local_model = [model_or_path] if isinstance(model_or_path, (str, Path)) and Path(model_or_path).exists() else []
    target = claim_store_dir(out_dir, inputs=[*inputs, *local_model])
    with writer_lock(target, what="activation store"), full_disk_is_one_line(
            target, "activation store", "the shards written so far are kept: free space, then rerun the same "
            "command to resume"):  # one writer at a time; a full disk is one line
        write_dir = target
        if overwrite and target.is_dir() and any(target.iterdir()):
            write_dir = _overwrite_dir(target)

        if isinstance(model_or_path, (str, Path)):
            if device_map is None:
                check_device(device)
            if gguf_file is None and not str(model_or_path).endswith(".gguf"):
                _check_architecture(str(model_or_path), revision)
            loaded = load_model(str(model_or_path), gguf_file=gguf_file, dtype=dtype, device=device,
                                device_map=device_map, revision=revision, convert=convert_gguf, progress=progress,
                                random_init=random_init)
            model, tokenizer, info = loaded.model, loaded.tokenizer, loaded.info
        else:
            if random_init is not None:
                raise UserError("random_init needs a model path or Hub id (its config is read), not a model object")
            model = model_or_path
            if tokenizer is None:
                raise UserError("record() with a model object needs tokenizer=")
            info = model_info(model, revision=revision)
        model.eval()
        adapter = adapter_for(model)
        decoder = adapter.decoder_module(model)
        in_device = _input_device(decoder, device)

        # Tokenise everything first: T is known before the forward, and length sorting needs it.
        tokenized = []
        for row in rows:
            ids, skip = tokenize(tokenizer, str(row["instruction"]), policy)
            if len(ids) - skip <= 0:
                raise UserError(f"instruction {row['id']} has no tokens to count under input policy {policy.as_dict()}")
            tokenized.append((ids, skip))
        _check_lengths(rows, tokenized, model)
        pad_id = tokenizer.pad_token_id
        if pad_id is None:
            pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0

        with CountingHooks(model, adapter, with_sums=with_sums) as hooks:
            layout = make_layout(
                hooks.layout["blocks"], n_layers=hooks.layout["n_layers"], n_experts=hooks.layout["n_experts"],
                top_k=hooks.layout["top_k"], rows_per_shard=rows_per_shard, with_sums=with_sums,
            )
            writer_args = dict(
                instructions=[{"id": r["id"], "category": r["category"], "source": r.get("source"),
                               "instruction": str(r["instruction"])} for r in rows],
                layout=layout,
                model=info,
                tokenizer={"name_or_path": getattr(tokenizer, "name_or_path", None), "sha256": tokenizer_sha256(tokenizer),
                           "class": type(tokenizer).__name__},
                input_policy=policy.as_dict(),
                recording=recording_settings(model, batch_size, padding_side, in_device, device_map),
                created_by=dict(created_by or {}, device=str(in_device)),
            )
            if write_dir != target:
                writer = _overwrite_writer(write_dir, writer_args)
            else:
                writer = StoreWriter(write_dir, **writer_args)
            pending = writer.pending_shards()
            for shard in writer.corrupt:
                _message(f"{writer.path}: {writer.shard_name(shard)} does not match its checksum; recording it again",
                         progress)
            if pending and len(pending) < len(writer.ranges):
                _message(f"{writer.path}: resuming, {len(writer.ranges) - len(pending)} of {len(writer.ranges)} shards "
                         "already recorded", progress)
            total = sum(writer.ranges[s][1] - writer.ranges[s][0] for s in pending)
            bar = tqdm(total=total, desc="recording", unit="instr", disable=not progress)
            n_cols = layout["n_cols"]
            try:
                for shard in pending:
                    start, stop = writer.ranges[shard]
                    local = tokenized[start:stop]
                    n_tokens = np.array([len(ids) - skip for ids, skip in local], dtype=np.int64)
                    counts_parts: dict[int, Any] = {}
                    routing = np.zeros((stop - start, layout["n_layers"], layout["n_experts"]), dtype=np.int32) \
                        if layout["is_moe"] else None
                    sums = np.zeros((stop - start, n_cols), dtype=np.float32) if with_sums and not layout["is_moe"] else None
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
                    order = range(stop - start)
                    if layout["is_moe"]:
                        counts = sp.vstack([counts_parts[i] for i in order], format="csr")
                        if with_sums:
                            sums = sp.vstack([sums_parts[i] for i in order], format="csr")
                    else:
                        counts = np.stack([counts_parts[i] for i in order])
                    writer.write_shard(shard, n_tokens=n_tokens, counts=counts, routing=routing, sums=sums)
            finally:
                bar.close()
        writer.finish()  # every shard there and matching its checksum
        if write_dir != target:
            swap_in_dir(write_dir, target)
        store = ActivationStore.open(target)
        store.recorded_now = total
        return store


def _check_architecture(name_or_path: str, revision: str | None) -> None:
    """Before the weights load: a model without a recording adapter (a BERT folder) is one line, not a load
    report of missing and unexpected keys followed by that line. A config that cannot be read is left to
    the loader, which names the problem."""
    from transformers import AutoConfig

    from hexainst.analysis.recording.adapters import adapter_for

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
    from hexainst.kernel.outputs import read_marker

    if write_dir.exists():
        if read_marker(write_dir) is None and any(write_dir.iterdir()):
            raise StoreError(f"{write_dir} exists and was not written by hexainst; move it away to overwrite "
                             f"{write_dir.name[1:-len('.overwrite')]}")
        try:
            return StoreWriter(write_dir, **writer_args)
        except StoreError:
            shutil.rmtree(write_dir)  # our own leftover of another recording
    return StoreWriter(write_dir, **writer_args)


def record_data_parallel(
    model_or_path: Any,
    rows: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    **kwargs: Any,
) -> ActivationStore | None:
    """Record with one process per device (launch with ``accelerate launch``), then merge.

    Rows are split between processes by ``accelerate``'s ``PartialState.split_between_processes``
    (``device="cpu"``: gloo processes on the CPU; otherwise each process takes its own device)
    (contiguous, in order); each process records its part under ``out_dir/parts/rank-NNNNN``;
    the main process merges the parts into ``out_dir`` and returns the store (others return None).
    """
    from accelerate import PartialState

    from hexainst.analysis.recording.store import merge_stores

    from hexainst.kernel.outputs import write_marker

    kwargs = dict(kwargs)
    on_cpu = str(kwargs.get("device", "cpu")).startswith("cpu")
    state = PartialState(cpu=on_cpu)
    out = claim_store_dir(out_dir, inputs=kwargs.pop("inputs", ()))  # every process checks: all stop alike
    state.wait_for_everyone()
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out, OUTPUT_KIND, complete=False)  # the parts go inside: a rerun finds its own folder
    state.wait_for_everyone()
    if not on_cpu and kwargs.get("device_map") is None:
        kwargs["device"] = str(state.device)  # one device per process
    rows = _decode_rows(rows)
    out_dir = Path(out_dir)
    kwargs["progress"] = kwargs.get("progress", True) and state.is_local_main_process
    with state.split_between_processes(rows) as part:
        part_dir = out_dir / "parts" / f"rank-{state.process_index:05d}"
        if part:
            record(model_or_path, part, part_dir, **kwargs)
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    parts = sorted(p for p in (out_dir / "parts").iterdir() if (p / "header.json").is_file())
    return merge_stores(parts, out_dir)

