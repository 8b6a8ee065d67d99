"""Sample labels from TEM particles, and their merge into the recipe table.

Particles -> samples -> recipes
-------------------------------
A particle belongs to an image (``image_id``); an image to a sample (``sample_id`` of
``results/tem/images.parquet``, set by the TEM ingestion from its sidecar or dataset
config); a sample to a recipe by, in order:

1. the sample-to-recipe table given in config ``shapes.labels.sample_recipes`` (a CSV with
   columns ``sample_id``, ``recipe_id``; ``recipe_match`` = 'table');
2. otherwise a recipe whose ``recipe_id`` equals the sample id (``recipe_match`` =
   'sample_id', e.g. images of sample ``processed_csv:123``);
3. otherwise none (``recipe_match`` = 'none'): the sample keeps its labels in
   ``sample_labels.parquet`` but labels no recipe. A table row naming a recipe that is not
   in the recipe table gives ``recipe_match`` = 'unknown_recipe' (never silently dropped).

Labels
------
Per sample (and, pooling the particles of all its samples, per recipe), over particles that
do not touch the image border and score at least ``min_score``:

- ``n_particles``; ``size_nm`` = mean equivalent diameter (nm) of those with a calibrated
  size; ``size_std_nm`` (sample standard deviation, ddof = 1); ``size_spread_pct`` =
  ``size_std_nm / size_nm * 100`` (the dataset's "Size distribution/%");
- ``share_<shape>`` for every shape class, over particles whose cluster has a shape name
  (noise and unmeasured particles excluded); ``noise_share`` over all used particles;
- ``shape`` = the class with the largest share (ties: alphabetical) and ``shape_share``.

A label is ``usable`` when at least ``min_particles`` particles have a size and at least one
has a shape; otherwise ``reason`` says why and the label is not merged.

Merge
-----
``recipes_labelled.parquet`` = ``recipes.parquet`` (ingest's output, never overwritten)
plus, for every recipe, its literature values (``literature_*``) and TEM values
(``tem_*``, null where it has none) and ``label_fields_from_tem``. With
``precedence: tem`` a usable TEM label replaces ``size_nm``, ``size_spread_pct``, ``shape``
and ``n_counted``, and sets ``label_source = 'tem'``. With
``precedence: literature`` TEM values only fill the label fields the literature left null
(``size_spread_pct``, ``n_counted``), and ``label_source`` stays 'literature'.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import polars as pl

from nanoforge import tables
from nanoforge.vocabulary import NOISE_NAME, SHAPE_CLASSES, UNMEASURED_NAME

SHARE_COLUMNS = [f"share_{s}" for s in SHAPE_CLASSES]
MATCH_VALUES = ["table", "sample_id", "none", "unknown_recipe"]


class LabelError(ValueError):
    """Inputs of the labels cannot be used; the message names the file and column/row."""


def _label_properties() -> dict:
    num = {"type": ["number", "null"]}
    return {
        "n_images": {"type": "integer", "minimum": 0},
        "n_particles_total": {"type": "integer", "minimum": 0,
                              "description": "All particles of the group, border and low-score ones included."},
        "n_border": {"type": "integer", "minimum": 0, "description": "Particles touching the image border (excluded)."},
        "n_low_score": {"type": "integer", "minimum": 0, "description": "Particles below min_score (excluded)."},
        "n_particles": {"type": "integer", "minimum": 0, "description": "Particles used for the labels."},
        "n_sized": {"type": "integer", "minimum": 0, "description": "Used particles with a calibrated size."},
        "n_named": {"type": "integer", "minimum": 0, "description": "Used particles with a shape name (not noise/unmeasured)."},
        "size_nm": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "size_std_nm": {"type": ["number", "null"], "minimum": 0},
        "size_spread_pct": {"type": ["number", "null"], "minimum": 0},
        "shape": {"enum": [*SHAPE_CLASSES, None], "description": "Dominant shape class (nanoforge.vocabulary)."},
        "shape_share": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "noise_share": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        **{c: dict(num, minimum=0, maximum=1) for c in SHARE_COLUMNS},
        "usable": {"type": "boolean"},
        "reason": {"type": ["string", "null"]},
    }


def sample_labels_schema() -> dict:
    props = {
        "sample_id": {"type": "string"},
        "recipe_id": {"type": ["string", "null"]},
        "recipe_match": {"enum": MATCH_VALUES},
        **_label_properties(),
    }
    return {"title": "results/shapes/sample_labels.parquet", "type": "object", "additionalProperties": False,
            "x-unique": ["sample_id"], "required": list(props), "properties": props}


def recipe_tem_labels_schema() -> dict:
    props = {
        "recipe_id": {"type": "string"},
        "sample_ids": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        **_label_properties(),
    }
    return {"title": "results/shapes/recipe_tem_labels.parquet", "type": "object", "additionalProperties": False,
            "x-unique": ["recipe_id"], "required": list(props), "properties": props}


TEM_COLUMNS = {
    "literature_size_nm": {"type": "number"},
    "literature_size_spread_pct": {"type": ["number", "null"]},
    "literature_shape": {"enum": list(SHAPE_CLASSES)},
    "literature_n_counted": {"type": ["integer", "null"]},
    "tem_size_nm": {"type": ["number", "null"]},
    "tem_size_spread_pct": {"type": ["number", "null"]},
    "tem_shape": {"enum": [*SHAPE_CLASSES, None], "description": "A shape class of nanoforge.vocabulary."},
    "tem_n_particles": {"type": ["integer", "null"]},
    "tem_sample_ids": {"type": ["array", "null"], "items": {"type": "string"}},
    "label_fields_from_tem": {"type": "array", "items": {"enum": ["size_nm", "size_spread_pct", "shape", "n_counted"]}},
}


def recipes_labelled_schema() -> dict:
    """The recipes table's schema plus the columns of :data:`TEM_COLUMNS`."""
    schema = copy.deepcopy(tables.load_table_schema("recipes"))
    schema["title"] = "results/recipes/recipes_labelled.parquet"
    schema["properties"].update(copy.deepcopy(TEM_COLUMNS))
    schema["required"] = list(schema["properties"])
    return schema


# ---------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------


def _need(path: str | Path, columns: list[str], what: str) -> pl.LazyFrame:
    path = Path(path)
    if not path.exists():
        raise LabelError(f"{what} not found: {path}")
    lf = pl.scan_parquet(path)
    schema = lf.collect_schema()
    missing = [c for c in columns if c not in schema]
    if missing:
        raise LabelError(f"{path}: missing column(s) {missing} ({what})")
    return lf.select(columns)


def read_sample_recipes(path: str | Path | None) -> pl.DataFrame:
    """The sample-to-recipe table (CSV: sample_id, recipe_id); an empty table for None."""
    schema = {"sample_id": pl.String, "recipe_id": pl.String}
    if path is None:
        return pl.DataFrame(schema=schema)
    path = Path(path)
    if not path.exists():
        raise LabelError(f"sample-to-recipe table not found: {path} (config shapes.labels.sample_recipes)")
    df = pl.read_csv(path, infer_schema=False)
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise LabelError(f"{path}: missing column(s) {missing}; expected sample_id, recipe_id")
    df = df.select(list(schema)).with_columns(pl.all().str.strip_chars())
    empty = df.with_row_index("row").filter(pl.col("sample_id").is_null() | (pl.col("sample_id") == "")
                                            | pl.col("recipe_id").is_null() | (pl.col("recipe_id") == ""))
    if empty.height:
        rows = ", ".join(str(r + 2) for r in empty["row"].to_list()[:5])
        raise LabelError(f"{path}: empty sample_id or recipe_id in row(s) {rows}")
    dup = df.filter(pl.col("sample_id").is_duplicated())
    if dup.height:
        raise LabelError(f"{path}: sample(s) listed twice: {sorted(set(dup['sample_id'].to_list()))[:5]}")
    return df


def match_recipes(sample_ids: list[str], recipe_ids: list[str], table: pl.DataFrame) -> pl.DataFrame:
    """sample_id -> recipe_id, recipe_match (see the module docstring)."""
    known = set(recipe_ids)
    by_table = dict(zip(table["sample_id"].to_list(), table["recipe_id"].to_list()))
    rows = []
    for s in sample_ids:
        if s in by_table:
            r = by_table[s]
            rows.append((s, r, "table") if r in known else (s, None, "unknown_recipe"))
        elif s in known:
            rows.append((s, s, "sample_id"))
        else:
            rows.append((s, None, "none"))
    return pl.DataFrame(rows, schema={"sample_id": pl.String, "recipe_id": pl.String, "recipe_match": pl.String},
                        orient="row")


def particle_rows(particles: str | Path, shapes: str | Path, images: str | Path) -> tuple[pl.DataFrame, int]:
    """One row per particle of the images in the images table: image_id, sample_id,
    eq_diameter_nm, touches_border, score, shape; and the number of particles of other
    images (e.g. the synthetic hold-out set measured in the same table), which are left out.
    An image of the table without a sample_id is an error."""
    p = _need(particles, ["image_id", "particle_id", "eq_diameter_nm", "touches_border", "score"], "particle table")
    s = _need(shapes, ["image_id", "particle_id", "shape"], "particle shape table")
    i = _need(images, ["image_id", "sample_id"], "images table").collect()
    no_sample = i.filter(pl.col("sample_id").is_null())["image_id"].sort().to_list()
    if no_sample:
        raise LabelError(f"{images}: no sample_id for image(s) {no_sample[:5]} (give them one in the TEM sidecar)")
    all_rows = p.select(pl.len()).collect().item()
    df = p.join(i.lazy(), on="image_id", how="inner").join(s, on=["image_id", "particle_id"], how="left").collect()
    return df.with_columns(pl.col("shape").fill_null(UNMEASURED_NAME)), int(all_rows - df.height)


# ---------------------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------------------


def aggregate(df: pl.DataFrame, by: str, min_score: float = 0.0, min_particles: int = 20) -> pl.DataFrame:
    """Labels per group ``by`` of a particle-row table (see the module docstring)."""
    used = ~pl.col("touches_border").fill_null(False) & (pl.col("score").fill_null(1.0) >= min_score)
    sized = used & pl.col("eq_diameter_nm").is_not_null() & pl.col("eq_diameter_nm").is_finite()
    named = used & ~pl.col("shape").is_in([NOISE_NAME, UNMEASURED_NAME])
    size = pl.when(sized).then(pl.col("eq_diameter_nm"))
    aggs = [
        pl.col("image_id").n_unique().alias("n_images"),
        pl.len().alias("n_particles_total"),
        pl.col("touches_border").fill_null(False).sum().alias("n_border"),
        (~pl.col("touches_border").fill_null(False) & (pl.col("score").fill_null(1.0) < min_score)).sum().alias("n_low_score"),
        used.sum().alias("n_particles"),
        sized.sum().alias("n_sized"),
        named.sum().alias("n_named"),
        size.mean().alias("size_nm"),
        size.std(ddof=1).alias("size_std_nm"),
        (used & (pl.col("shape") == NOISE_NAME)).sum().alias("_n_noise"),
        *[(named & (pl.col("shape") == s)).sum().alias(f"_n_{s}") for s in SHAPE_CLASSES],
    ]
    g = df.group_by(by).agg(aggs).sort(by)
    counts = (np.column_stack([g[f"_n_{s}"].to_numpy() for s in SHAPE_CLASSES]) if g.height
              else np.zeros((0, len(SHAPE_CLASSES))))
    n_named = g["n_named"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(n_named[:, None] > 0, counts / np.maximum(n_named, 1)[:, None], np.nan)
    # dominant: most particles; SHAPE_CLASSES order is not alphabetical, so break ties by name
    alpha = np.argsort(np.array(SHAPE_CLASSES))
    best_alpha = np.argmax(counts[:, alpha], axis=1) if len(counts) else np.zeros(0, int)
    best = alpha[best_alpha]
    has_shape = n_named > 0
    g = g.with_columns(
        pl.Series("shape", [SHAPE_CLASSES[b] if h else None for b, h in zip(best, has_shape)], dtype=pl.String),
        pl.Series("shape_share", [float(shares[i, b]) if h else None for i, (b, h) in enumerate(zip(best, has_shape))],
                  dtype=pl.Float64),
        pl.when(pl.col("n_particles") > 0).then(pl.col("_n_noise") / pl.col("n_particles")).alias("noise_share"),
        *[pl.Series(c, [None if np.isnan(v) else float(v) for v in shares[:, k]], dtype=pl.Float64)
          for k, c in enumerate(SHARE_COLUMNS)],
        (pl.col("size_std_nm") / pl.col("size_nm") * 100).alias("size_spread_pct"),
    )
    reason = (
        pl.when(pl.col("n_particles") == 0).then(pl.lit("no particle away from the border with enough score"))
        .when((pl.col("n_sized") == 0)).then(pl.lit("no calibrated size (images without nm_per_px)"))
        .when(pl.col("n_sized") < min_particles).then(pl.format("only {} sized particles (< min_particles {})",
                                                                pl.col("n_sized"), pl.lit(min_particles)))
        .when(pl.col("n_named") == 0).then(pl.lit("no particle with a shape name (all noise or unmeasured)"))
        .otherwise(None)
    )
    g = g.with_columns(reason.alias("reason")).with_columns(pl.col("reason").is_null().alias("usable"))
    cols = list(_label_properties())
    return g.select([by, *cols]).with_columns(
        *[pl.col(c).cast(pl.Int64) for c in ["n_images", "n_particles_total", "n_border", "n_low_score",
                                              "n_particles", "n_sized", "n_named"]],
        *[pl.col(c).cast(pl.Float64) for c in ["size_nm", "size_std_nm", "size_spread_pct", "shape_share",
                                                "noise_share", *SHARE_COLUMNS]],
    )


def build_labels(
    particles: str | Path,
    shapes: str | Path,
    images: str | Path,
    recipes: str | Path,
    sample_recipes: str | Path | None = None,
    min_score: float = 0.0,
    min_particles: int = 20,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(sample labels, recipe TEM labels) from the particle, shape, image and recipe tables
    (particles of images outside the images table are left out; see :func:`particle_rows`)."""
    rows, _ = particle_rows(particles, shapes, images)
    recipe_ids = _need(recipes, ["recipe_id"], "recipe table").collect()["recipe_id"].to_list()
    samples = aggregate(rows, "sample_id", min_score, min_particles)
    match = match_recipes(samples["sample_id"].to_list(), recipe_ids, read_sample_recipes(sample_recipes))
    samples = match.join(samples, on="sample_id", how="left", maintain_order="left")
    rows = rows.join(match.filter(pl.col("recipe_id").is_not_null()).select("sample_id", "recipe_id"),
                     on="sample_id", how="inner")
    per_recipe = aggregate(rows, "recipe_id", min_score, min_particles)
    ids = rows.group_by("recipe_id").agg(pl.col("sample_id").unique().sort().alias("sample_ids"))
    per_recipe = per_recipe.join(ids, on="recipe_id", how="left", maintain_order="left")
    per_recipe = per_recipe.select(list(recipe_tem_labels_schema()["properties"]))
    samples = samples.select(list(sample_labels_schema()["properties"]))
    return samples, per_recipe


def merge_labels(recipes: pl.DataFrame, tem: pl.DataFrame, precedence: str = "tem") -> pl.DataFrame:
    """Recipes with TEM labels merged in (see the module docstring)."""
    if precedence not in ("tem", "literature"):
        raise LabelError(f"shapes.labels.precedence must be 'tem' or 'literature', not {precedence!r}")
    use = tem.filter(pl.col("usable")).select(
        "recipe_id",
        pl.col("size_nm").alias("tem_size_nm"),
        pl.col("size_spread_pct").alias("tem_size_spread_pct"),
        pl.col("shape").alias("tem_shape"),
        pl.col("n_particles").alias("tem_n_particles"),
        pl.col("sample_ids").alias("tem_sample_ids"),
    )
    df = recipes.join(use, on="recipe_id", how="left", maintain_order="left").with_columns(
        pl.col("size_nm").alias("literature_size_nm"),
        pl.col("size_spread_pct").alias("literature_size_spread_pct"),
        pl.col("shape").alias("literature_shape"),
        pl.col("n_counted").alias("literature_n_counted"),
    )
    has = pl.col("tem_size_nm").is_not_null()
    if precedence == "tem":
        take = {"size_nm": has, "size_spread_pct": has & pl.col("tem_size_spread_pct").is_not_null(),
                "shape": has & pl.col("tem_shape").is_not_null(), "n_counted": has}
    else:
        take = {"size_nm": pl.lit(False), "shape": pl.lit(False),
                "size_spread_pct": has & pl.col("size_spread_pct").is_null() & pl.col("tem_size_spread_pct").is_not_null(),
                "n_counted": has & pl.col("n_counted").is_null()}
    source = {"size_nm": "tem_size_nm", "size_spread_pct": "tem_size_spread_pct", "shape": "tem_shape",
              "n_counted": "tem_n_particles"}
    df = df.with_columns(
        pl.concat_list([pl.when(cond).then(pl.lit(col)) for col, cond in take.items()])
        .list.drop_nulls().alias("label_fields_from_tem")
    ).with_columns(
        *[pl.when(cond).then(pl.col(source[col])).otherwise(pl.col(col)).alias(col) for col, cond in take.items()],
    ).with_columns(
        pl.when(pl.col("label_fields_from_tem").list.contains("size_nm")).then(pl.lit("tem"))
        .otherwise(pl.col("label_source")).alias("label_source")
    )
    schema = recipes_labelled_schema()
    df = df.with_columns(pl.col("label_fields_from_tem").cast(pl.List(pl.String)))
    return df.select(list(schema["properties"])).cast(dict(tables.polars_schema(schema)))


def write_labels(samples: pl.DataFrame, per_recipe: pl.DataFrame, samples_out, recipes_out) -> None:
    tables.write_table(samples, samples_out, sample_labels_schema())
    tables.write_table(per_recipe, recipes_out, recipe_tem_labels_schema())


def label_recipes(recipes: str | Path, tem_labels: str | Path, out: str | Path, precedence: str = "tem") -> dict:
    """Write ``recipes_labelled.parquet``; returns counts."""
    rec = pl.read_parquet(recipes)
    tem = pl.read_parquet(tem_labels)
    merged = merge_labels(rec, tem, precedence)
    tables.write_table(merged, out, recipes_labelled_schema())
    return {
        "recipes": merged.height,
        "with_tem_labels": int(merged["tem_size_nm"].is_not_null().sum()),
        "label_source_tem": int((merged["label_source"] == "tem").sum()),
        "tem_labels_not_usable": tem.filter(~pl.col("usable")).select("recipe_id", "reason").to_dicts(),
    }
