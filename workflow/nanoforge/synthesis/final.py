"""Trained synthesis models a chemist can query (config ``synthesis.final``).

``train_final`` fits one run of ``synthesis.runs`` on every eligible row of the training
source (size runs: size <= ``train_max_size_nm``; shape runs: the loosest limit of the
model's candidates), with the featurizer fitted on those rows and the parameters chosen on
an inner split mirroring protocol ``final.select_on`` (G by default: whole families held
out, as for a recipe of a new family). The result, a ``SynthesisModel``, predicts new recipes:

- size runs: the median size (the model's back-transformed ln(size) prediction) and an
  interval at ``final.interval`` (0.8) confidence from a conformal regressor (``crepes``) on
  ln(size), calibrated on the run's out-of-fold residuals under protocol G (the harness's
  ``results/synthesis/G/<run>/predictions.parquet``: every residual comes from a model that
  never saw the recipe's family);
- shape runs: the probability of every shape class;
- both: the ``final.neighbours`` nearest training recipes (RMS distance over the model's own
  input columns, standardised on the training rows; missing values at the mean) and an
  applicability-domain flag: out of domain when the recipe uses a reactant, product or
  product element the training rows never had, a reactant fewer than ``featurize.min_count``
  training recipes used (the model ignores it), a condition or amount column (blocks
  ``cond``, ``amt``) outside the training rows' range, or when its nearest training recipe is
  farther than the ``final.domain_quantile`` (0.95) quantile of the training recipes'
  distances to their nearest recipe of another family.

``interval_coverage`` measures the intervals' coverage on the harness's out-of-fold
predictions under P, G and U, calibrating each fold on the G residuals of the other rows.
Saving and loading: ``nanoforge.synthesis.persist`` (no pickle).
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from nanoforge.chemicals import ChemicalTable
from nanoforge.download import sha256sum
from nanoforge.features.recipe import RecipeFeaturizer
from nanoforge.synthesis import models as models_mod
from nanoforge.synthesis import persist
from nanoforge.synthesis.protocols import ProtocolSettings, inner_split, train_mask
from nanoforge.synthesis.runs import HarnessError, check_final_runs, final_settings, run_spec  # noqa: F401

log = logging.getLogger(__name__)

RANGE_BLOCKS = ("cond", "amt")  # blocks whose columns must lie within the training range
TRAINING_KEYS = ("recipe_id", "paper_id", "doi", "product", "family", "size_nm", "shape")
class DataMismatchWarning(UserWarning):
    """The data given with a model differs from the data it was trained on."""


# --- geometry of the training rows --------------------------------------------------------

def _standardise(X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    Z = (np.asarray(X, dtype=float) - mean) / scale
    return np.where(np.isfinite(Z), Z, 0.0)


def rms_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """RMS (per column) Euclidean distances between the rows of A and B (through a matrix
    product: fast, exact to about 1e-8)."""
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
    return np.sqrt(np.maximum(d2, 0.0) / max(A.shape[1], 1))


def other_family_distances(Z: np.ndarray, families: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Per row of Z: the distance to the nearest row of another family."""
    out = np.empty(Z.shape[0])
    for start in range(0, Z.shape[0], chunk):
        d = rms_distances(Z[start:start + chunk], Z)
        d[families[start:start + chunk, None] == families[None, :]] = np.inf
        out[start:start + chunk] = d.min(axis=1)
    return out


# --- intervals ----------------------------------------------------------------------------

def log_residuals(pred: pl.DataFrame) -> np.ndarray:
    return np.log(pred["size_true_nm"].to_numpy()) - np.log(pred["size_pred_nm"].to_numpy())


def conformal_interval(pred_nm: np.ndarray, residuals: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi] in nm: crepes' standard conformal regressor on ln(size), calibrated on the
    ln residuals ``residuals``."""
    from crepes import ConformalRegressor

    cr = ConformalRegressor().fit(residuals=np.asarray(residuals, dtype=float))
    iv = cr.predict_int(y_hat=np.log(np.asarray(pred_nm, dtype=float)), confidence=confidence)
    return np.exp(iv[:, 0]), np.exp(iv[:, 1])


def interval_coverage(evaluated: pl.DataFrame, calibration: pl.DataFrame, confidence: float) -> dict:
    """Coverage of the intervals on out-of-fold predictions ``evaluated`` (``recipe_id``,
    ``fold``, ``size_true_nm``, ``size_pred_nm``): each fold's intervals are calibrated on the
    rows of ``calibration`` (the G residuals) that are not in that fold."""
    covered, width, per_fold = [], [], {}
    for fold in sorted(evaluated["fold"].unique().to_list()):
        ev = evaluated.filter(pl.col("fold") == fold)
        cal = calibration.filter(~pl.col("recipe_id").is_in(ev["recipe_id"].implode()))
        lo, hi = conformal_interval(ev["size_pred_nm"].to_numpy(), log_residuals(cal), confidence)
        y = ev["size_true_nm"].to_numpy()
        c = (y >= lo) & (y <= hi)
        per_fold[str(fold)] = round(float(c.mean()), 4)
        covered.append(c)
        width.append(hi - lo)
    covered, width = np.concatenate(covered), np.concatenate(width)
    return {"coverage": round(float(covered.mean()), 4), "n": int(covered.size),
            "median_width_nm": round(float(np.median(width)), 3), "per_fold": per_fold}


# --- the model ----------------------------------------------------------------------------

@dataclass
class SynthesisModel:
    """One trained run: featurizer + fitted pipeline + what predictions need besides."""

    run: dict
    featurizer: RecipeFeaturizer
    pipeline: object
    training: pl.DataFrame  # TRAINING_KEYS of the training rows
    neighbour_matrix: np.ndarray  # standardised model inputs of the training rows
    domain: dict  # columns, mean, scale, threshold, chemical_counts, min_count, ...
    calibration: pl.DataFrame | None  # size: the G out-of-fold predictions (residuals)
    card: dict = field(default_factory=dict)
    chemicals_path: Path | None = None

    @property
    def task(self) -> str:
        return self.run["task"]

    @property
    def name(self) -> str:
        return self.run["name"]

    def design(self, recipes: pl.DataFrame) -> np.ndarray:
        table = self.featurizer.transform(recipes)
        return table.select(list(self.featurizer.get_feature_names_out())).to_numpy().astype(float)

    def predict(self, recipes: pl.DataFrame) -> pl.DataFrame:
        """One row per recipe: ``recipe_id``, the prediction columns of the task, the
        nearest training recipes and the domain flag."""
        X = self.design(recipes)
        out = {"recipe_id": recipes["recipe_id"].to_list()}
        if self.task == "size":
            med = np.asarray(self.pipeline.predict(X), dtype=float)
            lo, hi = conformal_interval(med, log_residuals(self.calibration), self.card["interval"]["confidence"])
            out.update(size_pred_nm=med, size_lo_nm=lo, size_hi_nm=hi)
        else:
            proba = self.pipeline.predict_proba(X)
            classes = [str(c) for c in self.pipeline.classes_]
            out["shape_pred"] = [classes[i] for i in proba.argmax(axis=1)]
            for j, c in enumerate(classes):
                out[f"p_{c}"] = proba[:, j]
        out.update(self.neighbours_and_domain(recipes, X))
        return pl.DataFrame(out)

    def neighbours_and_domain(self, recipes: pl.DataFrame, X: np.ndarray) -> dict:
        dom = self.domain
        names = list(self.featurizer.get_feature_names_out())
        cols = [names.index(c) for c in dom["columns"]]
        Z = _standardise(X[:, cols], np.asarray(dom["mean"]), np.asarray(dom["scale"]))
        k = min(int(dom["neighbours"]), self.training.height)
        ids, dists, sizes, shapes = [], [], [], []
        nearest = np.empty(Z.shape[0])
        M = self.neighbour_matrix
        margin = max(50, 10 * k)
        for start in range(0, Z.shape[0], 256):
            rough = rms_distances(Z[start:start + 256], M)  # fast, exact to ~1e-8: preselects
            for i in range(start, min(start + 256, Z.shape[0])):
                pick = np.argsort(rough[i - start], kind="stable")[:margin]
                pick.sort()
                # exact distances of the preselected rows (element-wise: the same after reloading)
                exact = np.sqrt(np.mean((M[pick] - Z[i]) ** 2, axis=1))
                order = pick[np.argsort(exact, kind="stable")[:k]]
                d_order = np.sqrt(np.mean((M[order] - Z[i]) ** 2, axis=1))
                ids.append(self.training["recipe_id"][order].to_list())
                dists.append([round(float(v), 4) for v in d_order])
                sizes.append(self.training["size_nm"][order].to_list())
                shapes.append(self.training["shape"][order].to_list())
                nearest[i] = d_order[0] if k else math.inf
        counts = dom["chemical_counts"]
        reasons = []
        for i, (unseen, row) in enumerate(zip(self.featurizer.unseen(recipes), recipes.iter_rows(named=True))):
            why = []
            if unseen["product"]:
                why.append(f"product {unseen['product'][0]} not in the training data")
            if unseen["elements"]:
                why.append(f"product elements {unseen['elements']} not in the training data")
            if unseen["reactants"]:
                why.append(f"reactants {unseen['reactants']} not in the training data")
            rare = sorted({r["name"] for r in row["reactants"]
                           if 0 < counts.get(r["name"], 0) < dom["min_count"]})
            if rare:
                why.append(f"reactants {rare} in fewer than {dom['min_count']} training recipes")
            for col, (lo, hi) in dom["ranges"].items():
                v = X[i, names.index(col)]
                if np.isfinite(v) and not lo <= v <= hi:
                    why.append(f"{col.split('__', 1)[1]} {v:.4g} outside the training range [{lo:.4g}, {hi:.4g}]")
            if nearest[i] > dom["threshold"]:
                why.append(f"nearest training recipe at distance {nearest[i]:.3g} > {dom['threshold']:.3g}")
            reasons.append("; ".join(why))
        return {"in_domain": [not r for r in reasons], "domain_reason": reasons,
                "nearest_distance": nearest, "neighbour_ids": ids, "neighbour_distances": dists,
                "neighbour_sizes_nm": sizes, "neighbour_shapes": shapes}

    # --- saving ----------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        f = self.featurizer
        settings = {"blocks": list(f.blocks), "morgan_bits": int(f.morgan_bits), "morgan_radius": int(f.morgan_radius)}
        parts = {
            "featurizer": ("json", {"settings": settings, "vocabulary": f.vocabulary(),
                                    "feature_names": list(f.get_feature_names_out())}),
            "chemicals": ("file", self.chemicals_path),
            "model": ("skops", self.pipeline),
            "training": ("parquet", self.training.with_columns(
                pl.Series("neighbour_vector", self.neighbour_matrix.tolist(), dtype=pl.List(pl.Float64)))),
            "domain": ("json", self.domain),
            "run": ("json", self.run),
            "card": ("json", self.card),
        }
        if f.unimol is not None:
            vocab = set(f.reactant_names_) | set(f.products_)
            parts["unimol"] = ("parquet", pl.DataFrame(
                {"name": [n for n in f.unimol if n in vocab], "vector": [f.unimol[n].tolist() for n in f.unimol if n in vocab]}))
        if self.calibration is not None:
            parts["calibration"] = ("parquet", self.calibration)
        return persist.save_folder(folder, parts, {"run": self.name, "task": self.task},
                                   extra_files={"card.md": card_markdown(self.card)})


def load_model(folder: str | Path, data: str | Path | None = None) -> SynthesisModel:
    """A saved model (``persist.load_folder``: checksums verified, versions compared). With
    ``data`` (the recipe table), warns when it is not the table the model was trained on."""
    parts, manifest = persist.load_folder(folder)
    card = parts["card"]
    if data is not None:
        got = sha256sum(data)
        if got != card["training_data"]["sha256"]:
            warnings.warn(f"{folder}: trained on data with sha256 {card['training_data']['sha256']}, "
                          f"but {data} has sha256 {got}: retrain the model (snakemake {Path(folder)}) "
                          f"to predict from the current data", DataMismatchWarning, stacklevel=2)
    fz = parts["featurizer"]
    unimol = None
    if "unimol" in parts:
        u = parts["unimol"]
        unimol = {n: np.asarray(v, dtype=float) for n, v in zip(u["name"].to_list(), u["vector"].to_list())}
    featurizer = RecipeFeaturizer.from_vocabulary(
        ChemicalTable.read(parts["chemicals"]), fz["vocabulary"], blocks=tuple(fz["settings"]["blocks"]),
        morgan_bits=fz["settings"]["morgan_bits"], morgan_radius=fz["settings"]["morgan_radius"], unimol=unimol)
    if list(featurizer.get_feature_names_out()) != fz["feature_names"]:
        raise persist.ModelFileError(f"{folder}: the featurizer of this nanoforge gives other feature columns "
                                     f"than the saved model's; retrain the model")
    training = parts["training"]
    matrix = np.asarray(training["neighbour_vector"].to_list(), dtype=float)
    return SynthesisModel(run=parts["run"], featurizer=featurizer, pipeline=parts["model"],
                          training=training.drop("neighbour_vector"), neighbour_matrix=matrix,
                          domain=parts["domain"], calibration=parts.get("calibration"), card=card,
                          chemicals_path=parts["chemicals"])


# --- training -----------------------------------------------------------------------------

def _selection_score(task: str, y_true, y_pred) -> float:
    """Lower is better: mean absolute error (size), error rate (shape)."""
    if task == "size":
        return float(np.mean(np.abs(np.asarray(y_pred, float) - np.asarray(y_true, float))))
    return float(np.mean(np.asarray(y_pred, dtype=object) != np.asarray(y_true, dtype=object)))


def train_final(recipes: pl.DataFrame, cfg: dict, run_name: str, chemicals_path: str | Path, *,
                unimol: dict | None = None, harness: dict[str, dict[str, pl.DataFrame]] | None = None,
                data_sha256: str = "", seed: int = 0, threads: int = 1) -> SynthesisModel:
    """Fit run ``run_name`` of ``cfg`` (the ``synthesis`` section) on every eligible recipe.

    ``harness``: protocol -> {"metrics": ..., "predictions": ...} of the run from
    ``results/synthesis/<protocol>/<run>/`` (the card's figures; G calibrates the intervals).
    """
    check_final_runs({**cfg, "final": {**final_settings(cfg), "runs": [run_name]}})
    fin = final_settings(cfg)
    harness = harness or {}
    run = run_spec(cfg, run_name)
    task = run["task"]
    model_cfg = cfg["models"][run["model"]]
    kind = model_cfg.get("kind", run["model"])
    blocks = tuple(cfg["feature_sets"][run["features"]])
    settings = ProtocolSettings.from_config(cfg, task)
    cands = models_mod.candidates(model_cfg)
    default_limit = settings.train_max_size_nm
    limits = [c.get("train_max_size_nm", default_limit) for c in cands]
    settings.train_max_size_nm = None if None in limits else max(limits)
    recipes = recipes.filter(pl.Series(train_mask(recipes, settings)))
    if recipes.height < 10:
        raise HarnessError(f"run {run_name}: only {recipes.height} eligible training recipes")
    featurizer = RecipeFeaturizer(ChemicalTable.read(chemicals_path), blocks=blocks,
                                  morgan_bits=cfg["featurize"]["morgan_bits"],
                                  morgan_radius=cfg["featurize"].get("morgan_radius", 2),
                                  unimol=unimol if "uni" in blocks else None).fit(recipes)
    design = featurizer.transform(recipes)
    names = list(featurizer.get_feature_names_out())
    X = design.select(names).to_numpy().astype(float)
    y = design["size_nm" if task == "size" else "shape"].to_numpy()
    sizes, families = design["size_nm"].to_numpy(), design["family"].to_numpy()
    min_count = int(cfg["featurize"]["min_count"])
    every = np.arange(design.height)

    def rows_for(params, rows):
        limit = params.get("train_max_size_nm", default_limit)
        return rows if limit is None else rows[sizes[rows] <= limit]

    def fitted(params, rows):
        pipe = models_mod.build_pipeline(kind, task, params, names, min_count=min_count, seed=seed,
                                         threads=threads, models=cfg["models"])
        return pipe.fit(X[rows], y[rows], **models_mod.fit_params(params, families[rows], sizes[rows], kind))

    chosen, scores = cands[0], []
    if len(cands) > 1:
        repeats = int(cfg["inner"].get("repeats", 1))
        table = np.empty((repeats, len(cands)))
        for r in range(repeats):
            itr, iva = inner_split(design, every, fin["select_on"], settings, float(cfg["inner"]["fraction"]),
                                   seed + 1000 * r)
            for i, params in enumerate(cands):
                table[r, i] = _selection_score(task, y[iva], fitted(params, rows_for(params, itr)).predict(X[iva]))
        scores = table.mean(axis=0).tolist()
        chosen = cands[int(np.argmin(scores))]
    rows = rows_for(chosen, every)
    pipeline = fitted(chosen, rows)
    log.info("%s: %d training recipes, %d feature columns (%d kept), params %s", run_name, rows.size, len(names),
             len(pipeline["filter"].get_feature_names_out()), chosen)

    # neighbours and domain: the model's own input columns, standardised on the training rows
    kept = [c for c in pipeline["filter"].get_feature_names_out() if c in names]
    Xk = X[rows][:, [names.index(c) for c in kept]]
    mean = np.nanmean(np.where(np.isfinite(Xk), Xk, np.nan), axis=0)
    std = np.nanstd(np.where(np.isfinite(Xk), Xk, np.nan), axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    scale = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    Z = np.ascontiguousarray(_standardise(Xk, mean, scale))  # one layout: the same sums after reloading
    lfo = other_family_distances(Z, families[rows])
    finite = lfo[np.isfinite(lfo)]
    threshold = float(np.quantile(finite, fin["domain_quantile"])) if finite.size else math.inf
    counts: dict[str, int] = {}
    for reactants in recipes[rows]["reactants"].to_list():
        for name in {r["name"] for r in reactants}:
            counts[name] = counts.get(name, 0) + 1
    ranges = {}
    for j, c in enumerate(kept):  # conditions and amounts: a value beyond the training rows' range
        col = Xk[:, j]
        if c.split("__", 1)[0] in RANGE_BLOCKS and np.isfinite(col).any():
            ranges[c] = [float(np.nanmin(col)), float(np.nanmax(col))]
    domain = {"columns": kept, "ranges": ranges, "mean": mean.tolist(), "scale": scale.tolist(), "threshold": threshold,
              "quantile": fin["domain_quantile"], "neighbours": int(fin["neighbours"]),
              "chemical_counts": counts, "min_count": min_count}

    calibration, coverage = None, {}
    if task == "size":
        if "G" not in harness:
            raise HarnessError(f"run {run_name}: the intervals need the run's protocol G predictions "
                               f"(results/synthesis/G/{run_name}/predictions.parquet)")
        calibration = harness["G"]["predictions"].select("recipe_id", "fold", "size_true_nm", "size_pred_nm")
        for protocol, res in harness.items():
            coverage[protocol] = interval_coverage(res["predictions"], calibration, fin["interval"])
    training = design[rows].select(list(TRAINING_KEYS))
    card = model_card(run, model_cfg, chosen, scores, cands, fin, featurizer, kept, training, harness,
                      coverage, data_sha256, sha256sum(chemicals_path))
    return SynthesisModel(run=dict(run), featurizer=featurizer, pipeline=pipeline, training=training,
                          neighbour_matrix=Z, domain=domain, calibration=calibration, card=card,
                          chemicals_path=Path(chemicals_path))


def _harness_figures(metrics: pl.DataFrame) -> dict:
    mean = metrics.filter(pl.col("fold") == "mean").row(0, named=True)
    std = metrics.filter(pl.col("fold") == "std").row(0, named=True)
    keys = ("mae_nm", "rmse_nm", "r2") if "mae_nm" in metrics.columns else ("accuracy", "f1_macro")
    out = {}
    for k in keys:
        if mean.get(k) is not None:
            out[k] = round(float(mean[k]), 4)
            out[k + "_std"] = round(float(std[k]), 4) if std.get(k) is not None else None
    out["n_splits"] = metrics.filter(~pl.col("fold").is_in(["mean", "std"])).height
    return out


def model_card(run, model_cfg, chosen, scores, cands, fin, featurizer, kept, training, harness, coverage,
               data_sha256, chemicals_sha256) -> dict:
    return {
        "run": run["name"], "task": run["task"], "model": run["model"], "kind": model_cfg.get("kind", run["model"]),
        "features": run["features"], "blocks": list(featurizer.blocks),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "training_data": {"sha256": data_sha256, "chemicals_sha256": chemicals_sha256, "rows": training.height,
                          "families": training["family"].n_unique(), "products": training["product"].n_unique(),
                          "size_nm_range": [float(training["size_nm"].min()), float(training["size_nm"].max())]},
        "params": chosen, "selection": {"protocol": fin["select_on"], "candidates": cands, "inner_scores": scores},
        "feature_names": list(featurizer.get_feature_names_out()), "model_inputs": kept,
        "cross_validation": {p: _harness_figures(res["metrics"]) for p, res in sorted(harness.items())},
        "interval": {"confidence": fin["interval"], "method": "crepes ConformalRegressor on ln(size), calibrated "
                     "on the run's protocol G out-of-fold residuals", "coverage": coverage},
        "domain": {"quantile": fin["domain_quantile"]},
        "versions": persist.package_versions(),
    }


def card_markdown(card: dict) -> str:
    td = card["training_data"]
    lines = [f"# Model card: {card['run']}", "",
             f"- task: {card['task']}; model `{card['model']}` ({card['kind']}) on feature set `{card['features']}` "
             f"(blocks {', '.join(card['blocks'])})",
             f"- trained {card['date']} on {td['rows']} recipes ({td['families']} families, {td['products']} products, "
             f"sizes {td['size_nm_range'][0]:g}-{td['size_nm_range'][1]:g} nm)",
             f"- training data sha256 `{td['sha256']}`; chemicals table sha256 `{td['chemicals_sha256']}`",
             f"- parameters `{json.dumps(card['params'], sort_keys=True)}` (chosen on an inner split like protocol "
             f"{card['selection']['protocol']})",
             f"- {len(card['feature_names'])} feature columns, {len(card['model_inputs'])} used by the model", "",
             "## Cross-validated figures (results/synthesis, mean ± std over splits)", ""]
    for p, fig in card["cross_validation"].items():
        if "mae_nm" in fig:
            lines.append(f"- {p}: MAE {fig['mae_nm']:.3f} ± {fig['mae_nm_std']:.3f} nm, R² {fig['r2']:.3f} ({fig['n_splits']} splits)")
        else:
            lines.append(f"- {p}: accuracy {fig['accuracy']:.3f} ± {fig['accuracy_std']:.3f}, macro F1 "
                         f"{fig['f1_macro']:.3f} ({fig['n_splits']} splits)")
    cov = card["interval"]["coverage"]
    if cov:
        lines += ["", f"## {card['interval']['confidence']:.0%} size interval", "", card["interval"]["method"] + ".", ""]
        for p, c in cov.items():
            lines.append(f"- coverage under {p}: {c['coverage']:.3f} on {c['n']} recipes (median width {c['median_width_nm']:.2f} nm)")
    lines += ["", "## Package versions", "", ", ".join(f"{k} {v}" for k, v in card["versions"].items()), ""]
    return "\n".join(lines)


def read_harness(results: str | Path, run: str, protocols) -> dict[str, dict[str, pl.DataFrame]]:
    """The run's metrics and out-of-fold predictions under ``protocols`` (``results/synthesis``)."""
    out = {}
    for p in protocols:
        base = Path(results) / p / run
        out[p] = {"metrics": pl.read_csv(base / "metrics.csv", schema_overrides={"fold": pl.String, "params": pl.String}),
                  "predictions": pl.read_parquet(base / "predictions.parquet")}
    return out


def train_and_save(recipes_path, chemicals_path, unimol_path, cfg: dict, run_name: str, harness_dir,
                   out_dir, seed: int = 0, threads: int = 1) -> SynthesisModel:
    """The ``train_synthesis_model`` step: recipes.parquet (the configured sources) -> results/models/<run>/."""
    from nanoforge.features.chemical import read_unimol
    from nanoforge.synthesis.stage import load_recipes

    recipes = load_recipes(recipes_path, cfg["sources"])
    run = run_spec(cfg, run_name)
    blocks = cfg["feature_sets"][run["features"]]
    unimol = read_unimol(unimol_path) if "uni" in blocks else None
    harness = read_harness(harness_dir, run_name, run.get("protocols", ["P", "G", "U"]))
    model = train_final(recipes, cfg, run_name, chemicals_path, unimol=unimol, harness=harness,
                        data_sha256=sha256sum(recipes_path), seed=seed, threads=threads)
    model.save(out_dir)
    log.info("%s written; interval coverage %s", out_dir,
             {p: c["coverage"] for p, c in model.card["interval"]["coverage"].items()})
    return model
