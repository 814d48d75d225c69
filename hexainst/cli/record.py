"""``hexainst record``, ``hexainst record-merge`` and ``hexainst record-info``.

Heavy modules load inside the handlers so that ``hexainst --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hexainst.analysis.recording.config import DTYPES, INPUT_MODES, PADDING_SIDES, RecordingConfig
from hexainst.kernel.errors import UserError

_R = RecordingConfig


def _read_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.limit is not None and args.limit <= 0:
        raise UserError(f"--limit must be an integer >= 1, got {args.limit}")
    if args.rows is not None:
        from hexainst.analysis.recording.store import check_category
        from hexainst.kernel.jsonfiles import read_jsonl

        rows = read_jsonl(args.rows, what="rows file")
        for n, row in enumerate(rows, 1):
            missing = [k for k in ("id", "category", "instruction") if k not in row]
            if missing:
                raise UserError(f"{args.rows} line {n}: row {row.get('id', '(no id)')} has no {', '.join(missing)}")
            check_category(row["category"], f"{args.rows} line {n}: row {row['id']}")
    else:
        import hexainst
        from hexainst.kernel.features import decode_rows

        rows = decode_rows(hexainst.load(args.release, category=args.category))
    if args.category and args.rows is not None:
        rows = [row for row in rows if row.get("category") == args.category]
    if args.limit is not None:
        rows = rows[: args.limit]
    if not rows:
        raise UserError("no rows to record (check --release/--rows, --category and --limit)")
    return rows


def _cmd_record(args: argparse.Namespace) -> int:
    from hexainst.analysis.recording.loading import resolve_model
    from hexainst.analysis.recording.recorder import InputPolicy, record, record_data_parallel
    from hexainst.analysis.recording.store import claim_store_dir

    config = RecordingConfig(batch_size=args.batch_size, dtype=args.dtype, device=args.device,
                             device_map=args.device_map, rows_per_shard=args.rows_per_shard,
                             padding_side=args.padding_side, with_sums=args.with_sums,
                             convert_gguf=not args.no_convert_gguf)
    inputs = [args.rows, args.release]
    claim_store_dir(args.out, inputs=inputs)  # before reading the release or loading the model
    rows = _read_rows(args)
    policy = InputPolicy(mode=args.input_policy, add_special_tokens=not args.no_special_tokens,
                         bos_in_T=not args.bos_out_of_t)
    kwargs = dict(
        batch_size=config.batch_size, dtype=config.dtype, input_policy=policy, device=config.device,
        device_map=config.device_map, gguf_file=args.gguf_file, convert_gguf=config.convert_gguf,
        revision=args.revision, with_sums=config.with_sums, rows_per_shard=config.rows_per_shard,
        padding_side=config.padding_side, overwrite=args.overwrite, inputs=inputs,
        created_by={"command": "hexainst record", "argv": sys.argv[1:]},
        random_init=args.random_init,
    )
    model = resolve_model(args.model)
    if args.data_parallel:
        store = record_data_parallel(model, rows, args.out, **kwargs)
        if store is None:
            return 0
    else:
        store = record(model, rows, args.out, **kwargs)
    now = len(store) if store.recorded_now is None else store.recorded_now
    before = f", {len(store) - now} already there" if now < len(store) else ""
    print(f"recorded {now} instructions{before}: {len(store)} instructions x {store.n_cols} neurons"
          f"{f' ({store.n_experts} experts, top-{store.top_k})' if store.is_moe else ''} in {store.path}, "
          "every shard checked")
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from hexainst.analysis.recording.store import claim_merge_dir, merge_stores

    claim_merge_dir(args.parts, args.out)
    store = merge_stores(args.parts, args.out)
    print(f"merged {len(args.parts)} stores: {len(store)} instructions into {store.path}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from hexainst.analysis.recording.store import ActivationStore

    store = ActivationStore.open(args.store)  # verifies every shard against its checksum
    header = store.header
    summary = {
        "path": str(store.path),
        "format_version": header["format_version"],
        "instructions": len(store),
        "neurons": store.n_cols,
        "layers": store.n_layers,
        "experts": store.n_experts,
        "top_k": store.top_k,
        "model": header["model"],
        "tokenizer_sha256": header["tokenizer"].get("sha256"),
        "input_policy": header["input_policy"],
        "recording": header.get("recording"),
        "shards": {"n": len(store.shard_states(verify=False)),
                   "checksums": "all match" if store.has_checksums else "none (format 1)"},
        "made_from": (f"not checked: {store.unchecked}" if store.unchecked else
                      "checked: the weights fingerprint and each row's text hash are in the header, and every "
                      "shard is bound to them"),
        "tokens": {"total": int(store.n_tokens.sum()), "min": int(store.n_tokens.min()),
                   "max": int(store.n_tokens.max())},
    }
    print(json.dumps(summary, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "record",
        help="record SPARCOM activation counts of a causal LM over the instructions (an activation store)",
        description=(
            "Feed each instruction once through the base model (no LM head, no generation) and store, per "
            "instruction, T and the number of tokens on which each FFN neuron's act_fn(gate_proj(x)) is > 0 "
            "(MoE: routed tokens only, plus the router's top-k counts). Resumes an interrupted run in the same "
            "--out folder."
        ),
    )
    p.add_argument("--model", required=True,
                   help="Hub id, local folder or .gguf file; 'gemma3-270m-gguf' = the PyPI gemma-3-270m Q4_K_M")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--release", default=None,
                        help="release folder to read with hexainst.load (default: the packaged release)")
    source.add_argument("--rows", default=None, help="JSONL file of rows with id, category, source, instruction")
    p.add_argument("--out", required=True,
                   help="store folder: new, empty, or a store of this recording (resumed: missing shards and "
                        "shards that fail their checksum are recorded again)")
    p.add_argument("--category", default=None, help="only this category")
    p.add_argument("--limit", type=int, default=None, help="only the first N rows (in release order)")
    p.add_argument("--batch-size", type=int, default=_R.batch_size,
                   help=f"instructions per forward pass (default {_R.batch_size}; on a GPU 32 costs less per token: "
                        "1.05x a bare forward on a 7B model, against 1.08x at 8)")
    p.add_argument("--dtype", default=_R.dtype, choices=DTYPES,
                   help=f"model weights dtype (default {_R.dtype}; counts are always integers)")
    p.add_argument("--input-policy", default=INPUT_MODES[0], choices=INPUT_MODES,
                   help="raw instruction with the tokenizer's special tokens (default) or one chat user turn")
    p.add_argument("--bos-out-of-t", action="store_true", help="feed BOS but leave it out of T and of the counts")
    p.add_argument("--no-special-tokens", action="store_true", help="raw mode without the tokenizer's special tokens")
    p.add_argument("--gguf-file", default=None, help="GGUF file name inside --model's folder")
    p.add_argument("--no-convert-gguf", action="store_true",
                   help="load a GGUF model directly every time (slow) instead of the cached safetensors conversion")
    p.add_argument("--revision", default=None, help="Hub revision (commit) of --model")
    p.add_argument("--random-init", type=int, default=None, metavar="SEED",
                   help="the untrained baseline: --model's architecture and tokenizer with weights initialised from "
                        "its config under this seed (no weights read; record 3 or more seeds and pass them to "
                        "'hexainst analyze --untrained')")
    p.add_argument("--device", default=_R.device, help=f"torch device, e.g. cpu or cuda (default {_R.device})")
    p.add_argument("--device-map", default=_R.device_map, help="'auto' to spread a large model over all devices")
    p.add_argument("--data-parallel", action="store_true",
                   help="split the rows between processes (run under 'accelerate launch') and merge the parts")
    p.add_argument("--with-sums", action="store_true", help="also store per-neuron activation sums (float32)")
    p.add_argument("--rows-per-shard", type=int, default=_R.rows_per_shard,
                   help=f"instructions per shard file (default {_R.rows_per_shard})")
    p.add_argument("--padding-side", default=_R.padding_side, choices=PADDING_SIDES,
                   help="padding side in batches (recorded in the store; see docs/recording-speed.md for how "
                        "little batching moves a count)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the store in --out (recorded beside it and swapped in when complete)")
    p.set_defaults(handler=_cmd_record)

    m = subparsers.add_parser(
        "record-merge",
        help="concatenate activation stores (e.g. data-parallel parts) into one",
        description="Merge complete activation stores recorded with the same model, tokenizer, policy and layout.",
    )
    m.add_argument("parts", nargs="+", help="store folders, in the order their instructions should follow")
    m.add_argument("--out", required=True,
                   help="merged store folder: new, empty or an earlier merge (replaced when complete; never a part)")
    m.set_defaults(handler=_cmd_merge)

    i = subparsers.add_parser(
        "record-info",
        help="summarise an activation store (model, policy, sizes) as JSON",
        description="Check every shard of an activation store against its checksum and print what it holds.",
    )
    i.add_argument("store", help="store folder")
    i.set_defaults(handler=_cmd_info)
