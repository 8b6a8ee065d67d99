"""Metrics of the synthesis models, as the paper reports them: per validation fold, then
the mean and the standard deviation over folds.

Size (nm): MAE, MSE, RMSE, MAPE (percent of the true size), R². Shape: accuracy, weighted
F1 and macro F1 (over the classes present in the fold's true or predicted labels).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.metrics import accuracy_score, f1_score, r2_score

SIZE_METRICS = ("mae_nm", "mse_nm2", "rmse_nm", "mape_pct", "r2")
SHAPE_METRICS = ("accuracy", "f1_weighted", "f1_macro")


def size_metrics(y_true, y_pred) -> dict[str, float]:
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError("size_metrics needs two non-empty arrays of the same length")
    err = y_pred - y_true
    mse = float(np.mean(err**2))
    return {
        "mae_nm": float(np.mean(np.abs(err))),
        "mse_nm2": mse,
        "rmse_nm": float(np.sqrt(mse)),
        "mape_pct": float(np.mean(np.abs(err) / np.abs(y_true)) * 100.0),
        "r2": float(r2_score(y_true, y_pred)) if y_true.size > 1 else float("nan"),
    }


def shape_metrics(y_true, y_pred) -> dict[str, float]:
    """Class labels may be names or integer codes (the harness passes the paper's codes)."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError("shape_metrics needs two non-empty arrays of the same length")
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_weighted": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


COVERAGE = "interval_coverage"  # share of validation rows inside the 80 % interval (models that give one)


def interval_coverage(y_true, low, high) -> float:
    y_true = np.asarray(y_true, dtype=float)
    return float(np.mean((y_true >= np.asarray(low, float)) & (y_true <= np.asarray(high, float))))


SUMMARY_FOLDS = ("mean", "std")  # the rows summarize() adds after the per-fold rows


def metric_names(task: str) -> tuple[str, ...]:
    return SIZE_METRICS if task == "size" else SHAPE_METRICS


def summarize(per_fold: pl.DataFrame, task: str) -> pl.DataFrame:
    """Per-fold rows plus a ``mean`` and a ``std`` row (population std over folds, ddof=0,
    NaN with a single fold). ``per_fold`` has a ``fold`` column and the metric columns."""
    names = metric_names(task) + ((COVERAGE,) if COVERAGE in per_fold.columns else ())
    folds = per_fold.with_columns(pl.col("fold").cast(pl.String))
    agg = []
    for stat in SUMMARY_FOLDS:
        row = {"fold": stat}
        for m in names:
            vals = folds[m].to_numpy().astype(float)
            if stat == "mean":
                row[m] = float(np.mean(vals))
            else:
                row[m] = float(np.std(vals)) if vals.size > 1 else float("nan")
        agg.append(row)
    extra = pl.DataFrame(agg, schema={"fold": pl.String, **{m: pl.Float64 for m in names}})
    other = [c for c in folds.columns if c not in extra.columns]
    extra = extra.with_columns([pl.lit(None, dtype=folds.schema[c]).alias(c) for c in other])
    return pl.concat([folds, extra.select(folds.columns)])


def family_breakdown(predictions: pl.DataFrame) -> pl.DataFrame:
    """Where the size error of out-of-fold ``predictions`` (``family``, ``size_true_nm``,
    ``size_pred_nm``) comes from: per recipe family its rows, MAE, mean signed error (truth
    minus prediction, nm) and shares of all rows and of the summed absolute error, largest
    share first. Under protocol G one large family can carry much of the error."""
    missing = {"family", "size_true_nm", "size_pred_nm"} - set(predictions.columns)
    if missing:
        raise ValueError(f"family_breakdown: predictions lack column(s) {sorted(missing)}")
    if predictions.height == 0:
        raise ValueError("family_breakdown: no predictions")
    err = pl.col("size_true_nm") - pl.col("size_pred_nm")
    out = predictions.group_by("family").agg(
        pl.len().alias("n"),
        err.abs().mean().alias("mae_nm"),
        err.mean().alias("bias_nm"),
        err.abs().sum().alias("abs_error_nm"),
    )
    return out.with_columns(
        (pl.col("n") / predictions.height).alias("row_share"),
        (pl.col("abs_error_nm") / pl.col("abs_error_nm").sum()).fill_nan(0.0).alias("error_share"),
    ).sort(["error_share", "family"], descending=[True, False]).drop("abs_error_nm")
