"""Figures of the shape stage: the embedding coloured by cluster, a gallery of example
particles per cluster (the paper's Fig. 2c) and shape shares per sample and per a recipe
variable such as the reaction temperature (Fig. 2d)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from nanoforge.plotting import pyplot, save_figure
from nanoforge.shapes.cluster import NOISE, UNCLUSTERED
from nanoforge.shapes.descriptors import decode_crops
from nanoforge.shapes.labels import SHARE_COLUMNS
from nanoforge.vocabulary import SHAPE_CLASSES

plt = pyplot()

SHAPE_COLOURS = dict(zip(SHAPE_CLASSES, plt.get_cmap("tab20").colors[::2] + plt.get_cmap("tab20").colors[1::2]))


def _cluster_colours(ids: list[int]) -> dict[int, tuple]:
    cmap = plt.get_cmap("tab20")
    out, k = {}, 0
    for c in sorted(ids):
        if c < 0:
            out[c] = (0.75, 0.75, 0.75, 1.0)
        else:
            out[c] = cmap(k % 20)
            k += 1
    return out


def _names(mapping: pl.DataFrame) -> dict[int, str]:
    return dict(zip(mapping["cluster_id"].to_list(), mapping["shape"].to_list()))


def _save(fig, out: str | Path) -> None:
    save_figure(fig, out, bbox_inches="tight")


def plot_embedding(clusters: pl.DataFrame, mapping: pl.DataFrame, out: str | Path, n_points: int = 5000,
                   seed: int = 0) -> int:
    """Scatter of ``n_points`` clustered particles (a seeded random subset) in the first two
    UMAP dimensions, coloured by cluster; returns the number of points drawn."""
    df = clusters.filter(pl.col("cluster_id") != UNCLUSTERED).drop_nulls("umap_1")
    if df.height > n_points:
        df = df.sample(n_points, seed=seed)
    fig, ax = plt.subplots(figsize=(7.5, 6))
    names = _names(mapping)
    ids = sorted(set(df["cluster_id"].to_list()))
    colours = _cluster_colours(ids)
    y_col = "umap_2" if "umap_2" in df.columns else "umap_1"
    for c in ids:
        sub = df.filter(pl.col("cluster_id") == c)
        ax.scatter(sub["umap_1"], sub[y_col], s=3 if c >= 0 else 2, color=colours[c], alpha=0.8 if c >= 0 else 0.4,
                   label=f"{c}: {names.get(c, '?')} ({sub.height})", rasterized=True)
    if not ids:
        ax.text(0.5, 0.5, "no clustered particles", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2" if y_col == "umap_2" else "UMAP 1")
    ax.set_title(f"Shape embedding: {df.height} of {clusters.height} particles, {sum(i >= 0 for i in ids)} clusters")
    if ids:
        ax.legend(markerscale=4, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), title="cluster: shape")
    _save(fig, out)
    return df.height


def _read_gray(path: str) -> np.ndarray | None:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("L"))
    except (OSError, ValueError):
        return None


def plot_gallery(particles, clusters: pl.DataFrame, mapping: pl.DataFrame, images: pl.DataFrame | None,
                 out: str | Path, per_cluster: int = 8, max_clusters: int = 30) -> int:
    """Rows of example particles per cluster (the most typical members: highest membership
    probability, away from the border), cut from the TEM image with the mask outline drawn,
    or the mask alone where the image cannot be read. ``particles`` is the particle table
    (a DataFrame or LazyFrame: only the chosen particles' masks are read). Returns the
    number of rows."""
    lf = particles.lazy() if isinstance(particles, pl.DataFrame) else particles
    flags = lf.select("image_id", "particle_id", "touches_border").collect()
    df = clusters.select("image_id", "particle_id", "cluster_id", "cluster_probability").join(
        flags, on=["image_id", "particle_id"], how="inner").filter(pl.col("cluster_id") >= NOISE)
    counts = df.group_by("cluster_id").len().sort(["len", "cluster_id"], descending=[True, False])
    ids = [c for c in counts["cluster_id"].to_list() if c >= 0][:max_clusters]
    if NOISE in counts["cluster_id"].to_list():
        ids.append(NOISE)
    chosen = df.filter(pl.col("cluster_id").is_in(ids)).sort(
        ["cluster_id", "touches_border", "cluster_probability", "image_id", "particle_id"],
        descending=[False, False, True, False, False],
    ).group_by("cluster_id", maintain_order=True).head(per_cluster)
    masks = lf.select("image_id", "particle_id", "mask_rle").join(
        chosen.select("image_id", "particle_id").lazy(), on=["image_id", "particle_id"], how="semi").collect()
    chosen = chosen.join(masks, on=["image_id", "particle_id"], how="left", maintain_order="left")
    names = _names(mapping)
    paths = dict(zip(images["image_id"].to_list(), images["path"].to_list())) if images is not None else {}
    cache: dict[str, np.ndarray | None] = {}
    rows = max(len(ids), 1)
    fig, axes = plt.subplots(rows, per_cluster + 1, figsize=(1.3 * (per_cluster + 1), 1.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, c in enumerate(ids):
        sub = chosen.filter(pl.col("cluster_id") == c)
        n_c = int(counts.filter(pl.col("cluster_id") == c)["len"][0])
        axes[r, 0].text(0.0, 0.5, f"{c}: {names.get(c, '?')}\n{n_c} particles", fontsize=8, va="center")
        crops, r0s, c0s, _, _ = decode_crops(sub["mask_rle"], pad=0)
        for k, (crop, r0, c0, image_id) in enumerate(zip(crops, r0s, c0s, sub["image_id"].to_list())):
            ax = axes[r, k + 1]
            if crop is None:
                continue
            h, w = crop.shape
            m = max(3, int(0.25 * max(h, w)))
            if image_id not in cache:
                cache[image_id] = _read_gray(paths[image_id]) if image_id in paths else None
            img = cache[image_id]
            if img is not None:
                y0, x0 = max(0, r0 - m), max(0, c0 - m)
                y1, x1 = min(img.shape[0], r0 + h + m), min(img.shape[1], c0 + w + m)
                ax.imshow(img[y0:y1, x0:x1], cmap="gray", interpolation="nearest")
                full = np.zeros((y1 - y0, x1 - x0), np.uint8)
                full[r0 - y0 : r0 - y0 + h, c0 - x0 : c0 - x0 + w] = crop
                ax.contour(full, levels=[0.5], colors=["#ff3b30"], linewidths=0.6)
            else:
                ax.imshow(np.pad(crop, m), cmap="gray_r", interpolation="nearest")
    if not ids:
        axes[0, 0].text(0.0, 0.5, "no clustered particles", fontsize=9)
    fig.suptitle("Example particles per shape cluster (most typical members)", fontsize=10)
    _save(fig, out)
    return len(ids)


def _stacked(ax, labels: list[str], shares: np.ndarray, title: str, xlabel: str) -> None:
    bottom = np.zeros(len(labels))
    x = np.arange(len(labels))
    for k, s in enumerate(SHAPE_CLASSES):
        v = np.nan_to_num(shares[:, k])
        if v.sum() == 0:
            continue
        ax.bar(x, v, bottom=bottom, color=SHAPE_COLOURS[s], label=s, width=0.8)
        bottom += v
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of named particles")
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)


def plot_shares(samples: pl.DataFrame, recipes: pl.DataFrame, out: str | Path, variable: str = "reaction_temp_c",
                max_samples: int = 40, max_bins: int = 8) -> dict:
    """Two panels: shape shares per sample (the ``max_samples`` samples with most named
    particles) and mean shape shares of TEM-labelled recipes per value (or bin) of a recipe
    variable."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.8))
    s = samples.filter(pl.col("n_named") > 0).sort(["n_named", "sample_id"], descending=[True, False]).head(max_samples)
    s = s.sort("sample_id")
    if s.height:
        _stacked(a1, [f"{i} ({n})" for i, n in zip(s["sample_id"], s["n_named"])],
                 s.select(SHARE_COLUMNS).to_numpy().astype(float), "Shape shares per sample", "sample (named particles)")
    else:
        a1.text(0.5, 0.5, "no sample with named particles", ha="center", va="center", transform=a1.transAxes)
        a1.axis("off")
    info = {"samples": s.height, "variable": variable, "groups": 0}
    r = recipes
    if variable not in r.columns:
        raise ValueError(f"recipe variable {variable!r} is not a column of the recipe table "
                         f"(config shapes.figures.recipe_variable); columns: {r.columns}")
    if "tem_sample_ids" in r.columns:
        r = r.filter(pl.col("tem_sample_ids").is_not_null())
    r = r.drop_nulls(variable)
    if r.height:
        # shares of each recipe from its samples (particle-weighted)
        links = r.select("recipe_id", variable, "tem_sample_ids").explode("tem_sample_ids").rename(
            {"tem_sample_ids": "sample_id"})
        j = links.join(samples.select("sample_id", "n_named", *SHARE_COLUMNS), on="sample_id", how="inner")
        vals = r[variable].unique().sort()
        if vals.len() > max_bins and r[variable].dtype.is_numeric():
            edges = np.quantile(r[variable].to_numpy().astype(float), np.linspace(0, 1, max_bins + 1))
            edges = np.unique(edges)
            idx = np.clip(np.searchsorted(edges, j[variable].to_numpy().astype(float), side="right") - 1, 0,
                          len(edges) - 2)
            labels = [f"{edges[i]:g}-{edges[i + 1]:g}" for i in range(len(edges) - 1)]
            j = j.with_columns(pl.Series("group", [labels[i] for i in idx]), pl.Series("order", idx))
        else:
            j = j.with_columns(pl.col(variable).cast(pl.String).alias("group"), pl.col(variable).rank("dense").alias("order"))
        g = j.group_by("group", "order").agg(
            pl.col("n_named").sum().alias("n"),
            *[(pl.col(c).fill_null(0) * pl.col("n_named")).sum().alias(c) for c in SHARE_COLUMNS],
        ).sort("order").filter(pl.col("n") > 0)
        if g.height:
            shares = g.select(SHARE_COLUMNS).to_numpy().astype(float) / g["n"].to_numpy()[:, None]
            _stacked(a2, [f"{x} ({n})" for x, n in zip(g["group"], g["n"])], shares,
                     f"Shape shares by {variable} (TEM-labelled recipes)", f"{variable} (named particles)")
            info["groups"] = g.height
    if info["groups"] == 0:
        a2.text(0.5, 0.5, f"no TEM-labelled recipe with {variable}", ha="center", va="center", transform=a2.transAxes)
        a2.axis("off")
    handles, labels = a1.get_legend_handles_labels()
    h2, l2 = a2.get_legend_handles_labels()
    for h, lab in zip(h2, l2):
        if lab not in labels:
            handles.append(h)
            labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="center right", fontsize=8, title="shape")
        fig.subplots_adjust(right=0.86)
    _save(fig, out)
    return info
