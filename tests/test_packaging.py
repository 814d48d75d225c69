"""The wheel works installed: built from the repository, installed without ``-e``, used from elsewhere.

The fresh environment gets the wheel alone (``--no-deps``); its third-party dependencies (torch,
transformers, datasets...) come from the test environment's site-packages through a ``.pth``
line, which puts those folders on ``sys.path`` without running their ``.pth`` files, so the
editable install of this checkout is invisible there. What is tested is therefore this package
as installed from its wheel, not a re-download of torch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAPPED = {"hexainst": "hexainst", "builders": "hexainst/builders", "annotation": "hexainst/annotation",
          "analysis": "hexainst/analysis", "cards": "hexainst/cards"}
#: Files the package needs at run time besides its modules (beyond *.py).
RUNTIME_DATA = ("*.json", "*.md", "*.parquet", "*.jsonl")

#: The wheel's files (all but its dist-info), as the explicit `packages` list of pyproject.toml built
#: them before setuptools discovered the packages itself. After adding a file the package ships,
#: regenerate: python -c "import zipfile,sys; print(*sorted(n for n in zipfile.ZipFile(sys.argv[1]).namelist()
#: if '.dist-info/' not in n), sep='\n')" dist/hexainst-*.whl > tests/wheel_files.txt
WHEEL_FILES = REPO / "tests" / "wheel_files.txt"


@dataclass(frozen=True)
class Built:
    wheel: Path
    log: str  # pip's verbose output: what setuptools printed while building


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy, so that setuptools' build/ folder never lands in (or goes stale in) the checkout.
    source = tmp_path_factory.mktemp("source") / "hexainst-src"
    skip = shutil.ignore_patterns(".git", ".venv", ".ls-venv", "work", "*.egg-info", "__pycache__", ".pytest_cache", "docs")

    def ignore(folder: str, names: list[str]) -> set[str]:  # setuptools' build/ at the root, not hexainst/cli/build/
        return set(skip(folder, names)) | ({"build"} if Path(folder) == REPO else set())

    shutil.copytree(REPO, source, ignore=ignore)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--verbose", "-w", str(out), str(source)],
        check=True, capture_output=True, text=True,
    )
    (found,) = out.glob("hexainst-*.whl")
    return Built(found, done.stdout + done.stderr)


@pytest.fixture(scope="module")
def wheel(built: Built) -> Path:
    return built.wheel


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed (not editable); returns its bin folder."""
    env_dir = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "zz_test_dependencies.pth").write_text("".join(p + "\n" for p in sorted(ours)))
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, text=True)
    return env_dir / "bin"


def _wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def test_only_hexainst_at_the_top_level(wheel: Path) -> None:
    tops = {name.split("/")[0] for name in _wheel_names(wheel)}
    assert tops == {"hexainst", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}


def test_the_build_prints_no_setuptools_warning(built: Built) -> None:
    # e.g. "_Warning: Package 'hexainst.data' is absent from the `packages` configuration." (9 of them before
    # the packages were discovered) or a SetuptoolsDeprecationWarning. Not matched: distutils' "warning:
    # build_py: byte-compiling is disabled" (PYTHONDONTWRITEBYTECODE is set) and pip's own "WARNING:" lines.
    warned = [line.strip() for line in built.log.splitlines() if re.search(r"\w*Warning:|would be ignored", line)]
    assert not warned, "\n".join(warned)


def test_the_wheel_holds_the_recorded_files(wheel: Path) -> None:
    names = {name for name in _wheel_names(wheel) if ".dist-info/" not in name}
    recorded = set(WHEEL_FILES.read_text().split())
    assert len(recorded) > 150
    assert sorted(names - recorded) == [] and sorted(recorded - names) == [], (
        f"new: {sorted(names - recorded)}; gone: {sorted(recorded - names)} (see WHEEL_FILES to regenerate)")


def test_every_module_and_runtime_file_of_the_tree_is_in_the_wheel(wheel: Path) -> None:
    names = _wheel_names(wheel)
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, check=True, capture_output=True, text=True).stdout.split()
    expected = set()
    for path in tracked:
        top, _, rest = path.partition("/")
        if top not in MAPPED or not rest:
            continue
        name = Path(path).name
        if name.endswith(".py") or any(Path(name).match(p) for p in RUNTIME_DATA):
            expected.add(f"{MAPPED[top]}/{rest}")
    assert len(expected) > 100
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing[:10]}"
    # the release itself: data, reserve, card, croissant; the card templates and the schemas
    for name in ("hexainst/data/math.parquet", "hexainst/reserve/reserve.jsonl", "hexainst/README.md",
                 "hexainst/croissant.json", "hexainst/validation.json", "hexainst/topup.json", "hexainst/rejection_rates.json",
                 "hexainst/cards/hexainst.md",
                 "hexainst/kernel/schema/record.v1.schema.json", "hexainst/kernel/schema/validation.v2.schema.json"):
        assert name in names


def _run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run([*args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # a fresh virtual environment, then record and analyze on a tiny model
def test_installed_wheel_loads_validates_records_and_analyzes(installed: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    python = str(installed / "python")
    where = _run(installed, elsewhere, python, "-c",
                 "import hexainst, json; ds = hexainst.load(); "
                 "print(json.dumps({'file': hexainst.__file__, 'rows': ds.num_rows, 'reserve': len(hexainst.load_reserve())}))")
    assert where.returncode == 0, where.stderr
    info = json.loads(where.stdout.strip().splitlines()[-1])
    assert not info["file"].startswith(str(REPO)), info["file"]  # the installed copy, not this checkout
    assert info["rows"] == 1200 and info["reserve"] > 0

    # generic names such as `analysis` are not importable as top-level packages
    clash = _run(installed, elsewhere, python, "-c", "import importlib.util as u; print(u.find_spec('analysis'), u.find_spec('builders'))")
    assert clash.stdout.strip() == "None None", clash.stdout

    hexainst_bin = str(installed / "hexainst")
    validate = _run(installed, elsewhere, hexainst_bin, "validate")
    assert validate.returncode == 0 and validate.stdout.strip().endswith("OK"), validate.stdout + validate.stderr
    info_run = _run(installed, elsewhere, hexainst_bin, "info", "--json")
    assert info_run.returncode == 0, info_run.stderr
    assert json.loads(info_run.stdout)["rows"] == 1200

    # record + analyze on a tiny real transformers model saved to disk
    make_model = (
        "import sys; from hexainst.analysis.recording.testing import make_tokenizer, tiny_model; "
        "tiny_model('llama').save_pretrained(sys.argv[1]); make_tokenizer().save_pretrained(sys.argv[1])"
    )
    model_dir = tmp_path / "tiny-llama"
    made = _run(installed, elsewhere, python, "-c", make_model, str(model_dir))
    assert made.returncode == 0, made.stderr
    rows = tmp_path / "rows.jsonl"  # 4 rows of each category of the installed release
    pick = (
        "import sys, json, hexainst; from hexainst.kernel.features import decode_rows; "
        "rows = decode_rows(hexainst.load()); "
        "out = [r for c in hexainst.CATEGORIES for r in [x for x in rows if x['category'] == c][:4]]; "
        "open(sys.argv[1], 'w').write(''.join(json.dumps(r) + '\\n' for r in out))"
    )
    picked = _run(installed, elsewhere, python, "-c", pick, str(rows))
    assert picked.returncode == 0, picked.stderr
    store = tmp_path / "store"
    rec = _run(installed, elsewhere, hexainst_bin, "record", "--model", str(model_dir), "--out", str(store),
               "--rows", str(rows), "--batch-size", "8")
    assert rec.returncode == 0, rec.stderr
    assert "recorded 24 instructions" in rec.stdout
    report = tmp_path / "report"
    ana = _run(installed, elsewhere, hexainst_bin, "analyze", "--store", str(store), "--out", str(report),
               "--permutations", "50", "--bootstrap", "50")
    assert ana.returncode == 0, ana.stderr
    results = json.loads((report / "results.json").read_text())
    assert results["instructions"]["n"] == 24
    assert (report / "report.md").is_file()
