"""``hexainst record``: SPARCOM activation counts of a causal LM over the instructions, into an activation store.

The options that set how it records come from :class:`~hexainst.analysis.recording.config.RecordingConfig`
(``--model`` and ``--out`` too); the others choose the rows. Modules that load numpy, scipy or torch load
inside the handler so that ``hexainst --help`` stays fast. ``record-merge`` and ``record-info`` have modules
of their own.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

import hexainst
from hexainst.analysis.recording.config import RecordingConfig
from hexainst.analysis.recording.loading import resolve_model
from hexainst.cli.options import add_progress, add_settings, config_from, help_of, int_range
from hexainst.kernel.errors import UserError
from hexainst.kernel.features import decode_rows
from hexainst.kernel.jsonfiles import read_jsonl


def _read_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    from hexainst.analysis.recording.store import check_category  # deferred: loads numpy and scipy

    if args.rows is not None:
        rows = read_jsonl(args.rows, what="rows file", check=_unique_ids())
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


def _unique_ids():
    """A ``read_jsonl`` check: a row whose id an earlier line of the rows file had is named by file and line
    (before the model loads; the store would refuse it only after)."""
    first: dict[str, str] = {}

    def check(row: Any, where: str) -> None:
        if not isinstance(row, dict) or "id" not in row:
            return  # a row without an id: named with the other missing fields
        key = str(row["id"])
        if key in first:
            raise UserError(f"{where}: duplicate instruction id {key!r} (also on line {first[key]})")
        first[key] = where.rsplit(" line ", 1)[-1]

    return check


def _cmd_record(args: argparse.Namespace) -> int:
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
    # Written here with the setting's help: the field also takes a loaded model (type Any), which add_settings
    # cannot parse from text.
    p.add_argument("--model", required=True, help=help_of(RecordingConfig, "model"))
    source = p.add_mutually_exclusive_group()
    source.add_argument("--release", default=None,
                        help="release folder to read with hexainst.load (default: the packaged release)")
    source.add_argument("--rows", default=None, help="JSONL file of rows with id, category, source, instruction")
    add_settings(p, RecordingConfig, ["out"], required=["out"])
    p.add_argument("--category", default=None, help="only this category")
    p.add_argument("--limit", type=int_range(1), default=None, help="only the first N rows (in release order)")
    add_settings(p, RecordingConfig, ["batch_size", "dtype", "input_policy", "bos_in_t", "special_tokens",
                                      "gguf_file", "convert_gguf", "revision", "random_init", "device", "device_map"],
                 flags={"bos_in_t": "--bos-out-of-t"})
    p.add_argument("--data-parallel", action="store_true",
                   help="split the rows between processes (run under 'accelerate launch') and merge the parts")
    add_settings(p, RecordingConfig, ["with_sums", "rows_per_shard", "padding_side", "overwrite"])
    add_progress(p)
    p.set_defaults(handler=_cmd_record)
