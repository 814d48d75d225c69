"""Every figure is written (PNG + SVG, non-empty) with the expected number of cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hexainst.analysis import figures


def _files(stem: Path) -> list[Path]:
    return [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]


def test_heatmap_has_one_annotated_cell_per_value(tmp_path: Path) -> None:
    m = np.arange(36, dtype=float).reshape(6, 6) / 36
    labels = ["CLS", "CODE", "QA", "GEN", "MATH", "SUM"]
    fig = figures.heatmap(m, labels, low=m - 0.1, high=m + 0.1, title="t", stem=tmp_path / "h")
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (6, 6)
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 36
    assert texts[7].startswith(f"{m[1, 1]:.3f}")  # row-major, values written in the cells
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    for path in _files(tmp_path / "h"):
        assert path.stat().st_size > 1000
    assert (tmp_path / "h.svg").read_text().count("0.972") >= 1


def test_layer_profiles_one_line_per_category_and_panel(tmp_path: Path) -> None:
    per_layer = {"base": np.random.default_rng(0).random((6, 18)), "ft": np.random.default_rng(1).random((6, 18))}
    fig = figures.layer_profiles(per_layer, list("ABCDEF"), title="t", stem=tmp_path / "l")
    assert len(fig.axes) == 2
    assert all(len(ax.lines) == 6 and len(ax.lines[0].get_xdata()) == 18 for ax in fig.axes)
    assert all(p.stat().st_size > 1000 for p in _files(tmp_path / "l"))


def test_venn_bars_three_stacked_bars_per_layer(tmp_path: Path) -> None:
    counts = {f"i{k}": np.arange(12).reshape(4, 3) + k for k in range(5)}
    fig = figures.venn_bars(counts, title="t", stem=tmp_path / "v")
    used = [ax for ax in fig.axes if ax.axison]
    assert len(used) == 5
    assert all(len(ax.patches) == 4 * 3 for ax in used)
    heights = sorted(p.get_height() for p in used[0].patches)
    assert heights == sorted(np.arange(12).tolist())
    assert all(p.stat().st_size > 1000 for p in _files(tmp_path / "v"))


def test_category_bars(tmp_path: Path) -> None:
    fig = figures.category_bars(np.array([1.0, 2, 3]), ["a", "b", "c"], title="t", stem=tmp_path / "b", ylabel="y")
    assert len(fig.axes[0].patches) == 3
    assert all(p.stat().st_size > 1000 for p in _files(tmp_path / "b"))
