"""Publishing: upload a release folder to a Hub dataset repository.

Only the release entries (card, licence, data, reserve, croissant.json) are uploaded, never the
package's code. A dry run (``dry_run=DIR``; ``hexainst publish --dry-run DIR``) validates the
release and writes into DIR exactly the files that would be uploaded, plus ``upload-manifest.json``
(path, bytes, sha256 of each): no network.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from hexainst.kernel import atomic
from hexainst.kernel.digests import file_sha256
from hexainst.kernel.errors import UserError
from hexainst.kernel.outputs import claim_output_dir, write_marker
from hexainst.kernel.release import PACKAGE_RELEASE_DIR, RELEASE_ENTRIES
from hexainst.kernel.release_validation import check_release
from hexainst.kernel.settings import SettingError, setting


def release_files(folder: Path) -> list[str]:
    """Relative paths of every file of the release in ``folder``, sorted."""
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
            {"path": f, "bytes": (folder / f).stat().st_size, "sha256": file_sha256(folder / f)}
            for f in files
        ]
    }


#: The kind of output a dry run writes (see :mod:`hexainst.kernel.outputs`).
DRY_RUN_KIND = "publish dry run"


def check_publishable(folder: Path) -> list[str]:
    """Validate the release in ``folder`` as ``hexainst validate`` does; return its files. Raises on any problem."""
    found = check_release(folder)
    if found.balance:
        raise UserError(f"{folder}: refusing to publish an unbalanced release: {found.balance[0]}")
    if found.problems:
        more = f" (and {len(found.problems) - 1} more: hexainst validate lists them)" if len(found.problems) > 1 else ""
        raise UserError(f"{folder}: refusing to publish: {found.problems[0]}{more}")
    return release_files(folder)


@dataclass(frozen=True)
class PublishConfig:
    """What ``hexainst publish`` needs: the Hub repository, the release folder, and a dry run's folder."""

    repo: str = setting(help="dataset repository id on the Hub", metavar="ORG/NAME")
    path: Path | None = setting(None, "release folder (default: the one in the hexainst package)")
    dry_run: Path | None = setting(None, "write the upload into DIR instead of uploading", metavar="DIR")
    private: bool = setting(False, "create the repository as private")


def publish(config: PublishConfig) -> dict:
    """Validate the release in ``config.path`` and upload it to the dataset repo ``config.repo`` (or dry-run it).

    A dry run writes into ``config.dry_run`` only when that folder is new, empty, or an earlier dry
    run's output; it never deletes anything else. Returns the manifest (``files``: path, bytes, sha256),
    with the Hub's ``commit`` after an upload.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id  # deferred: --help imports this (60 ms)

    repo, dry_run = config.repo, config.dry_run

    if "/" not in repo or repo.count("/") != 1 or not all(repo.split("/")):
        raise SettingError("repo", f"must be ORG/NAME, got {repo!r}")
    try:
        validate_repo_id(repo)  # the Hub's own rule, checked before any network
    except HFValidationError as exc:
        raise SettingError("repo", f"{repo!r} is not a valid Hub repository id: {str(exc).splitlines()[0]}") from None
    folder = Path(config.path) if config.path is not None else PACKAGE_RELEASE_DIR
    if dry_run is not None:
        dry_run = claim_output_dir(dry_run, DRY_RUN_KIND, inputs=[folder], option="dry_run")
    files = check_publishable(folder)
    info = {"repo": repo, "repo_type": "dataset", **manifest(folder, files)}
    if dry_run is not None:
        with atomic.staged_dir(dry_run) as tmp:
            for f in files:
                (tmp / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / f, tmp / f)
            (tmp / "upload-manifest.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
            write_marker(tmp, DRY_RUN_KIND, {"repo": repo})
        return info
    return _upload(folder, repo, files, info, config.private)


def _upload(folder: Path, repo: str, files: list[str], info: dict, private: bool) -> dict:
    import httpx  # deferred: httpx (~0.1 s); `hexainst --help` imports this module
    from huggingface_hub import HfApi  # deferred: HfApi (~0.15 s); `hexainst --help` imports this module
    from huggingface_hub.errors import HfHubHTTPError  # deferred: huggingface_hub; --help imports this module

    api = HfApi()
    try:
        api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo,
            repo_type="dataset",
            folder_path=str(folder),
            allow_patterns=files,
            commit_message="Upload HexaInst release (hexainst publish)",
        )
    except HfHubHTTPError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"the Hub refused the upload to {repo}: {first}") from exc
    except Exception as exc:  # network failures come as httpx, requests or OSError types
        if not isinstance(exc, (httpx.HTTPError, OSError)) and not type(exc).__module__.startswith(
            ("httpx", "requests", "urllib3", "huggingface_hub")
        ):
            raise
        raise UserError(f"cannot reach the Hugging Face Hub to publish {repo} ({type(exc).__name__}: {exc})") from exc
    info["commit"] = str(commit)
    return info
