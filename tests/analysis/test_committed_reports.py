"""The committed demo reports come out of the templates byte for byte from their committed inputs.

``docs/demo`` and ``docs/demo-smollm2`` re-render from their ``results.json`` and ``tables/*.md`` alone;
``docs/demo-alteration`` from the ``evaluation.json`` its report keeps (results.json and report.md both).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hexainst.analysis.finetune import design_report
from hexainst.analysis.render import rerender
from hexainst.analysis.report import render_report

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("demo", ["demo", "demo-smollm2"])
def test_docs_demo_report_rerenders_byte_identical(demo: str, tmp_path: Path) -> None:
    folder = tmp_path / demo
    shutil.copytree(DOCS / demo, folder)
    # what results.json alone determines is drawn again: the claims table and Fig. 3 beside its controls
    derived = ["report.md", "tables/claims.md", "tables/claims.csv", "figures/fig3_beside_untrained.png",
               "figures/fig3_beside_untrained.svg"]
    for name in derived:
        (folder / name).unlink()
    data = json.loads((folder / "results.json").read_text("utf-8"))
    data["claims"] = []
    (folder / "results.json").write_text(json.dumps(data))
    rerender(folder)
    for name in derived + ["results.json"]:
        assert (folder / name).read_bytes() == (DOCS / demo / name).read_bytes(), name


def test_a_new_note_changes_only_the_note() -> None:
    results = json.loads((DOCS / "demo" / "results.json").read_text("utf-8"))
    tables = {p.name[:-3]: p.read_text("utf-8") for p in sorted((DOCS / "demo" / "tables").glob("*.md"))}
    results["parameters"]["note"] = "one note"
    first = render_report(results, tables)
    results["parameters"]["note"] = "another note"
    text = render_report(results, tables)
    assert "> one note\n" in first
    assert text == first.replace("> one note\n", "> another note\n").replace(
        '| `note` | `"one note"` |', '| `note` | `"another note"` |')


def test_docs_demo_alteration_report_renders_byte_identical(tmp_path: Path) -> None:
    """The committed design report and results.json come back byte for byte from the evaluation it keeps."""
    from hexainst.kernel.jsonfiles import dumps_stable

    folder = DOCS / "demo-alteration"
    committed = (folder / "report.md").read_text("utf-8")
    summary_text = (folder / "results.json").read_text("utf-8")
    evaluation = json.loads((folder / "evaluation.json").read_text("utf-8"))
    s = design_report.summarize(evaluation, json.loads(summary_text)["changes"])
    assert s["runs_per_arm"] == {"tuned": 3, "control": 3, "shuffled": 3}
    assert dumps_stable(s) == summary_text
    assert design_report.render_markdown(s, evaluation, "") == committed
    # rerender (what re-renders the folder when the code changes) gives the same bytes from the folder alone
    copy = tmp_path / "demo-alteration"
    shutil.copytree(folder, copy)
    (copy / "report.md").unlink()
    design_report.rerender(copy)
    assert (copy / "report.md").read_bytes() == (folder / "report.md").read_bytes()
    assert (copy / "results.json").read_bytes() == (folder / "results.json").read_bytes()
    # one claims table, every verdict from the closed list (computed from the numbers above, never typed)
    verdicts = {c["claim"]: c["verdict"] for c in s["claims"]}
    assert len(verdicts) == 4 and all(v.startswith(("holds", "does not hold", "not comparable here (")) for v in
                                      verdicts.values())
    for claim, verdict in verdicts.items():
        assert f"| {claim} |" in committed and committed.count(f"| {verdict} |") >= 1
    # the first paragraph leads with the fair contrast (tuned - base), the exact p at its floor says so
    first = committed.split("\n\n")[1]
    assert first.startswith("**Instruction following.**") and first.index("tuned - base") < first.index("shuffled")
    assert "p <= 0.0500" not in committed and "p = 0.0500 (1/20: the smallest possible" in committed
