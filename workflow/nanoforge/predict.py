"""Predict recipes, or sweep a variable of one, with trained synthesis models.

    python -m nanoforge.predict --model results/models/size_et_chem \\
        --model results/models/shape_et_chem recipes.yaml --out predictions.parquet
    python -m nanoforge.predict --model ... --sweep sweeps/example.yaml --out sweep.parquet

Without ``--model`` every model folder under ``results/models`` is used. Input: a YAML of
hand-written recipes, the processed-CSV layout or a recipes.parquet table
(``nanoforge.synthesis.query``); output: one row per recipe (predicted size median and
interval, shape probabilities, nearest training recipes, applicability-domain flag), also
printed. ``--data`` (the recipe table) warns when the models were trained on other data.
A sweep also writes a figure next to its table (same name, ``.png``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import polars as pl

from nanoforge.safe_io import SafeLoadError, load_yaml_safely
from nanoforge.chemicals import ChemicalTable, ChemicalsTableError

from nanoforge.synthesis.final import load_model
from nanoforge.synthesis.persist import ModelFileError
from nanoforge.synthesis.query import (RecipeInputError, predict, read_recipes, sweep_figure,
                                       sweep_recipes)

log = logging.getLogger(__name__)


def load_models(folders, data=None) -> list:
    if not folders:
        raise ModelFileError("no model folders given (train them with: snakemake results/models/<run>)")
    return [load_model(f, data=data) for f in folders]


def predict_file(model_dirs, recipes_path, out, data=None, abbreviations=None, shapes_list=None) -> pl.DataFrame:
    """recipes (YAML/CSV/parquet) -> predictions parquet."""
    if not model_dirs:
        raise ModelFileError("no model folders given (train them with: snakemake results/models/<run>)")
    # the input is checked first, against the chemicals table saved with the model
    recipes = read_recipes(recipes_path, ChemicalTable.read(Path(model_dirs[0]) / "chemicals.csv"),
                           abbreviations, shapes_list)
    models = load_models(model_dirs, data)
    pred = predict(recipes, models)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pred.write_parquet(out)
    return pred


def sweep_file(model_dirs, sweep_path, out, figure=None, data=None) -> pl.DataFrame:
    """sweeps/<name>.yaml -> the grid's predictions (parquet) and figure (png)."""
    models = load_models(model_dirs, data)
    path = Path(sweep_path)
    try:
        doc = load_yaml_safely(path)
    except (OSError, SafeLoadError) as exc:
        raise RecipeInputError(f"{path}: cannot read the sweep ({exc})") from None
    recipes, variables = sweep_recipes(doc, models[0].featurizer.chemicals, str(path))
    pred = predict(recipes, models).with_columns(recipes.select(variables))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pred.write_parquet(out)
    sweep_figure(pred, variables, figure or Path(out).with_suffix(".png"),
                 title=f"{path.stem}: {recipes['product'][0]}, " + " x ".join(variables))
    return pred


def summary(pred: pl.DataFrame) -> str:
    """A short text table of the predictions."""
    lines = []
    for r in pred.iter_rows(named=True):
        parts = [f"{r['recipe_id']} ({r['product']})"]
        if "size_pred_nm" in r:
            parts.append(f"size {r['size_pred_nm']:.2f} nm [{r['size_lo_nm']:.2f}, {r['size_hi_nm']:.2f}]")
        if "shape_pred" in r:
            parts.append(f"shape {r['shape_pred']} ({r['p_' + r['shape_pred']]:.2f})")
        if "neighbour_ids" in r and r["neighbour_ids"]:
            parts.append("nearest " + ", ".join(f"{i} ({s:g} nm, d {d:.2f})" for i, s, d in
                                                 zip(r["neighbour_ids"][:3], r["neighbour_sizes_nm"][:3],
                                                     r["neighbour_distances"][:3])))
        parts.append("in domain" if r["in_domain"] else f"OUT OF DOMAIN: {r['domain_reason']}")
        lines.append("; ".join(parts))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nanoforge.predict", description=__doc__.split("\n\n")[0])
    ap.add_argument("recipes", nargs="?", help="recipes to predict: .yaml, .csv (processed layout) or .parquet")
    ap.add_argument("--model", action="append", default=[], help="a model folder (repeat for size and shape)")
    ap.add_argument("--sweep", help="a sweep file (sweeps/<name>.yaml) instead of recipes")
    ap.add_argument("--out", required=True, help="output parquet")
    ap.add_argument("--data", help="the recipe table, to warn when the models were trained on other data")
    ap.add_argument("--abbreviations", default="resources/recipes/chemical_abbreviations.xlsx",
                    help="CSV input: the abbreviations workbook")
    ap.add_argument("--shapes-list", default="resources/recipes/shapes_list.txt", help="CSV input: the shape classes")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if bool(args.recipes) == bool(args.sweep):
        ap.error("give either a recipes file or --sweep")
    models = args.model or sorted(str(p) for p in Path("results/models").glob("*") if (p / "manifest.json").is_file())
    try:
        if args.sweep:
            pred = sweep_file(models, args.sweep, args.out, data=args.data)
        else:
            pred = predict_file(models, args.recipes, args.out, args.data, args.abbreviations, args.shapes_list)
    except (RecipeInputError, ModelFileError, ChemicalsTableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(pred))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
