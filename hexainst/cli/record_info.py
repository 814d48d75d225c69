"""``hexainst record-info``: check every shard of an activation store and print what it holds, as JSON."""

from __future__ import annotations

import argparse
import json


def _cmd_info(args: argparse.Namespace) -> int:
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
    i = subparsers.add_parser(
        "record-info",
        help="summarise an activation store (model, policy, sizes) as JSON",
        description="Check every shard of an activation store against its checksum and print what it holds.",
    )
    i.add_argument("store", help="store folder")
    i.set_defaults(handler=_cmd_info)
