"""``hexainst publish``: upload a release folder to a Hugging Face Hub dataset repository."""

from __future__ import annotations

import argparse

from hexainst.cli.options import add_settings, config_from
from hexainst.kernel.publish import PublishConfig, publish


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "publish",
        help="upload a release folder to a Hugging Face Hub dataset repo",
        description=(
            "Validate a release and upload its files (card, LICENSE.md, data/, reserve/, croissant.json; never code) "
            "to a Hub dataset repository with huggingface_hub. Needs a token (HF_TOKEN or 'hf auth login'). "
            "--dry-run DIR writes exactly what would be uploaded into DIR instead, with no network."
        ),
    )
    add_settings(parser, PublishConfig, ["repo", "path", "dry_run", "private"], required=["repo"])
    parser.set_defaults(handler=_publish)


def _publish(args: argparse.Namespace) -> int:
    info = publish(config_from(args, PublishConfig))
    where = f"into {args.dry_run} (dry run)" if args.dry_run else f"to https://huggingface.co/datasets/{args.repo}"
    print(f"{len(info['files'])} files, {sum(f['bytes'] for f in info['files'])} bytes {where}")
    return 0
