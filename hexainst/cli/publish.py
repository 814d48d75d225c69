"""``hexainst publish``: upload a release folder to a Hugging Face Hub dataset repository."""

from __future__ import annotations

import argparse
from pathlib import Path

from hexainst.kernel.publish import publish
from hexainst.kernel.release import PACKAGE_RELEASE_DIR


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
    parser.add_argument("--repo", required=True, metavar="ORG/NAME", help="dataset repository id on the Hub")
    parser.add_argument("--path", type=Path, default=None, help="release folder (default: the one in the hexainst package)")
    parser.add_argument("--dry-run", type=Path, metavar="DIR", help="write the upload into DIR instead of uploading")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.set_defaults(handler=_publish)


def _publish(args: argparse.Namespace) -> int:
    folder = args.path or PACKAGE_RELEASE_DIR
    info = publish(folder, args.repo, dry_run=args.dry_run, private=args.private)
    where = f"into {args.dry_run} (dry run)" if args.dry_run else f"to https://huggingface.co/datasets/{args.repo}"
    print(f"{len(info['files'])} files, {sum(f['bytes'] for f in info['files'])} bytes {where}")
    return 0
