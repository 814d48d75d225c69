"""The committed release rebuilds from what it ships: same files, byte for byte, with no generator request.

What a newcomer's `make dataset SOURCES=../shared/sources` does on a fresh clone: the natural stage
reads the offline mirror, the synthetic stage replays the answers the release ships in
``generations/synthetic.jsonl`` (the request cache starts empty), and the assembly writes the
release again. Slow: about two minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RELEASE_FILES = ("README.md", "LICENSE.md", "croissant.json", "rejection_rates.json", "data", "reserve", "generations")
#: Shipped by a validated (and a topped-up) release: the rebuild applies them again and ships them unchanged.
OPTIONAL_FILES = ("validation.json", "topup.json")


def _hashes(folder: Path) -> dict[str, str]:
    out = {}
    for entry in (*RELEASE_FILES, *(e for e in OPTIONAL_FILES if (folder / e).exists())):
        path = folder / entry
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            out[str(file.relative_to(folder))] = hashlib.sha256(file.read_bytes()).hexdigest()
    return out


def test_committed_release_rebuilds_byte_identical_from_its_generations(repo_root: Path, mirror_dir: Path,
                                                                          tmp_path: Path) -> None:
    committed = repo_root / "hexainst"
    assert (committed / "generations" / "synthetic.jsonl").is_file(), "the release must ship its generations"
    out = tmp_path / "release"
    out.mkdir()
    for entry in (*RELEASE_FILES, *(e for e in OPTIONAL_FILES if (committed / e).exists())):
        source = committed / entry
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, out / entry)
    env = {k: v for k, v in os.environ.items() if k not in ("HEXAINST_BASE_URL", "HEXAINST_MODEL", "OPENAI_API_KEY",
                                                            "DEEPSEEK_API_KEY")}
    env.update(HEXAINST_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")  # an empty cache: nothing known
    done = subprocess.run(
        [sys.executable, "-m", "hexainst", "build", "all", "--work", str(tmp_path / "work"), "--out", str(out),
         "--sources", str(mirror_dir)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "work" / "synthetic" / "synthetic-report.json").read_text())
    assert report["requests"] == 0, report["requests"]  # every answer came from the shipped generations
    assert report["cache_hits"] > 0
    assert _hashes(out) == _hashes(committed)
    if (committed / "validation.json").exists():  # the validated release: its own verdicts were applied again
        assert "applying the validation file the release ships" in done.stdout
