"""Asking trained models about recipes: input files, predictions, sweeps.

Input (``read_recipes``): a YAML file a chemist writes by hand, the paper's processed-CSV
layout (``ID``, temperatures, time, amounts ``A1..M1`` and names ``A2..M2``; labels may be
empty), or a table in the ``recipes.parquet`` layout. The YAML::

    recipes:
      - id: pbse_oleate            # optional; default: recipe-<n>
        product: PbSe
        reagents:                  # amounts in mmol; role optional (else the chemicals table's)
          - {name: PbO, mmol: 2.0}
          - {name: Se, mmol: 2.0}
          - {name: OA, mmol: 8.0}
          - {name: ODE, mmol: 47}
        injection_temp_c: 150
        reaction_temp_c: 150
        time_min: 5
        heating_rate_c_per_min: null   # optional

A recipe with a missing or non-numeric temperature or time, a negative or missing amount, an
empty reagent list or a product whose formula nanoforge cannot read is an error naming the
file, the recipe and the field (``RecipeInputError``, all problems listed at once). A
reagent or product the models never saw is not an error: the prediction is made and flagged
out of domain with the reason.

``predict`` joins the predictions of a size model and/or a shape model, one row per recipe.
``sweep`` varies one or two variables of a base recipe over a grid.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from nanoforge.safe_io import SafeLoadError, load_yaml_safely
from nanoforge.chemicals import ChemicalTable
from nanoforge.features.chemical import ChemicalFeaturizer
from nanoforge.synthesis.final import SynthesisModel

REACTANT = pl.Struct({"name": pl.String, "mmol": pl.Float64, "role": pl.String})
RECIPE_SCHEMA = {
    "recipe_id": pl.String, "source": pl.String, "source_row": pl.Int64, "source_id": pl.String,
    "doi": pl.String, "product": pl.String, "injection_temp_c": pl.Float64, "reaction_temp_c": pl.Float64,
    "heating_rate_c_per_min": pl.Float64, "time_min": pl.Float64, "reactants": pl.List(REACTANT),
    "size_nm": pl.Float64, "size_spread_pct": pl.Float64, "shape": pl.String, "n_counted": pl.Int64,
}
REQUIRED_NUMBERS = ("injection_temp_c", "reaction_temp_c", "time_min")
RECIPE_KEYS = {"id", "product", "reagents", *REQUIRED_NUMBERS, "heating_rate_c_per_min", "doi"}
# Variables a sweep can vary: a condition, or the amount of one reagent (``mmol:<name>``).
CONDITIONS = ("injection_temp_c", "reaction_temp_c", "time_min", "heating_rate_c_per_min")


class RecipeInputError(ValueError):
    """Recipes given for prediction are malformed: the message names file, recipe and field."""


def _number(value, where: str, field: str, problems: list[str], required: bool = True,
            non_negative: bool = False) -> float | None:
    if value is None:
        if required:
            problems.append(f"{where}: {field} is missing")
        return None
    if isinstance(value, bool):
        problems.append(f"{where}: {field} must be a number, not {value!r}")
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        problems.append(f"{where}: {field} must be a number, not {value!r}")
        return None
    if not math.isfinite(x):
        problems.append(f"{where}: {field} must be finite, not {value!r}")
        return None
    if non_negative and x < 0:
        problems.append(f"{where}: {field} is negative ({x:g})")
        return None
    return x


def recipes_from_dicts(items: list, chemicals: ChemicalTable, where: str = "input") -> pl.DataFrame:
    """Hand-written recipes (the YAML's ``recipes`` list) -> the recipes.parquet layout."""
    if not isinstance(items, list) or not items:
        raise RecipeInputError(f"{where}: expected a non-empty list of recipes under 'recipes'")
    rows, problems, seen = [], [], set()
    for n, item in enumerate(items, start=1):
        rid = str(item.get("id", f"recipe-{n}")) if isinstance(item, dict) else f"recipe-{n}"
        at = f"{where}: recipe {rid!r}"
        if not isinstance(item, dict):
            problems.append(f"{at}: expected a mapping of fields, got {type(item).__name__}")
            continue
        unknown = sorted(set(item) - RECIPE_KEYS)
        if unknown:
            problems.append(f"{at}: unknown field(s) {unknown} (fields: {sorted(RECIPE_KEYS)})")
        if rid in seen:
            problems.append(f"{at}: id used twice")
        seen.add(rid)
        product = item.get("product")
        if not product or not isinstance(product, str):
            problems.append(f"{at}: product is missing")
        elif ChemicalFeaturizer(chemicals).formula_of(product, as_product=True) is None:
            problems.append(f"{at}: unknown product {product!r} (not a formula nanoforge can read, nor in the "
                            f"chemicals table)")
        values = {f: _number(item.get(f), at, f, problems, non_negative=(f == "time_min")) for f in REQUIRED_NUMBERS}
        rate = _number(item.get("heating_rate_c_per_min"), at, "heating_rate_c_per_min", problems,
                       required=False, non_negative=True)
        reagents = item.get("reagents")
        reactants = []
        if not isinstance(reagents, list) or not reagents:
            problems.append(f"{at}: reagents must be a non-empty list of {{name, mmol}}")
            reagents = []
        for j, r in enumerate(reagents, start=1):
            if not isinstance(r, dict) or not r.get("name"):
                problems.append(f"{at}: reagent {j} needs a name")
                continue
            mmol = _number(r.get("mmol"), at, f"reagents[{r['name']}].mmol", problems, non_negative=True)
            role = r.get("role") or chemicals.role(str(r["name"]))
            if mmol is not None:
                reactants.append({"name": str(r["name"]), "mmol": mmol, "role": role})
        rows.append({"recipe_id": rid, "source": "query", "source_row": n, "source_id": rid, "doi": item.get("doi"),
                     "product": product, **values, "heating_rate_c_per_min": rate, "reactants": reactants,
                     "size_nm": None, "size_spread_pct": None, "shape": None, "n_counted": None})
    if problems:
        raise RecipeInputError("invalid recipes:\n  " + "\n  ".join(problems))
    return pl.DataFrame(rows, schema=RECIPE_SCHEMA)


def _from_processed_csv(path: Path, abbreviations, shapes_list) -> pl.DataFrame:
    """The processed-CSV layout through the project's own ingestion; empty labels are allowed
    (a placeholder size is given for the ingestion and removed again)."""
    from nanoforge.recipes import ingest

    raw = pl.read_csv(path, infer_schema=False)
    for col, fill in (("Y1", "1"), ("Y3", "0")):
        raw = raw.with_columns((pl.col(col) if col in raw.columns else pl.lit(None, pl.String))
                               .fill_null(fill).alias(col))
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        raw.write_csv(copy)  # csv-internal: a temporary copy for ingestion, not a CSV people open
        result = ingest([{"name": "query", "path": str(copy), "format": "csv"}], abbreviations, shapes_list)
    if result.rejected.height:
        lines = [f"{path}: row {r.get('source_row')} (ID {r.get('source_id')}): {r.get('reasons')}"
                 for r in result.rejected.iter_rows(named=True)]
        raise RecipeInputError("invalid recipes:\n  " + "\n  ".join(lines))
    recipes = result.recipes.with_columns(pl.lit(None, pl.Float64).alias("size_nm"), pl.lit(None, pl.String).alias("shape"))
    return recipes.select([pl.col(c).cast(t) for c, t in RECIPE_SCHEMA.items()])


def read_recipes(path: str | Path, chemicals: ChemicalTable, abbreviations=None, shapes_list=None) -> pl.DataFrame:
    """Recipes to predict from a .yaml/.yml, .csv (processed layout) or .parquet file."""
    path = Path(path)
    if not path.is_file():
        raise RecipeInputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        try:
            doc = load_yaml_safely(path)
        except SafeLoadError as exc:
            raise RecipeInputError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(doc, dict) or "recipes" not in doc:
            raise RecipeInputError(f"{path}: expected a mapping with a 'recipes' list")
        return recipes_from_dicts(doc["recipes"], chemicals, str(path))
    if suffix == ".csv":
        if abbreviations is None or shapes_list is None:
            raise RecipeInputError(f"{path}: a processed-CSV input needs the abbreviations workbook and shapes list")
        return _from_processed_csv(path, abbreviations, shapes_list)
    if suffix == ".parquet":
        table = pl.read_parquet(path)
        missing = sorted(set(RECIPE_SCHEMA) - {"source_id"} - set(table.columns))
        if missing:
            raise RecipeInputError(f"{path}: not in the recipes.parquet layout (missing columns {missing})")
        return table
    raise RecipeInputError(f"{path}: unknown input type {suffix!r} (use .yaml, .csv or .parquet)")


def predict(recipes: pl.DataFrame, models: list[SynthesisModel]) -> pl.DataFrame:
    """One row per recipe: product, the size model's median and interval, the shape model's
    class probabilities, the nearest training recipes (of the first model) and the domain
    flag (out of domain for any model)."""
    if not models:
        raise ValueError("predict needs at least one model")
    dup = recipes["recipe_id"].is_duplicated()
    if dup.any():
        raise RecipeInputError(f"recipe ids used twice: {sorted(set(recipes['recipe_id'].filter(dup)))}")
    out = recipes.select("recipe_id", "product")
    flags, reasons = [], []
    for i, model in enumerate(sorted(models, key=lambda m: m.task != "size")):
        p = model.predict(recipes)
        flags.append(p["in_domain"].to_numpy())
        reasons.append(p["domain_reason"].to_list())
        keep = [c for c in p.columns if c not in ("recipe_id", "in_domain", "domain_reason")
                and (i == 0 or not (c.startswith("neighbour_") or c == "nearest_distance"))]
        out = out.with_columns(p.select(keep)).with_columns(pl.lit(model.name).alias(f"{model.task}_model"))
    merged = ["; ".join(dict.fromkeys(r for r in rs if r)) for rs in zip(*reasons)]
    return out.with_columns(pl.Series("in_domain", np.logical_and.reduce(flags)), pl.Series("domain_reason", merged))


# --- sweeps -------------------------------------------------------------------------------

def _values(spec, where: str) -> list[float]:
    if isinstance(spec, list) and spec:
        return [float(v) for v in spec]
    if isinstance(spec, dict) and {"from", "to", "steps"} <= set(spec):
        return np.linspace(float(spec["from"]), float(spec["to"]), int(spec["steps"])).tolist()
    raise RecipeInputError(f"{where}: give a list of values or {{from, to, steps}}")


def sweep_recipes(doc: dict, chemicals: ChemicalTable, where: str = "sweep") -> tuple[pl.DataFrame, list[str]]:
    """A sweep file (``base``: one recipe; ``vary``: {variable: values}, 1 or 2 variables,
    a condition of CONDITIONS or ``mmol:<reagent>``) -> the grid's recipes and the variable
    names (columns of the same name hold each recipe's values)."""
    if not isinstance(doc, dict) or "base" not in doc or "vary" not in doc:
        raise RecipeInputError(f"{where}: a sweep needs 'base' (a recipe) and 'vary' (1 or 2 variables)")
    vary = doc["vary"]
    if not isinstance(vary, dict) or not 1 <= len(vary) <= 2:
        raise RecipeInputError(f"{where}: vary must map 1 or 2 variables to their values")
    base = recipes_from_dicts([doc["base"]], chemicals, where).row(0, named=True)
    names = [r["name"] for r in base["reactants"]]
    grids = {}
    for var, spec in vary.items():
        if var not in CONDITIONS and not (var.startswith("mmol:") and var[5:] in names):
            raise RecipeInputError(f"{where}: cannot vary {var!r}: use one of {list(CONDITIONS)} or mmol:<reagent> "
                                   f"of the base recipe ({names})")
        grids[var] = _values(spec, f"{where}: vary.{var}")
    rows = []
    for k, combo in enumerate(itertools.product(*grids.values())):
        r = {**base, "recipe_id": f"{base['recipe_id']}-{k}",
             "reactants": [dict(x) for x in base["reactants"]]}
        for var, v in zip(grids, combo):
            if var.startswith("mmol:"):
                if v < 0:
                    raise RecipeInputError(f"{where}: vary.{var} has a negative amount ({v:g})")
                for x in r["reactants"]:
                    if x["name"] == var[5:]:
                        x["mmol"] = v
            else:
                r[var] = v
        rows.append(r)
    table = pl.DataFrame(rows, schema=RECIPE_SCHEMA)
    values = pl.DataFrame([dict(zip(grids, combo)) for combo in itertools.product(*grids.values())])
    return table.with_columns(values), list(grids)


def sweep_figure(pred: pl.DataFrame, variables: list[str], out, title: str = ""):
    """Predicted size with its interval (top) and shape probabilities (bottom) along the first
    variable (one line per value of the second); out-of-domain points are marked with x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = variables[0]
    groups = [None] if len(variables) == 1 else pred[variables[1]].unique(maintain_order=True).to_list()
    probs = [c for c in pred.columns if c.startswith("p_")]
    fig, axes = plt.subplots(2 if probs else 1, 1, figsize=(7, 7 if probs else 4), sharex=True, squeeze=False)
    ax = axes[0, 0]
    for g in groups:
        part = pred if g is None else pred.filter(pl.col(variables[1]) == g)
        label = None if g is None else f"{variables[1]} = {g:g}"
        if "size_pred_nm" in part.columns:
            line, = ax.plot(part[x], part["size_pred_nm"], marker="o", ms=3, label=label)
            ax.fill_between(part[x], part["size_lo_nm"], part["size_hi_nm"], color=line.get_color(), alpha=0.2)
            out_dom = part.filter(~pl.col("in_domain"))
            ax.plot(out_dom[x], out_dom["size_pred_nm"], "x", color="k", ms=8)
    ax.set_ylabel("predicted size, nm (median, interval)")
    ax.plot([], [], "x", color="k", label="out of domain")
    ax.legend(fontsize=7)
    if probs:
        ax2 = axes[1, 0]
        part = pred if groups[0] is None else pred.filter(pl.col(variables[1]) == groups[0])
        top = sorted(probs, key=lambda c: -float(part[c].max()))[:5]
        for c in top:
            ax2.plot(part[x], part[c], marker="o", ms=3, label=c[2:])
        ax2.set_ylabel("shape probability" + ("" if groups[0] is None else f" ({variables[1]} = {groups[0]:g})"))
        ax2.set_ylim(0, 1)
        ax2.legend(fontsize=7)
    axes[-1, 0].set_xlabel(x)
    fig.suptitle(title)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return Path(out)
