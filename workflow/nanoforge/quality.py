"""Data-quality summary of the ingested recipes: counts per source, as a long table and a
figure.

The table (``quality_summary.csv``) has columns ``source``, ``category``, ``value``,
``count``. Categories:

- ``rows``: ``read``, ``accepted``, ``rejected`` (read = accepted + rejected);
- ``product``, ``shape``, ``label_source``: accepted recipes;
- ``rejection_reason``: rejected rows by their first reason (sums to ``rows/rejected``);
- ``rejection_reason_any``: rejected rows by every reason they have;
- ``flag``: accepted recipes with a nulled value or an unknown name (``non_numeric_count``
  ...);
- ``unknown_chemical``: accepted recipes per reactant name not in the abbreviation workbook;
- ``reactant_role``: reactant entries of accepted recipes by role.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

CATEGORIES = ("rows", "product", "shape", "label_source", "rejection_reason",
              "rejection_reason_any", "flag", "unknown_chemical", "reactant_role")
SUMMARY_SCHEMA = {"source": pl.String, "category": pl.String, "value": pl.String, "count": pl.Int64}


def _counts(df: pl.DataFrame, column: str, category: str) -> pl.DataFrame:
    return (
        df.group_by("source", column)
        .len()
        .select(
            pl.col("source"),
            pl.lit(category).alias("category"),
            pl.col(column).cast(pl.String).fill_null("<null>").alias("value"),
            pl.col("len").cast(pl.Int64).alias("count"),
        )
    )


def summarize(recipes: pl.DataFrame, rejected: pl.DataFrame) -> pl.DataFrame:
    """Long table of counts per source and category (see module docstring)."""
    sources = list(dict.fromkeys(recipes["source"].to_list() + rejected["source"].to_list()))
    acc = recipes.group_by("source").len().rename({"len": "accepted"})
    rej = rejected.group_by("source").len().rename({"len": "rejected"})
    rows = (
        pl.DataFrame({"source": sources}, schema={"source": pl.String})
        .join(acc, on="source", how="left")
        .join(rej, on="source", how="left")
        .fill_null(0)
        .with_columns(read=pl.col("accepted") + pl.col("rejected"))
        .unpivot(["read", "accepted", "rejected"], index="source", variable_name="value", value_name="count")
        .select("source", pl.lit("rows").alias("category"), "value", pl.col("count").cast(pl.Int64))
    )
    parts = [
        rows,
        _counts(recipes, "product", "product"),
        _counts(recipes, "shape", "shape"),
        _counts(recipes, "label_source", "label_source"),
        _counts(rejected, "reason", "rejection_reason"),
        _counts(rejected.select("source", pl.col("reasons").list.unique()).explode("reasons"),
                "reasons", "rejection_reason_any"),
        _counts(recipes.select("source", "flags").explode("flags").drop_nulls("flags"), "flags", "flag"),
        _counts(recipes.select("source", pl.col("unknown_chemicals").list.unique())
                .explode("unknown_chemicals").drop_nulls("unknown_chemicals"),
                "unknown_chemicals", "unknown_chemical"),
        _counts(recipes.select("source", pl.col("reactants").list.eval(pl.element().struct.field("role")))
                .explode("reactants").drop_nulls("reactants"), "reactants", "reactant_role"),
    ]
    out = pl.concat([p.cast(SUMMARY_SCHEMA) for p in parts])
    order = {s: i for i, s in enumerate(sources)}
    cat_order = {c: i for i, c in enumerate(CATEGORIES)}
    value_order = {"read": 0, "accepted": 1, "rejected": 2}
    return (
        out.with_columns(
            _s=pl.col("source").replace_strict(order, return_dtype=pl.Int64),
            _c=pl.col("category").replace_strict(cat_order, return_dtype=pl.Int64),
            _v=pl.col("value").replace_strict(value_order, default=9, return_dtype=pl.Int64),
        )
        .sort(["_s", "_c", "_v", "count", "value"], descending=[False, False, False, True, False])
        .drop("_s", "_c", "_v")
    )


def _pivot(summary: pl.DataFrame, category: str, sources: list[str]) -> pl.DataFrame:
    """value x source count table for one category, sorted by total, descending."""
    part = summary.filter(pl.col("category") == category)
    if part.is_empty():
        return pl.DataFrame({"value": []}, schema={"value": pl.String})
    wide = part.pivot(on="source", index="value", values="count").fill_null(0)
    for s in sources:
        if s not in wide.columns:
            wide = wide.with_columns(pl.lit(0).alias(s))
    wide = wide.select("value", *sources)
    return wide.with_columns(_t=pl.sum_horizontal(sources)).sort(["_t", "value"], descending=[True, False]).drop("_t")


def _hbar(ax, wide: pl.DataFrame, sources: list[str], colors, title: str, top: int, empty_text: str):
    import numpy as np

    ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
    if wide.height == 0:
        ax.text(0.5, 0.5, empty_text, ha="center", va="center", transform=ax.transAxes, fontsize=9)
        ax.set_axis_off()
        return
    rest = wide.height - top
    wide = wide.head(top)
    labels = wide["value"].to_list()
    y = np.arange(len(labels))
    left = np.zeros(len(labels))
    for s, color in zip(sources, colors):
        vals = wide[s].to_numpy().astype(float)
        ax.barh(y, vals, left=left, color=color, label=s, height=0.75)
        left += vals
    for yi, total in zip(y, left):
        ax.text(total, yi, f" {int(total)}", va="center", fontsize=7)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_ylim(max(len(labels), 6) - 0.5, -0.5)  # top to bottom; few bars stay thin
    ax.set_xlim(0, left.max() * 1.15 if left.max() > 0 else 1)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel("rows", fontsize=8)
    if rest > 0:
        ax.text(1.0, -0.1, f"+{rest} more not shown", ha="right", va="top", transform=ax.transAxes, fontsize=7)


def plot_summary(summary: pl.DataFrame, path: str | Path, top: int = 15) -> Path:
    """Six panels: rows accepted/rejected per source, top rejection reasons, flags on
    accepted rows, top products, shapes, label sources."""
    from nanoforge.plotting import pyplot, save_figure

    plt = pyplot()
    import numpy as np

    sources = list(dict.fromkeys(summary["source"].to_list()))
    cmap = plt.get_cmap("tab10")
    colors = [cmap(i % 10) for i in range(len(sources))]
    fig, axes = plt.subplots(2, 3, figsize=(16, 10), layout="constrained")

    # (a) rows per source
    ax = axes[0, 0]
    ax.set_title("a  Rows read per source: accepted / rejected", loc="left", fontsize=10, fontweight="bold")
    rows = _pivot(summary, "rows", sources)
    get = {r["value"]: r for r in rows.iter_rows(named=True)}
    x = np.arange(len(sources))
    acc = np.array([get.get("accepted", {}).get(s, 0) for s in sources], dtype=float)
    rej = np.array([get.get("rejected", {}).get(s, 0) for s in sources], dtype=float)
    ax.bar(x, acc, color="#4c9a2a", label="accepted")
    ax.bar(x, rej, bottom=acc, color="#c0392b", label="rejected")
    for xi, a, r in zip(x, acc, rej):
        pct = 100 * r / (a + r) if a + r else 0
        ax.text(xi, a + r, f"{int(a)} + {int(r)}\n({pct:.1f}% rejected)", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, sources, fontsize=9)
    ax.set_ylabel("rows", fontsize=8)
    ax.set_ylim(0, max((acc + rej).max(), 1) * 1.2)
    ax.legend(fontsize=8, loc="lower right")

    _hbar(axes[0, 1], _pivot(summary, "rejection_reason", sources), sources, colors,
          "b  Rejected rows by (first) reason", top, "no rejected rows")
    _hbar(axes[0, 2], _pivot(summary, "flag", sources), sources, colors,
          "c  Accepted rows with a flag (value set to null)", top, "no flags")
    _hbar(axes[1, 0], _pivot(summary, "product", sources), sources, colors,
          f"d  Top {top} products (accepted rows)", top, "no accepted rows")
    _hbar(axes[1, 1], _pivot(summary, "shape", sources), sources, colors,
          "e  Shapes (accepted rows)", top, "no accepted rows")
    _hbar(axes[1, 2], _pivot(summary, "label_source", sources), sources, colors,
          "f  Label source (accepted rows)", top, "no accepted rows")

    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors]
    fig.legend(handles, sources, loc="outside upper right", ncols=len(sources), fontsize=9, title="source")
    fig.suptitle("Recipe data quality", fontsize=13, fontweight="bold", x=0.01, ha="left")
    return save_figure(fig, path)


def write_summary(recipes_path: str | Path, rejected_path: str | Path,
                  table_path: str | Path, figure_path: str | Path) -> pl.DataFrame:
    from nanoforge import tables

    recipes = pl.read_parquet(recipes_path)
    rejected = pl.read_parquet(rejected_path)
    tables.validate_table(recipes, "recipes")
    tables.validate_table(rejected, "rejected")
    summary = summarize(recipes, rejected)
    tables.write_csv(summary, table_path)
    plot_summary(summary, figure_path)
    return summary
