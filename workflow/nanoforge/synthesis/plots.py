"""Figures of the synthesis harness: parity plot (size) and confusion matrix (shape)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from nanoforge.plotting import pyplot, save_figure
from nanoforge.synthesis.metrics import shape_metrics, size_metrics


def parity_plot(predictions: pl.DataFrame, path: str | Path, title: str = "") -> Path:
    """True vs predicted size of every validation row, coloured by split, with y = x."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 5))
    folds = predictions["fold"].unique(maintain_order=True).to_list()
    cmap = plt.get_cmap("tab10")
    for i, f in enumerate(folds):
        sub = predictions.filter(pl.col("fold") == f)
        ax.scatter(sub["size_true_nm"], sub["size_pred_nm"], s=10, alpha=0.6, color=cmap(i % 10),
                   label=f"split {f}", edgecolors="none")
    t = predictions["size_true_nm"].to_numpy()
    p = predictions["size_pred_nm"].to_numpy()
    hi = float(max(t.max(), p.max())) * 1.05
    ax.plot([0, hi], [0, hi], color="black", lw=1)
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_aspect("equal")
    m = size_metrics(t, p)
    ax.set_xlabel("measured size (nm)")
    ax.set_ylabel("predicted size (nm)")
    ax.set_title(f"{title}\npooled MAE {m['mae_nm']:.2f} nm, R² {m['r2']:.2f}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", markerscale=1.5)
    fig.tight_layout()
    return save_figure(fig, path, dpi=130)


def confusion_plot(predictions: pl.DataFrame, path: str | Path, classes: list[str] | None = None,
                   title: str = "") -> Path:
    """Confusion matrix of the validation rows: counts, coloured by the share of each true
    class (row-normalised)."""
    from sklearn.metrics import confusion_matrix

    plt = pyplot()
    t = predictions["shape_true"].to_numpy().astype(str)
    p = predictions["shape_pred"].to_numpy().astype(str)
    present = sorted(set(t) | set(p))
    labels = [c for c in (classes or present) if c in present] + [c for c in present if classes and c not in classes]
    cm = confusion_matrix(t, p, labels=labels)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n + 2, 1.0 + 0.55 * n + 1.5))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_xlabel("predicted shape")
    ax.set_ylabel("true shape")
    m = shape_metrics(t, p)
    ax.set_title(f"{title}\npooled accuracy {m['accuracy']:.3f}, macro F1 {m['f1_macro']:.3f}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=130)
