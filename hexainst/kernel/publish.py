"""Publishing: upload a release folder to a Hub dataset repository.

Only the release entries (card, licence, data, reserve, croissant.json) are uploaded, never the
package's code. ``--dry-run DIR`` validates the release and writes into DIR exactly the files that
would be uploaded, plus ``upload-manifest.json`` (path, bytes, sha256 of each): no network.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from hexainst.kernel.errors import UserError


def release_files(folder: Path) -> list[str]:
    """Relative paths of every file of the release in ``folder``, sorted."""
    from hexainst.kernel.release import RELEASE_ENTRIES

    files: list[str] = []
    for entry in RELEASE_ENTRIES:
        path = folder / entry
        if path.is_file():
            files.append(entry)
        elif path.is_dir():
            files += sorted(str(p.relative_to(folder)) for p in path.rglob("*") if p.is_file())
    return sorted(files)


def manifest(folder: Path, files: list[str]) -> dict:
    return {
        "files": [
            {"path": f, "bytes": (folder / f).stat().st_size, "sha256": hashlib.sha256((folder / f).read_bytes()).hexdigest()}
            for f in files
        ]
    }


def publish(folder: Path, repo: str, *, dry_run: Path | None = None, private: bool = False) -> dict:
    """Validate the release in ``folder`` and upload it to the dataset repo ``repo`` (or dry-run it)."""
    from hexainst.kernel.release_checks import balance_problems
    from hexainst.kernel.release import cell_counts, read_release_rows

    if "/" not in repo or repo.count("/") != 1:
        raise UserError(f"--repo must be ORG/NAME, got {repo!r}")
    rows = read_release_rows(folder)
    problems = balance_problems(cell_counts(rows))
    if problems:
        raise UserError(f"{folder}: refusing to publish an unbalanced release: {problems[0]}")
    files = release_files(folder)
    info = {"repo": repo, "repo_type": "dataset", **manifest(folder, files)}
    if dry_run is not None:
        dry_run = Path(dry_run)
        dry_run.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dry_run.name}.", dir=dry_run.parent))
        try:
            for f in files:
                (tmp / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / f, tmp / f)
            (tmp / "upload-manifest.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
            if dry_run.exists():
                shutil.rmtree(dry_run)
            os.replace(tmp, dry_run)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return info
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo,
        repo_type="dataset",
        folder_path=str(folder),
        allow_patterns=files,
        commit_message="Upload HexaInst release (hexainst publish)",
    )
    info["commit"] = str(commit)
    return info
