"""``hexainst record-merge``: concatenate complete activation stores (e.g. data-parallel parts) into one."""

from __future__ import annotations

import argparse


def _cmd_merge(args: argparse.Namespace) -> int:
    from hexainst.analysis.recording.store import claim_merge_dir, merge_stores  # deferred: loads numpy and scipy

    claim_merge_dir(args.parts, args.out)
    store = merge_stores(args.parts, args.out)
    print(f"merged {len(args.parts)} stores: {len(store)} instructions into {store.path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    m = subparsers.add_parser(
        "record-merge",
        help="concatenate activation stores (e.g. data-parallel parts) into one",
        description="Merge complete activation stores recorded with the same model, tokenizer, policy and layout.",
    )
    m.add_argument("parts", nargs="+", help="store folders, in the order their instructions should follow")
    m.add_argument("--out", required=True,
                   help="merged store folder: new, empty or an earlier merge (replaced when complete; never a part)")
    m.set_defaults(handler=_cmd_merge)
