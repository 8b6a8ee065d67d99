"""Recipes predicted to give a target size (and shape), from trained synthesis models.

    python -m nanoforge.design --product PbSe --size 6.5 [--shape cube] [--top 10] [--out design.csv]
    python -m nanoforge.design --product PbSe --validate [--families 5]

Candidates are varied from the chemistries the training recipes hold for the product (or,
flagged, for the most similar products) within their observed ranges, and ranked by the
predicted probability of a size within --tolerance nm of the target (times the probability of
the shape), out-of-domain candidates penalised (``nanoforge.synthesis.design``). --validate
runs the leave-family-out check instead (retrains the size model once per family: minutes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl

from nanoforge.safe_io import SafeLoadError, load_yaml_safely
from nanoforge.synthesis.design import DesignError, candidates, describe_recipe, pool_for, rank, validate
from nanoforge.synthesis.final import load_model, read_harness
from nanoforge.synthesis.persist import ModelFileError
from nanoforge.tables import write_csv


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nanoforge.design", description=__doc__.split("\n\n")[0])
    ap.add_argument("--product", required=True)
    ap.add_argument("--size", type=float, help="target size, nm")
    ap.add_argument("--shape", help="target shape class (needs a shape model)")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--tolerance", type=float, default=0.5, help="nm either side of the target")
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="results/models", help="folder of the trained models")
    ap.add_argument("--size-model", default="size_et_chem")
    ap.add_argument("--shape-model", default="shape_et_chem")
    ap.add_argument("--recipes", default="results/recipes/recipes.parquet", help="the recipe table the models learnt from")
    ap.add_argument("--out", help="write the top recipes here (.csv or .parquet)")
    ap.add_argument("--validate", action="store_true", help="leave-family-out check instead of a design")
    ap.add_argument("--families", type=int, default=5, help="--validate: families held out")
    ap.add_argument("--config", default="config.yaml", help="--validate: the workflow config")
    ap.add_argument("--results", default="results/synthesis", help="--validate: the harness's outputs")
    args = ap.parse_args(argv)
    try:
        if args.validate:
            recipes = pl.read_parquet(args.recipes)
            from nanoforge.config import load_config
            from nanoforge.chemicals import DEFAULT_PATH

            cfg = load_config(args.config)["synthesis"]
            recipes = recipes.filter(pl.col("source").is_in(cfg["sources"]))
            table = validate(recipes, cfg, args.size_model, DEFAULT_PATH,
                             read_harness(args.results, args.size_model, ["G"]), args.product,
                             families=args.families, n_candidates=args.candidates, seed=args.seed,
                             tolerance=args.tolerance)
            with pl.Config(tbl_rows=100, tbl_cols=12, fmt_str_lengths=60):
                print(table.group_by("family", maintain_order=True).agg(
                    pl.len().alias("recipes"), pl.col("percentile").median().alias("median_percentile"),
                    pl.col("top10").mean().alias("share_top10")))
            print(f"all {table.height} held-out recipes: median rank percentile {table['percentile'].median():.3f} "
                  f"(random candidate 0.5), in the top 10 %: {table['top10'].mean():.3f} (random 0.10)")
            if args.out:
                write_csv(table, args.out) if args.out.endswith(".csv") else table.write_parquet(args.out)
            return 0
        if args.size is None:
            ap.error("--size is required (or --validate)")
        ranked, borrowed = design(Path(args.models) / args.size_model,
                                  Path(args.models) / args.shape_model if args.shape else None, args.recipes,
                                  args.product, args.size, shape=args.shape, n=args.candidates, seed=args.seed,
                                  tolerance=args.tolerance)
    except (DesignError, ModelFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    top = ranked.head(args.top)
    if borrowed:
        print(f"note: no training recipe makes {args.product}; chemistries borrowed from {borrowed}")
    for r in top.iter_rows(named=True):
        print(f"{r['rank']:>3}. score {r['score']:.3f} (P(size within {args.tolerance} nm) {r['p_size']:.2f}"
              + (f", P({args.shape}) {r['p_shape']:.2f}" if args.shape else "") + f"): {describe_recipe(r)}")
        print(f"     predicted {r['size_pred_nm']:.2f} nm [{r['size_lo_nm']:.2f}, {r['size_hi_nm']:.2f}]"
              + ("" if r["in_domain"] else f"; OUT OF DOMAIN: {r['domain_reason']}")
              + f"; varied from {r['based_on']}; nearest " + ", ".join(
                  f"{i} ({s:g} nm)" for i, s in zip(r["neighbour_ids"][:3], r["neighbour_sizes_nm"][:3])))
    if args.out:
        write_table(top, args.out)
        print(f"-> {args.out}")
    return 0


def design(size_dir, shape_dir, recipes_path, product: str, size: float, *, shape=None, n=1000, seed=0,
           tolerance=0.5) -> tuple[pl.DataFrame, str | None]:
    """Every candidate ranked (best first) and the products whose chemistries were borrowed."""
    recipes = pl.read_parquet(recipes_path)
    size_model = load_model(size_dir, data=recipes_path)
    shape_model = load_model(shape_dir, data=recipes_path) if shape else None
    pool, borrowed = pool_for(recipes, product, size_model)
    cands = candidates(pool, product, n, seed=seed)
    ranked = rank(cands, size_model, size, shape=shape, shape_model=shape_model, tolerance=tolerance)
    return ranked.with_columns(pl.lit(borrowed, pl.String).alias("borrowed_from")), borrowed


REQUEST_KEYS = {"product", "size_nm", "shape", "top", "candidates", "tolerance_nm"}


def run_request(request, models_dir, size_run, shape_run, recipes_path, out, seed=0) -> pl.DataFrame:
    """designs/<name>.yaml (product, size_nm; optional shape, top, candidates, tolerance_nm)
    -> the top recipes (CSV)."""
    try:
        doc = load_yaml_safely(request)
    except (OSError, SafeLoadError) as exc:
        raise DesignError(f"{request}: cannot read the design request ({exc})") from None
    if not isinstance(doc, dict) or not {"product", "size_nm"} <= set(doc) or set(doc) - REQUEST_KEYS:
        raise DesignError(f"{request}: a design request needs product and size_nm (keys: {sorted(REQUEST_KEYS)})")
    if size_run is None:
        raise DesignError("config synthesis.final.runs has no size run: nothing to design with")
    if doc.get("shape") and shape_run is None:
        raise DesignError(f"{request}: asks for a shape, but synthesis.final.runs has no shape run")
    ranked, _ = design(Path(models_dir) / size_run, Path(models_dir) / shape_run if doc.get("shape") else None,
                       recipes_path, str(doc["product"]), float(doc["size_nm"]), shape=doc.get("shape"),
                       n=int(doc.get("candidates", 1000)), seed=seed, tolerance=float(doc.get("tolerance_nm", 0.5)))
    top = ranked.head(int(doc.get("top", 10)))
    write_table(top, out)
    return top


def write_table(top: pl.DataFrame, out) -> None:
    """The top recipes as CSV (lists joined) or parquet; reagents as one text column."""
    flat = top.with_columns(pl.col("reactants").map_elements(
        lambda xs: "; ".join(f"{x['name']} {x['mmol']:.4g}" for x in xs), return_dtype=pl.String))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    if str(out).endswith(".csv"):
        flat = flat.with_columns([pl.col(c).list.eval(pl.element().cast(pl.String)).list.join(" ")
                                  for c, t in flat.schema.items() if isinstance(t, pl.List)])
        write_csv(flat, out)
    else:
        flat.write_parquet(out)


if __name__ == "__main__":
    sys.exit(main())
