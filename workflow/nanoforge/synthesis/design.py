"""Inverse design: recipes predicted to give a target size (and shape).

``candidates`` builds recipes from the chemistries the training data holds for the product
(or, flagged in ``borrowed_from``, for the products with the most similar elements when it
has none): a base recipe is drawn (a family first, then one of its recipes, so that a large
family does not crowd out the others), every reagent amount is scaled by a factor in
[1/2, 2], the temperatures shifted by up to +/- 30 degC and the time scaled by [1/3, 3],
each clipped to the range observed for the product. ``rank`` scores each candidate by the
predicted probability of landing within ``tolerance`` nm of the target: the size model's
median times exp(r) for every calibration residual r (the run's protocol G residuals on
ln(size)), times the shape model's probability of the asked shape, times ``domain_penalty``
when the candidate is out of the models' domain.

``validate`` says how far to trust it: for each of the largest families of the product, the
size model is retrained without the family (``train_final`` on the other recipes; the
harness's G residuals of the family's rows are dropped from the calibration), the family's own
recipes are put among random candidates of the other chemistries, and for each of them the
design asks for the size that recipe reported. Reported: the rank percentile of the
family's own recipe (0 = top; a random candidate's expected percentile is 0.5) and how
often it lands in the top 10 %, against 10 % for a random candidate.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from nanoforge.features import composition
from nanoforge.features.recipe import recipe_family
from nanoforge.synthesis.final import SynthesisModel, log_residuals
from nanoforge.synthesis.query import RECIPE_SCHEMA, predict


class DesignError(ValueError):
    """A design request cannot be served (no recipes for the product, no size model...)."""


def _elements(model: SynthesisModel, product: str) -> set[str]:
    formula = model.featurizer.chem_.formula_of(product, as_product=True)
    try:
        return set(composition.composition(formula)) if formula else set()
    except ValueError:
        return set()


def pool_for(recipes: pl.DataFrame, product: str, model: SynthesisModel) -> tuple[pl.DataFrame, str | None]:
    """The training recipes of ``product``, or of the products with the most similar
    elements (Jaccard) when it has none (their name is returned as borrowed_from)."""
    trained = recipes.filter(pl.col("recipe_id").is_in(model.training["recipe_id"].implode()))
    own = trained.filter(pl.col("product") == product)
    if own.height:
        return own, None
    want = _elements(model, product)
    if not want:
        raise DesignError(f"product {product!r}: not a formula nanoforge can read, nor in the chemicals table")
    best, score = [], 0.0
    for p in trained["product"].unique().to_list():
        have = _elements(model, p)
        s = len(want & have) / len(want | have) if have else 0.0
        if s > score + 1e-12:
            best, score = [p], s
        elif abs(s - score) <= 1e-12 and s > 0:
            best.append(p)
    if not best:
        raise DesignError(f"product {product!r}: no training product shares an element with it")
    return trained.filter(pl.col("product").is_in(best)), ",".join(sorted(best))


def candidates(pool: pl.DataFrame, product: str, n: int, seed: int = 0) -> pl.DataFrame:
    """``n`` recipes varied around the pool's recipes within the pool's observed ranges."""
    rng = np.random.default_rng(seed)
    rows = pool.to_dicts()
    families: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        families.setdefault(recipe_family(r["product"], [x["name"] for x in r["reactants"]]), []).append(i)
    fam_keys = sorted(families)
    amounts: dict[str, list[float]] = {}
    for r in rows:
        for x in r["reactants"]:
            amounts.setdefault(x["name"], []).append(x["mmol"])
    lo_amt = {k: min(v) for k, v in amounts.items()}
    hi_amt = {k: max(v) for k, v in amounts.items()}
    t_lo, t_hi = pool["reaction_temp_c"].min(), pool["reaction_temp_c"].max()
    i_lo = pool["injection_temp_c"].min()
    m_lo, m_hi = pool["time_min"].min(), pool["time_min"].max()
    out = []
    for k in range(n):
        members = families[fam_keys[rng.integers(len(fam_keys))]]
        base = rows[members[rng.integers(len(members))]]
        shift = rng.uniform(-30, 30)
        reaction = float(np.clip(base["reaction_temp_c"] + shift, t_lo, t_hi))
        injection = float(np.clip(base["injection_temp_c"] + shift, i_lo, reaction))
        time = float(np.clip(base["time_min"] * math.exp(rng.uniform(-math.log(3), math.log(3))), m_lo, m_hi))
        reactants = [{"name": x["name"], "role": x["role"],
                      "mmol": float(np.clip(x["mmol"] * math.exp(rng.uniform(-math.log(2), math.log(2))),
                                            lo_amt[x["name"]], hi_amt[x["name"]]))} for x in base["reactants"]]
        out.append({"recipe_id": f"candidate-{k}", "source": "design", "source_row": k, "source_id": None,
                    "doi": None, "product": product, "injection_temp_c": injection, "reaction_temp_c": reaction,
                    "heating_rate_c_per_min": base["heating_rate_c_per_min"], "time_min": time,
                    "reactants": reactants, "size_nm": None, "size_spread_pct": None, "shape": None,
                    "n_counted": None, "based_on": base["recipe_id"]})
    return pl.DataFrame(out, schema={**RECIPE_SCHEMA, "based_on": pl.String})


def hit_probability(median_nm: np.ndarray, residuals: np.ndarray, target: float, tolerance: float) -> np.ndarray:
    """P(|size - target| <= tolerance) with size = median * exp(r), r over the residuals."""
    sizes = np.asarray(median_nm, dtype=float)[:, None] * np.exp(np.asarray(residuals, dtype=float))[None, :]
    return (np.abs(sizes - target) <= tolerance).mean(axis=1)


def rank(recipes: pl.DataFrame, size_model: SynthesisModel, target: float, *, shape: str | None = None,
         shape_model: SynthesisModel | None = None, tolerance: float = 0.5,
         domain_penalty: float = 0.25) -> pl.DataFrame:
    """The recipes' predictions with ``p_size`` (probability of the target size within the
    tolerance), ``p_shape`` (1 without a shape) and ``score``, best first."""
    if size_model.task != "size":
        raise DesignError(f"model {size_model.name} is not a size model")
    models = [size_model] + ([shape_model] if shape_model is not None else [])
    pred = predict(recipes.select(list(RECIPE_SCHEMA)), models)
    p_size = hit_probability(pred["size_pred_nm"].to_numpy(), log_residuals(size_model.calibration), target, tolerance)
    if shape is not None:
        if shape_model is None:
            raise DesignError("a shape was asked for, but no shape model was given")
        col = f"p_{shape}"
        if col not in pred.columns:
            known = sorted(c[2:] for c in pred.columns if c.startswith("p_"))
            raise DesignError(f"unknown shape {shape!r}; the shape model knows {known}")
        p_shape = pred[col].to_numpy()
    else:
        p_shape = np.ones(pred.height)
    penalty = np.where(pred["in_domain"].to_numpy(), 1.0, domain_penalty)
    pred = pred.with_columns(pl.Series("p_size", p_size), pl.Series("p_shape", p_shape),
                             pl.Series("score", p_size * p_shape * penalty))
    extra = [c for c in recipes.columns if c not in pred.columns]
    return (pred.with_columns(recipes.select(extra))
            .sort("score", descending=True, maintain_order=True)
            .with_row_index("rank", offset=1))


def describe_recipe(row: dict) -> str:
    reagents = ", ".join(f"{x['name']} {x['mmol']:.3g}" for x in row["reactants"])
    return (f"{reagents} mmol; inject {row['injection_temp_c']:.0f} degC, grow {row['reaction_temp_c']:.0f} degC "
            f"for {row['time_min']:.3g} min")


def validate(recipes: pl.DataFrame, cfg: dict, run: str, chemicals_path, harness: dict, product: str, *,
             families: int = 5, min_recipes: int = 5, n_candidates: int = 300, seed: int = 0,
             threads: int = 1, tolerance: float = 0.5) -> pl.DataFrame:
    """Leave-family-out check of ``rank`` (see the module docstring): one row per held-out
    recipe with its rank percentile among the candidates plus itself."""
    from nanoforge.synthesis.final import train_final

    fam = recipes.with_columns(pl.struct("product", "reactants").map_elements(
        lambda s: recipe_family(s["product"], [x["name"] for x in s["reactants"]]), return_dtype=pl.String).alias("family"))
    own = fam.filter((pl.col("product") == product) & (pl.col("size_nm") <= cfg["validation"]["max_size_nm"]))
    sizes = own.group_by("family").len().filter(pl.col("len") >= min_recipes).sort(["len", "family"], descending=[True, False])
    rows = []
    for family in sizes["family"].head(families).to_list():
        held = fam.filter(pl.col("family") == family)
        rest = fam.filter(pl.col("family") != family).drop("family")
        g = harness["G"]["predictions"].filter(~pl.col("recipe_id").is_in(held["recipe_id"].implode()))
        model = train_final(rest, cfg, run, chemicals_path, harness={"G": {**harness["G"], "predictions": g}},
                            seed=seed, threads=threads)
        pool, _ = pool_for(rest, product, model)
        cands = candidates(pool, product, n_candidates, seed=seed)
        base = rank(cands, model, 1.0, tolerance=tolerance)  # predictions only; scored per target below
        med = base["size_pred_nm"].to_numpy()
        pen = np.where(base["in_domain"].to_numpy(), 1.0, 0.25)
        test = rank(held.drop("family").filter(pl.col("size_nm") <= cfg["validation"]["max_size_nm"]), model, 1.0,
                    tolerance=tolerance)
        res = log_residuals(model.calibration)
        for r in test.iter_rows(named=True):
            target = float(held.filter(pl.col("recipe_id") == r["recipe_id"])["size_nm"][0])
            score_c = hit_probability(med, res, target, tolerance) * pen
            score_r = hit_probability(np.array([r["size_pred_nm"]]), res, target, tolerance)[0] * (1.0 if r["in_domain"] else 0.25)
            # percentile: share of candidates scored above the recipe (ties count half)
            pct = (float((score_c > score_r).sum()) + 0.5 * float((score_c == score_r).sum())) / score_c.size
            rows.append({"family": family, "recipe_id": r["recipe_id"], "target_nm": target,
                         "predicted_nm": r["size_pred_nm"], "score": score_r, "percentile": pct,
                         "top10": pct < 0.10, "in_domain": r["in_domain"]})
    if not rows:
        raise DesignError(f"product {product!r}: no family with at least {min_recipes} recipes to hold out")
    return pl.DataFrame(rows)
