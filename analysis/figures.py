"""Figures of a SPARCOM run (matplotlib, written as PNG and SVG; deterministic bytes).

Each function draws one figure, writes ``<stem>.png`` and ``<stem>.svg`` and returns the
:class:`matplotlib.figure.Figure` (closed to free memory, still inspectable by tests).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_DPI = 120


def _pyplot():
    import matplotlib  # deferred: matplotlib (0.2 s, pyplot 0.4 s) loads when a figure is drawn

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # deferred: after matplotlib.use('Agg') above, as pyplot requires

    plt.rcParams["svg.hashsalt"] = "hexainst"
    plt.rcParams["svg.fonttype"] = "none"
    return plt


def pyplot():
    """matplotlib.pyplot on the Agg backend, with the settings that keep SVG output byte-stable: for figure
    writers outside this module (the fine-tuning report)."""
    return _pyplot()


def save_figure(fig, stem: str | os.PathLike[str]) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` atomically (no dates in the files); return both paths."""
    plt = _pyplot()
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, meta in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
        path = stem.with_name(f"{stem.name}.{ext}")
        tmp = stem.with_name(f".{stem.name}.{ext}.tmp")
        fig.savefig(tmp, format=ext, dpi=_DPI, metadata=meta, bbox_inches="tight")
        os.replace(tmp, path)
        paths.append(path)
    plt.close(fig)
    return paths


def heatmap(
    matrix: np.ndarray,
    labels: Sequence[str],
    *,
    title: str,
    stem: str | os.PathLike[str],
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
    colorbar_label: str = "",
    col_labels: Sequence[str] | None = None,
    fmt: str = "{:.3f}",
    xlabel: str = "",
    ylabel: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
):
    """A category x category heatmap with the value (and its CI, if given) written in every cell.

    matrix: float [m, k]; low/high: float [m, k] bootstrap bounds or None. ``vmin``/``vmax`` fix
    the colour scale (e.g. 0 for a Jaccard, so that a reader never sees a contrast the numbers
    do not have); by default the data's range.
    """
    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=np.float64)
    m, k = matrix.shape
    col_labels = list(col_labels) if col_labels is not None else list(labels)
    fig, ax = plt.subplots(figsize=(1.2 * k + 2.5, 1.0 * m + 1.8))
    finite = matrix[np.isfinite(matrix)]
    lo_d, hi_d = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    vmin = lo_d if vmin is None else vmin
    vmax = hi_d if vmax is None else vmax
    im = ax.imshow(matrix, cmap="Blues", vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1e-9)
    ax.set_xticks(range(k), col_labels, rotation=30, ha="right")
    ax.set_yticks(range(m), labels)
    mid = (vmin + vmax) / 2
    for i in range(m):
        for j in range(k):
            v = matrix[i, j]
            text = "n/a" if not np.isfinite(v) else fmt.format(v)
            if low is not None and high is not None and np.isfinite(low[i, j]):
                text += f"\n[{fmt.format(low[i, j])}, {fmt.format(high[i, j])}]"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if np.isfinite(v) and v > mid else "black")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label(colorbar_label)
    save_figure(fig, stem)
    return fig


def heatmap_panels(
    panels: Sequence[tuple[str, np.ndarray]],
    labels: Sequence[str],
    *,
    title: str,
    stem: str | os.PathLike[str],
    fmt: str = "{:.3f}",
):
    """Category matrices side by side: all but the last on one shared scale from 0, the last
    (a difference, e.g. model - untrained) on a diverging scale centred at 0.

    panels: (title, float [m, m]) pairs.
    """
    plt = _pyplot()
    k = len(panels)
    m = len(labels)
    fig, axes = plt.subplots(1, k, figsize=(1.05 * m * k + 1.5 * k, 1.0 * m + 2.2), squeeze=False)
    same = [np.asarray(p, dtype=np.float64) for _, p in panels[:-1]]
    vmax = max(float(np.nanmax(p)) for p in same) if same else 1.0
    diff = np.asarray(panels[-1][1], dtype=np.float64)
    dmax = float(np.nanmax(np.abs(diff))) or 1e-9
    for j, (ax, (name, mat)) in enumerate(zip(axes[0], panels)):
        mat = np.asarray(mat, dtype=np.float64)
        last = j == k - 1
        im = ax.imshow(mat, cmap="RdBu_r" if last else "Blues", vmin=-dmax if last else 0.0,
                       vmax=dmax if last else vmax)
        ax.set_xticks(range(m), labels, rotation=30, ha="right")
        ax.set_yticks(range(m), labels if j == 0 else [""] * m)
        for a in range(m):
            for b in range(m):
                v = mat[a, b]
                strong = abs(v) > dmax * 0.6 if last else v > vmax * 0.6
                ax.text(b, a, "n/a" if not np.isfinite(v) else (("{:+.3f}" if last else fmt).format(v)),
                        ha="center", va="center", fontsize=7, color="white" if strong else "black")
        ax.set_title(name, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, stem)
    return fig


def length_quantiles(
    lengths: dict[str, np.ndarray],
    *,
    title: str,
    stem: str | os.PathLike[str],
    ylabel: str = "T (tokens)",
):
    """Instruction length per category as quantiles: box = quartiles, line = median, whiskers = 5% and
    95%, dots beyond; log scale (lengths span two orders of magnitude). lengths: category -> int [n_c]."""
    plt = _pyplot()
    names = list(lengths)
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2.5, 3.8))
    ax.boxplot([np.asarray(lengths[c], dtype=np.float64) for c in names], whis=(5, 95), showmeans=True,
               meanprops={"marker": "^", "markersize": 5}, flierprops={"markersize": 2})
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
    ax.set_yscale("log")
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter  # deferred: matplotlib: see _pyplot

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(title, fontsize=10)
    save_figure(fig, stem)
    return fig


def layer_profiles(
    per_layer: dict[str, np.ndarray],
    categories: Sequence[str],
    *,
    title: str,
    stem: str | os.PathLike[str],
    ylabel: str = "mean ISNs per instruction",
    low: dict[str, np.ndarray] | None = None,
    high: dict[str, np.ndarray] | None = None,
    reference: dict[str, np.ndarray] | None = None,
    reference_label: str = "untrained (mean of seeds)",
):
    """Fig. 5: ISNs per layer per category, one panel per model (e.g. base, fine-tuned).

    per_layer: model label -> float [n_categories, n_layers] mean ISN counts; low/high: the same
    keys -> float [n_categories, n_layers] interval bounds (drawn as bands); reference: the same
    keys -> float [n_categories, n_layers] drawn dashed (e.g. the untrained model).
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator  # deferred: matplotlib: see _pyplot

    panels = list(per_layer.items())
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False, sharey=True)
    for ax, (name, values) in zip(axes[0], panels):
        values = np.asarray(values, dtype=np.float64)
        x = np.arange(values.shape[1])
        for c, cat in enumerate(categories):
            line = ax.plot(x, values[c], marker="o", markersize=3, label=cat)[0]
            if low is not None and high is not None and name in low:
                ax.fill_between(x, np.asarray(low[name])[c], np.asarray(high[name])[c], color=line.get_color(),
                                alpha=0.18, linewidth=0)
            if reference is not None and name in reference:
                ax.plot(x, np.asarray(reference[name])[c], linestyle="--", linewidth=1, color=line.get_color(),
                        label=reference_label if c == 0 else None)
        ax.set_title(name, fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    save_figure(fig, stem)
    return fig


def venn_bars(
    counts: dict[str, np.ndarray],
    *,
    title: str,
    stem: str | os.PathLike[str],
    labels: tuple[str, str, str] = ("base only", "both", "fine-tuned only"),
):
    """Fig. 6: per layer, stacked bars of ISNs in base only / both / fine-tuned only.

    counts: instruction label -> int [n_layers, 3]; one panel per instruction.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator  # deferred: matplotlib: see _pyplot

    items = list(counts.items())
    cols = min(3, len(items))
    rows = int(np.ceil(len(items) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    colors = ("#4c72b0", "#8c8c8c", "#dd8452")
    for ax, (name, c) in zip(axes.ravel(), items):
        c = np.asarray(c)
        x = np.arange(c.shape[0])
        bottom = np.zeros(c.shape[0])
        for k in range(3):
            ax.bar(x, c[:, k], bottom=bottom, color=colors[k], label=labels[k], width=0.8)
            bottom += c[:, k]
        ax.set_title(name, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer")
        ax.set_ylabel("ISNs")
    for ax in axes.ravel()[len(items):]:
        ax.axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_figure(fig, stem)
    return fig


def category_bars(
    values: np.ndarray,
    categories: Sequence[str],
    *,
    title: str,
    stem: str | os.PathLike[str],
    ylabel: str,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
    series: Sequence[str] | None = None,
):
    """Bars per category (one group per series), error bars from CIs: values float [n_series, m] or [m]."""
    plt = _pyplot()
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    n_series, m = values.shape
    fig, ax = plt.subplots(figsize=(1.1 * m + 2.5, 3.6))
    width = 0.8 / n_series
    for s in range(n_series):
        x = np.arange(m) + (s - (n_series - 1) / 2) * width
        err = None
        if low is not None and high is not None:
            lo = np.atleast_2d(low)[s]
            hi = np.atleast_2d(high)[s]
            err = np.vstack([values[s] - lo, hi - values[s]])
        ax.bar(x, values[s], width=width, yerr=err, capsize=3,
               label=None if series is None else series[s])
        for xi, v in zip(x, values[s]):
            ax.text(xi, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(m), categories, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if series is not None:
        ax.legend(fontsize=8)
    save_figure(fig, stem)
    return fig


def causal_effect(
    effect: np.ndarray,
    labels: Sequence[str],
    set_rates: Sequence[float],
    random_rates: Sequence[Sequence[float]],
    *,
    title: str,
    stem: str | os.PathLike[str],
    test_text: str,
):
    """The held-out causal check in one figure: the effect matrix with the test written under it,
    and beside it each set's mean firing rate against its matched random draws'.

    effect: float [m, m] (zeroed set in rows, evaluated category in columns), drawn on a diverging
    scale centred at 0 so that a sign is never a shade; set_rates: [m]; random_rates: [m][draws].
    ``test_text``: the specificity, its interval and the permutation test's p (a few short lines).
    """
    plt = _pyplot()
    effect = np.asarray(effect, dtype=np.float64)
    m = effect.shape[0]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(1.9 * m + 4.0, 1.0 * m + 3.2), layout="constrained",
                                 gridspec_kw={"width_ratios": [1.4, 1.0]})
    finite = effect[np.isfinite(effect)]
    bound = float(np.max(np.abs(finite))) if finite.size and np.max(np.abs(finite)) > 0 else 1.0
    im = ax.imshow(effect, cmap="RdBu_r", vmin=-bound, vmax=bound)
    ax.set_xticks(range(m), labels, rotation=30, ha="right")
    ax.set_yticks(range(m), labels)
    for i in range(m):
        for j in range(m):
            v = effect[i, j]
            ax.text(j, i, "n/a" if not np.isfinite(v) else f"{v:+.3f}", ha="center", va="center", fontsize=8,
                    fontweight="bold" if i == j else "normal",
                    color="white" if np.isfinite(v) and abs(v) > 0.6 * bound else "black")
    ax.set_xlabel("evaluated category (held-out instructions)")
    ax.set_ylabel("zeroed set (built from other instructions)")
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("ΔNLL(set) − ΔNLL(matched random), nats/token")
    ax.set_title(test_text, fontsize=9, loc="left")
    x = np.arange(m)
    bx.bar(x, set_rates, width=0.6, color="#4c72b0", label="set: mean firing rate")
    for d in range(max((len(r) for r in random_rates), default=0)):
        ys = [r[d] if d < len(r) else np.nan for r in random_rates]
        bx.scatter(x + (d - 1) * 0.12, ys, marker="x", color="#dd8452", zorder=3,
                   label="matched random draws" if d == 0 else None)
    bx.set_xticks(x, labels, rotation=30, ha="right")
    bx.set_ylim(0, 1)
    bx.set_ylabel("fraction of tokens on which a neuron fires")
    bx.set_title("rate match of the random sets", fontsize=9)
    bx.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, stem)
    return fig
