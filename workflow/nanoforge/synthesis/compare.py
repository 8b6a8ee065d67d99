"""The comparison table: every run under every protocol (mean and standard deviation over
splits) next to the paper's published numbers and the anchors measured when the protocols
were set up (docs/architecture.md, "Evaluation protocols")."""

from __future__ import annotations

import html
from pathlib import Path

import polars as pl

from nanoforge.synthesis.metrics import SUMMARY_FOLDS

# The paper transformer's MAE (nm) on each product it held out (protocol U).
PAPER_U_MAE_NM = {"PbSe": 2.65, "Ag2S": 3.19, "Ni": 2.01, "Cs2NaBiCl6": 1.48}

# Published (paper) and measured (re-run) reference numbers. Size rows: MAE nm, R²;
# shape rows: accuracy. Protocol U: the paper's per-product MAE and their mean.
ANCHORS = [
    {"protocol": "P", "task": "size", "with_size": False,
     "entry": "paper transformer, pretrain+finetune (best epoch picked on the validation fold)",
     "source": "paper", "mae_nm": 1.3995, "r2": 0.720},
    {"protocol": "P", "task": "size", "with_size": False, "entry": "paper random forest",
     "source": "paper", "mae_nm": 1.631, "r2": 0.690},
    {"protocol": "P", "task": "size", "with_size": False,
     "entry": "random forest re-run on the same folds", "source": "re-run", "mae_nm": 1.634,
     "r2": 0.699},
    {"protocol": "G", "task": "size", "with_size": False,
     "entry": "same random forest under protocol G", "source": "re-run", "mae_nm": 2.99,
     "r2": 0.17},
    {"protocol": "P", "task": "shape", "with_size": True,
     "entry": "paper transformer (true size as input)", "source": "paper", "accuracy": 0.893},
    {"protocol": "P", "task": "shape", "with_size": True, "entry": "random forest re-run on the same folds",
     "source": "re-run", "accuracy": 0.856},
    {"protocol": "U", "task": "size", "with_size": False,
     "entry": "paper transformer: " + ", ".join(f"{k} {v}" for k, v in PAPER_U_MAE_NM.items()) + " (mean)",
     "source": "paper", "mae_nm": sum(PAPER_U_MAE_NM.values()) / len(PAPER_U_MAE_NM)},
]

COLUMNS = {
    "protocol": pl.String, "task": pl.String, "with_size": pl.Boolean, "entry": pl.String,
    "source": pl.String, "n_splits": pl.Int64, "mae_nm": pl.Float64, "mae_nm_std": pl.Float64,
    "rmse_nm": pl.Float64, "mape_pct": pl.Float64, "r2": pl.Float64, "r2_std": pl.Float64,
    "accuracy": pl.Float64, "accuracy_std": pl.Float64, "f1_weighted": pl.Float64,
    "f1_macro": pl.Float64, "f1_macro_std": pl.Float64,
    "interval_coverage": pl.Float64,  # share of validation rows in the 80 % interval (models that give one)
}


def comparison_table(metrics: list[pl.DataFrame], anchors: bool = True) -> pl.DataFrame:
    """One row per (run, protocol) from the runs' metrics tables, plus the anchors."""
    rows = []
    for table in metrics:
        if table.height == 0:
            continue
        mean = table.filter(pl.col("fold") == "mean").row(0, named=True)
        std = table.filter(pl.col("fold") == "std").row(0, named=True)
        n_splits = table.filter(~pl.col("fold").is_in(SUMMARY_FOLDS)).height
        row = {
            "protocol": mean["protocol"], "task": mean["task"], "with_size": mean["with_size"],
            "entry": f"{mean['run']} ({mean['model']} on {mean['features']})",
            "source": "this workflow", "n_splits": n_splits,
        }
        if mean["task"] == "size":
            row.update(mae_nm=mean["mae_nm"], mae_nm_std=std["mae_nm"], rmse_nm=mean["rmse_nm"],
                       mape_pct=mean["mape_pct"], r2=mean["r2"], r2_std=std["r2"],
                       interval_coverage=mean.get("interval_coverage"))
        else:
            row.update(accuracy=mean["accuracy"], accuracy_std=std["accuracy"],
                       f1_weighted=mean["f1_weighted"], f1_macro=mean["f1_macro"],
                       f1_macro_std=std["f1_macro"])
        rows.append(row)
    if anchors:
        rows += [dict(a) for a in ANCHORS]
    full = [{k: r.get(k) for k in COLUMNS} for r in rows]
    out = pl.DataFrame(full, schema=COLUMNS)
    order = {"P": 0, "G": 1, "U": 2}
    return (
        out.with_columns(
            pl.col("protocol").replace_strict(order, default=9, return_dtype=pl.Int64).alias("_p"),
            (pl.col("source") != "this workflow").alias("_s"),
        )
        .sort(["_p", "task", "with_size", "_s", "mae_nm", "accuracy"],
              descending=[False, True, False, False, False, True], nulls_last=True)
        .drop("_p", "_s")
    )


def _fmt(v, digits=3) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "" if v != v else f"{v:.{digits}f}"
    return str(v)


def format_text(table: pl.DataFrame) -> str:
    """A plain-text table for the terminal (the benchmark command prints it)."""
    head = ["protocol", "task", "size in", "entry", "source", "MAE nm", "± std", "R²", "80% cov.", "acc.",
            "± std", "F1 macro"]
    lines = []
    for r in table.iter_rows(named=True):
        task = r["task"] + ("" if r["task"] == "size" else "")
        lines.append([
            r["protocol"], task, _fmt(r["with_size"]) if r["task"] == "shape" else "",
            r["entry"], r["source"], _fmt(r["mae_nm"]), _fmt(r["mae_nm_std"]), _fmt(r["r2"]),
            _fmt(r.get("interval_coverage")), _fmt(r["accuracy"]), _fmt(r["accuracy_std"]), _fmt(r["f1_macro"]),
        ])
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:{'<' if i in (0, 1, 2, 3, 4) else '>'}{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*l) for l in lines]
    return "\n".join(out)


def write_html(table: pl.DataFrame, path: str | Path, title: str = "Synthesis models") -> Path:
    """The table as a small standalone HTML page (for the Snakemake report)."""
    cols = list(table.columns)
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in cols) + "</tr>"
        for r in table.iter_rows(named=True)
    )
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:3px 6px;text-align:right}"
        "td:nth-child(-n+5),th:nth-child(-n+5){text-align:left}</style></head><body>"
        f"<h2>{html.escape(title)}</h2><p>Mean over validation splits (± standard deviation "
        "over splits). Rows with source <i>paper</i> are published numbers, <i>re-run</i> "
        "anchors measured when the protocols were set up.</p><table><tr>"
        + "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        + f"</tr>\n{rows}</table></body></html>\n"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
