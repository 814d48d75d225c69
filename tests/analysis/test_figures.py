"""What each figure draws: the cells, lines and bars hold the given values, in the files too."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from hexainst.analysis import figures

SVG = "{http://www.w3.org/2000/svg}"


def _svg_texts(path: Path) -> list[str]:
    """Every text drawn in an SVG file (svg.fonttype none: texts stay text), lines joined by newlines."""
    root = ET.parse(path).getroot()
    out = []
    for node in root.iter(f"{SVG}text"):
        parts = ["".join(node.itertext())]
        out.append("\n".join(p for p in parts if p))
    return out


def _png_pixels(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    return imread(path)


def test_heatmap_writes_each_value_and_ci_in_its_cell(tmp_path: Path) -> None:
    m = np.arange(36, dtype=float).reshape(6, 6) / 36
    m[2, 4] = np.nan
    labels = ["CLS", "CODE", "QA", "GEN", "MATH", "SUM"]
    fig = figures.heatmap(m, labels, low=m - 0.1, high=m + 0.1, title="a title", stem=tmp_path / "h")
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array().filled(np.nan), m)
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert len(cells) == 36
    for i in range(6):
        for j in range(6):
            if (i, j) == (2, 4):
                assert cells[i, j] == "n/a"  # NaN is written as such, with no interval
            else:
                v = m[i, j]
                assert cells[i, j] == f"{v:.3f}\n[{v - 0.1:.3f}, {v + 0.1:.3f}]"
    # dark cells (above the middle of the colour range) get white text, light ones black
    assert ax.texts[35].get_color() == "white" and ax.texts[0].get_color() == "black"
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    assert ax.get_title() == "a title"
    # The SVG file holds the same cell texts and labels.
    drawn = " ".join(_svg_texts(tmp_path / "h.svg"))
    for i, j in [(0, 0), (1, 1), (5, 5), (3, 2)]:
        assert f"{m[i, j]:.3f}" in drawn and f"[{m[i, j] - 0.1:.3f}, {m[i, j] + 0.1:.3f}]" in drawn
    assert all(label in drawn for label in labels) and "n/a" in drawn
    # The PNG is a picture with the colour range of the map: the darkest cell's blue is in it.
    import matplotlib

    png = _png_pixels(tmp_path / "h.png")[..., :3]
    darkest = np.array(matplotlib.colormaps["Blues"](1.0)[:3])
    assert np.min(np.abs(png - darkest).sum(axis=-1)) < 0.02


def test_heatmap_custom_format_and_column_labels(tmp_path: Path) -> None:
    m = np.array([[0.5, -0.25, 0.0]])
    fig = figures.heatmap(m, ["row"], col_labels=["a", "b", "c"], fmt="{:+.2f}", title="t", stem=tmp_path / "c",
                          xlabel="evaluated", ylabel="zeroed")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["+0.50", "-0.25", "+0.00"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("evaluated", "zeroed")


def test_layer_profiles_draw_the_given_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    per_layer = {"base: m1": rng.random((6, 18)), "ft: m2": rng.random((6, 18))}
    cats = list("ABCDEF")
    fig = figures.layer_profiles(per_layer, cats, title="t", stem=tmp_path / "l")
    assert [ax.get_title() for ax in fig.axes] == ["base: m1", "ft: m2"]
    for ax, values in zip(fig.axes, per_layer.values()):
        assert [line.get_label() for line in ax.lines] == cats
        for c, line in enumerate(ax.lines):
            np.testing.assert_array_equal(line.get_xdata(), np.arange(18))
            np.testing.assert_allclose(line.get_ydata(), values[c])
    legend = fig.axes[-1].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == cats
    drawn = _svg_texts(tmp_path / "l.svg")
    assert "base: m1" in drawn and "ft: m2" in drawn


def test_venn_bars_stack_base_both_ft_per_layer(tmp_path: Path) -> None:
    counts = {f"i{k} (CODE)": np.arange(12).reshape(4, 3) + k for k in range(5)}
    fig = figures.venn_bars(counts, title="t", stem=tmp_path / "v")
    used = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in used] == list(counts)
    for ax, c in zip(used, counts.values()):
        bars = ax.patches  # drawn as 3 series (base only, both, ft only) of one bar per layer
        assert len(bars) == 4 * 3
        for k in range(3):
            series = bars[4 * k: 4 * (k + 1)]
            for layer, bar in enumerate(series):
                assert bar.get_x() + bar.get_width() / 2 == pytest.approx(layer)
                assert bar.get_height() == c[layer, k]
                assert bar.get_y() == c[layer, :k].sum()  # stacked on the series below
    assert [t.get_text() for t in used[0].get_legend().get_texts()] == ["base only", "both", "fine-tuned only"]
    assert len(fig.axes) == 6 and not fig.axes[5].axison  # 2 x 3 grid, the sixth panel off


def test_category_bars_heights_errors_and_labels(tmp_path: Path) -> None:
    values = np.array([1.0, 2.5, 3.25])
    low, high = values - [0.5, 0.25, 1.0], values + [0.5, 0.5, 0.25]
    fig = figures.category_bars(values, ["a", "b", "c"], title="t", stem=tmp_path / "b", ylabel="y",
                                low=low, high=high)
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == values.tolist()
    assert [t.get_text() for t in ax.texts] == ["1", "2.5", "3.25"]
    # error bars span [low, high] at each bar
    segments = [c for c in ax.collections if c.get_segments()]
    spans = sorted((s[0][1], s[1][1]) for s in segments[0].get_segments())
    assert spans == sorted(zip(low.tolist(), high.tolist()))
    assert {"1", "2.5", "3.25", "a", "b", "c"} <= set(_svg_texts(tmp_path / "b.svg"))


def test_same_figure_same_bytes(tmp_path: Path) -> None:
    m = np.eye(3) * 0.5
    for name in ("a", "b"):
        figures.heatmap(m, ["x", "y", "z"], title="t", stem=tmp_path / name)
    for ext in ("png", "svg"):
        assert (tmp_path / f"a.{ext}").read_bytes() == (tmp_path / f"b.{ext}").read_bytes()
