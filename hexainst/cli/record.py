"""``hexainst record``, ``hexainst record-merge`` and ``hexainst record-info``.

The options of ``record`` come from :class:`~hexainst.analysis.recording.config.RecordingConfig`.
Modules that load numpy, scipy or torch load inside the handlers so that ``hexainst --help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import hexainst
from hexainst.analysis.recording.config import RecordingConfig
from hexainst.analysis.recording.loading import resolve_model
from hexainst.cli.options import add_settings, config_from, int_range
from hexainst.kernel.errors import UserError
from hexainst.kernel.features import decode_rows
from hexainst.kernel.jsonfiles import read_jsonl


def _read_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    from hexainst.analysis.recording.store import check_category  # deferred: loads numpy and scipy

    if args.rows is not None:
        rows = read_jsonl(args.rows, what="rows file")
        for n, row in enumerate(rows, 1):
            missing = [k for k in ("id", "category", "instruction") if k not in row]
            if missing:
                raise UserError(f"{args.rows} line {n}: row {row.get('id', '(no id)')} has no {', '.join(missing)}")
            check_category(row["category"], f"{args.rows} line {n}: row {row['id']}")
    else:
        rows = decode_rows(hexainst.load(args.release, category=args.category))
    if args.category and args.rows is not None:
        rows = [row for row in rows if row.get("category") == args.category]
    if args.limit is not None:
        rows = rows[: args.limit]
    if not rows:
        raise UserError("no rows to record (check --release/--rows, --category and --limit)")
    return rows


def _cmd_record(args: argparse.Namespace) -> int:
    # deferred: the recorder loads numpy, scipy and datasets ('hexainst --help' stays fast)
    from hexainst.analysis.recording import recorder  # deferred: loads numpy and scipy
    from hexainst.analysis.recording.store import claim_store_dir  # deferred: loads numpy and scipy

    inputs = (args.rows, args.release)
    config = config_from(args, RecordingConfig, inputs=inputs,
                         created_by={"command": "hexainst record", "argv": sys.argv[1:]})
    claim_store_dir(config.out, inputs=list(inputs))  # before reading the release or loading the model
    rows = _read_rows(args)
    config = dataclasses.replace(config, model=resolve_model(args.model))
    if args.data_parallel:
        result = recorder.run_data_parallel(config, rows)
        if result is None:
            return 0
    else:
        result = recorder.run(config, rows)
    store, now = result.store, result.recorded_now
    before = f", {len(store) - now} already there" if now < len(store) else ""
    print(f"recorded {now} instructions{before}: {len(store)} instructions x {store.n_cols} neurons"
          f"{f' ({store.n_experts} experts, top-{store.top_k})' if store.is_moe else ''} in {store.path}, "
          "every shard checked")
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    # deferred: the store loads numpy and scipy
    from hexainst.analysis.recording.store import claim_merge_dir, merge_stores  # deferred: loads numpy and scipy

    claim_merge_dir(args.parts, args.out)
    store = merge_stores(args.parts, args.out)
    print(f"merged {len(args.parts)} stores: {len(store)} instructions into {store.path}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    # deferred: the store loads numpy and scipy
    from hexainst.analysis.recording.store import ActivationStore  # deferred: loads numpy and scipy

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
    p.add_argument("--out", required=True, type=Path,
                   help="store folder: new, empty, or a store of this recording (resumed: missing shards and "
                        "shards that fail their checksum are recorded again)")
    p.add_argument("--category", default=None, help="only this category")
    p.add_argument("--limit", type=int_range(1), default=None, help="only the first N rows (in release order)")
    add_settings(p, RecordingConfig, ["batch_size", "dtype", "input_policy", "bos_in_t", "special_tokens",
                                      "gguf_file", "convert_gguf", "revision", "random_init", "device", "device_map"],
                 flags={"bos_in_t": "--bos-out-of-t"})
    p.add_argument("--data-parallel", action="store_true",
                   help="split the rows between processes (run under 'accelerate launch') and merge the parts")
    add_settings(p, RecordingConfig, ["with_sums", "rows_per_shard", "padding_side", "overwrite"])
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
