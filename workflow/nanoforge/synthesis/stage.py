"""The synthesis stage as file-to-file steps (each rule's script calls one of these)."""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from pathlib import Path

import polars as pl

from nanoforge.chemicals import ChemicalTable, coverage_report, coverage_summary
from nanoforge.features.chemical import UnimolError, read_unimol
from nanoforge.features.recipe import TOKEN_SLOTS, RecipeFeaturizer, describe_columns
from nanoforge.synthesis import compare as compare_mod
from nanoforge.synthesis import plots
from nanoforge.synthesis.harness import cross_validate_run, run_spec
from nanoforge.tables import write_csv

log = logging.getLogger(__name__)

UNIMOL_ORIGIN = (
    "the paper's Uni-Mol descriptors (github.com/Sharpiless/Nanocrystals-Deep-Learning, "
    "feats/unioml_feats_20240309_1x_ours_1x_mof.pkl) converted to Parquet (name, vector)"
)


class StageError(RuntimeError):
    """A synthesis step cannot run: the message says which file or key and what to do."""


def fetch_unimol(dest: str | Path, sha256: str | None, mirrors: list[str], log_stream=sys.stderr) -> Path:
    """Copy ``unimol_descriptors.parquet`` from the first mirror folder that has it, checked
    against ``sha256``. There is no download address: the paper publishes a pickle, which
    this workflow does not unpickle."""
    from nanoforge.download import sha256sum

    dest = Path(dest)
    for folder in mirrors:
        cand = Path(folder).expanduser() / dest.name
        if cand.is_file():
            got = sha256sum(cand)
            if sha256 and got != sha256:
                raise StageError(f"{cand}: sha256 {got} differs from config synthesis.unimol.sha256 {sha256}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
                shutil.copyfile(cand, tmp.name)
            Path(tmp.name).replace(dest)
            read_unimol(dest)  # well-formed
            print(f"{dest.name}: copied from {cand} (sha256 {got})", file=log_stream)
            return dest
    raise StageError(
        f"{dest.name} is in none of the mirror folders {mirrors} (config download.mirrors). It holds "
        f"{UNIMOL_ORIGIN}. Put it at {dest}, or drop the 'uni' block from "
        "synthesis.featurize.blocks and the runs that use it."
    )


def load_recipes(path: str | Path, sources: list[str]) -> pl.DataFrame:
    recipes = pl.read_parquet(path)
    present = set(recipes["source"].unique().to_list())
    missing = [s for s in sources if s not in present]
    if missing:
        raise StageError(
            f"{path}: no recipes of source(s) {missing} (config synthesis.sources); "
            f"sources present: {sorted(present)}"
        )
    return recipes.filter(pl.col("source").is_in(sources))


def featurize(recipes_path, chemicals_path, unimol_path, sources, cfg: dict, out_features,
              out_columns, out_coverage) -> pl.DataFrame:
    """recipes.parquet (the configured sources) -> feature table, column list, coverage report."""
    recipes = load_recipes(recipes_path, sources)
    table = ChemicalTable.read(chemicals_path)
    report = coverage_report(recipes, table)
    log.info("chemicals coverage:\n%s", coverage_summary(report))
    unimol = None
    if "uni" in cfg["blocks"]:
        try:
            unimol = read_unimol(unimol_path)
        except UnimolError as exc:
            raise StageError(str(exc)) from exc
    featurizer = RecipeFeaturizer(table, blocks=tuple(cfg["blocks"]), morgan_bits=cfg["morgan_bits"],
                                  morgan_radius=cfg["morgan_radius"], unimol=unimol,
                                  token_slots=cfg.get("token_slots", TOKEN_SLOTS))
    features = featurizer.fit_transform(recipes)
    Path(out_features).parent.mkdir(parents=True, exist_ok=True)
    features.write_parquet(out_features)
    write_csv(describe_columns(features), out_columns)
    write_csv(report, out_coverage)
    log.info("%d recipes x %d feature columns", features.height, features.width)
    return features


def read_fold_table(path: str | Path) -> dict[int, int]:
    """A fold table CSV (``ID``, ``fold``; -1 = training only) as ID -> fold."""
    df = pl.read_csv(path)
    if not {"ID", "fold"} <= set(df.columns):
        raise StageError(f"{path}: a fold table needs columns ID and fold, found {df.columns}")
    return dict(zip(df["ID"].cast(pl.Int64).to_list(), df["fold"].cast(pl.Int64).to_list()))


def evaluate_synthesis(features_path, cfg: dict, protocol: str, run_name: str, seed: int, threads: int,
                       folds_path, out_predictions, out_metrics):
    """Rule evaluate_synthesis: cross-validate run ``run_name`` under ``protocol`` on the
    feature table file; write its out-of-fold predictions and per-split metrics."""
    design = pl.read_parquet(features_path)
    run = run_spec(cfg, run_name)
    fold_table = read_fold_table(folds_path) if folds_path else None
    result = cross_validate_run(design, cfg, run, protocol, seed=seed, threads=threads, fold_table=fold_table)
    Path(out_predictions).parent.mkdir(parents=True, exist_ok=True)
    result.predictions.write_parquet(out_predictions)
    write_csv(result.metrics, out_metrics)
    log.info("%s %s: %.0f s", protocol, run_name, result.seconds)
    return result


def figure(predictions_path, out, shapes_list=None):
    pred = pl.read_parquet(predictions_path)
    title = f"{pred['run'][0]}, protocol {pred['protocol'][0]}"
    if "size_pred_nm" in pred.columns:
        return plots.parity_plot(pred, out, title)
    classes = None
    if shapes_list:
        from nanoforge.recipes import read_shapes_list

        classes = read_shapes_list(shapes_list)
    return plots.confusion_plot(pred, out, classes, title)


def compare(metrics_paths, out_csv, out_html) -> pl.DataFrame:
    tables = [pl.read_csv(p, schema_overrides={"fold": pl.String, "params": pl.String}) for p in metrics_paths]
    table = compare_mod.comparison_table(tables)
    write_csv(table, out_csv)
    compare_mod.write_html(table, out_html)
    log.info("\n%s", compare_mod.format_text(table))
    return table
