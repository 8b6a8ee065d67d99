"""Matplotlib for the workflow's figures: the headless backend and one way to save."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (cluster nodes have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int | str = 110, **kwargs) -> Path:
    """Write ``fig`` to ``path`` (parent folders created) and close it (``dpi="figure"``:
    the figure's own dpi)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, **kwargs)
    pyplot().close(fig)
    return path
