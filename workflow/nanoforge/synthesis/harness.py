"""The evaluation harness: one *run* (task, model, feature set) under one protocol.

For every split of the protocol: choose the model's parameters on an inner split of the
training rows (``protocols.inner_split``; with config ``inner.repeats`` R, on the mean score
over R inner splits drawn with different seeds), refit the chosen candidate on all training rows,
predict the validation rows. The validation rows of a split never reach a fitted object:
the column filter, the scaler and the model are one pipeline fitted on training rows only
(checked by ``tests/test_synthesis.py`` with a recording estimator).

A run of config ``synthesis.runs``: ``name``, ``task`` (size or shape), ``model`` (a key of
``synthesis.models``), ``features`` (a key of ``synthesis.feature_sets``: the blocks of the
feature table it uses), ``with_size`` (shape: the measured size as an input, as the paper's
classifier has it) and ``protocols``.

Shape classes (:mod:`nanoforge.vocabulary`) are fitted as the paper's ``Y3`` codes
(:func:`shape_codes`), so a classifier's class order is that of the paper's shapes list;
the predictions table names the classes.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import numpy as np
import polars as pl

from nanoforge.features.select import HARNESS_BLOCK, check_blocks
from nanoforge.synthesis import metrics as M
from nanoforge.synthesis import models as models_mod
from nanoforge.synthesis.protocols import ProtocolSettings, inner_split, make_splits
from nanoforge.synthesis.runs import HarnessError, run_config, run_spec  # noqa: F401
from nanoforge.vocabulary import SHAPE_CLASSES, from_paper_code, paper_code

log = logging.getLogger(__name__)

SIZE_INPUT = f"{HARNESS_BLOCK}__size_nm"  # always kept by FeatureFilter
INNER_SEED_STEP = 1000  # inner split r of outer split k is drawn with seed + k + r * step


@dataclass
class RunResult:
    predictions: pl.DataFrame
    metrics: pl.DataFrame  # per split + mean + std rows
    seconds: float


def feature_names(design: pl.DataFrame, blocks, with_size: bool = False) -> list[str]:
    cols = [c for c in design.columns if "__" in c and c.split("__", 1)[0] in set(blocks)]
    missing = [b for b in blocks if not any(c.startswith(b + "__") for c in cols)]
    if missing:
        raise HarnessError(
            f"feature blocks {missing} are not in the feature table "
            f"(config synthesis.featurize.blocks must include them)"
        )
    return cols + ([SIZE_INPUT] if with_size else [])


def design_matrix(design: pl.DataFrame, names: list[str]) -> np.ndarray:
    frame = design.with_columns(pl.col("size_nm").alias(SIZE_INPUT)) if SIZE_INPUT in names else design
    return frame.select(names).to_numpy().astype(float)


def shape_codes(shapes: pl.Series) -> np.ndarray:
    """Shape classes -> the paper's ``Y3`` codes, which the classifiers fit, so that a model's
    class order is the paper's whatever the spelling of the classes."""
    unknown = sorted(set(shapes.drop_nulls().unique().to_list()) - set(SHAPE_CLASSES))
    if unknown or shapes.null_count():
        raise HarnessError(f"feature table column shape: {unknown or 'null'} not shape classes of "
                           f"nanoforge.vocabulary ({', '.join(SHAPE_CLASSES)})")
    return np.array([paper_code(s) for s in shapes.to_list()], dtype=np.int64)


def _score(task: str, y_true, y_pred) -> float:
    """Lower is better: MAE for size, 1 - accuracy for shape."""
    if task == "size":
        return float(np.mean(np.abs(np.asarray(y_pred, float) - np.asarray(y_true, float))))
    return float(1.0 - np.mean(np.asarray(y_pred, dtype=object) == np.asarray(y_true, dtype=object)))


def prediction_interval(pipe, X):
    """(low, high) of the 80 % prediction interval from a pipeline whose model has
    ``predict_interval`` (the transformer), else None."""
    model = pipe.steps[-1][1]
    if not hasattr(model, "predict_interval"):
        return None
    for _, step in pipe.steps[:-1]:
        X = step.transform(X)
    return model.predict_interval(X)


def cross_validate_run(design: pl.DataFrame, cfg: dict, run: dict, protocol: str, *, seed: int = 0,
                       threads: int = 1, fold_table: dict | None = None,
                       make_pipeline=None, jobs: int = 1) -> RunResult:
    """Cross-validate ``run`` under ``protocol`` on the feature table ``design``: out-of-fold
    predictions and per-split metrics (see the module docstring).

    ``jobs`` > 1 evaluates that many outer splits at once, in separate processes (each
    model still uses ``threads``); the results are those of ``jobs`` = 1.

    ``cfg`` is the ``synthesis`` section of the config. ``make_pipeline(params, names)`` may
    replace the model factory (tests use it to record what each fit sees).
    """
    t0 = time.time()
    task = run["task"]
    with_size = bool(run.get("with_size", False))
    if with_size and task != "shape":
        raise HarnessError(f"run {run['name']}: with_size applies to shape runs only")
    model_name = run["model"]
    if model_name not in cfg["models"]:
        raise HarnessError(f"run {run['name']}: model {model_name!r} is not in synthesis.models")
    model_cfg = cfg["models"][model_name]
    kind = model_cfg.get("kind", model_name)
    if run["features"] not in cfg["feature_sets"]:
        raise HarnessError(f"run {run['name']}: feature set {run['features']!r} is not in synthesis.feature_sets")
    names = feature_names(design, cfg["feature_sets"][run["features"]], with_size)
    X = design_matrix(design, names)
    design = design.select([c for c in design.columns if "__" not in c])  # keys: light to send to workers
    y = design["size_nm"].to_numpy() if task == "size" else shape_codes(design["shape"])
    families = design["family"].to_numpy()
    settings = ProtocolSettings.from_config(cfg, task, fold_table)
    cands = models_mod.candidates(model_cfg)
    for c in cands:  # before any fit: a candidate's feature_blocks lie in the run's feature set
        try:
            check_blocks(c.get("feature_blocks"), cfg["feature_sets"][run["features"]])
        except ValueError as e:
            raise HarnessError(f"run {run['name']}, model {model_name}, feature set {run['features']}: {e}") from None
    # a candidate may train on a different size range (train_max_size_nm): the splits take
    # the loosest, each candidate's fits keep the rows of its own range
    default_limit = settings.train_max_size_nm
    limits = [c.get("train_max_size_nm", default_limit) for c in cands]
    settings.train_max_size_nm = None if None in limits else max(limits)
    splits = make_splits(design, protocol, settings)
    sizes = design["size_nm"].to_numpy()
    counted = design["n_counted"].fill_null(0).to_numpy()

    def rows_for(params, rows):
        limit = params.get("train_max_size_nm", default_limit)
        return rows if limit is None else rows[sizes[rows] <= limit]

    inner_fraction = float(cfg["inner"]["fraction"])
    inner_repeats = int(cfg["inner"].get("repeats", 1))
    min_count = int(cfg["featurize"]["min_count"])

    def factory(params):
        if make_pipeline is not None:
            return make_pipeline(params, names)
        return models_mod.build_pipeline(kind, task, params, names, min_count=min_count, seed=seed,
                                         threads=threads, models=cfg["models"])

    def one_split(k, sp):
        """Selection on the inner split, refit, prediction of one outer split: its metrics row
        and predictions block."""
        t_split = time.time()
        chosen, inner_score = cands[0], float("nan")  # nan: one candidate, nothing to choose
        if len(cands) > 1:
            scores = np.empty((inner_repeats, len(cands)))
            for r in range(inner_repeats):  # repeat 0 draws with seed + k, as one split always did
                itr, iva = inner_split(design, sp.train, protocol, settings, inner_fraction,
                                       seed + k + INNER_SEED_STEP * r)
                for i, params in enumerate(cands):
                    rows = rows_for(params, itr)
                    pipe = factory(params)
                    pipe.fit(X[rows], y[rows], **models_mod.fit_params(params, families[rows], sizes[rows], kind, counted[rows]))
                    scores[r, i] = _score(task, y[iva], pipe.predict(X[iva]))
            mean = scores.mean(axis=0)
            best = int(np.argmin(mean))
            chosen, inner_score = cands[best], float(mean[best])
        train = rows_for(chosen, sp.train)
        pipe = factory(chosen)
        pipe.fit(X[train], y[train], **models_mod.fit_params(chosen, families[train], sizes[train], kind, counted[train]))
        pred = pipe.predict(X[sp.val])
        interval = prediction_interval(pipe, X[sp.val]) if task == "size" else None
        if task == "size":
            m = M.size_metrics(y[sp.val].astype(float), pred.astype(float))
            if interval is not None:
                m[M.COVERAGE] = M.interval_coverage(y[sp.val].astype(float), *interval)
        else:
            pred = np.asarray(pred, dtype=np.int64)  # Y3 codes, as fitted
            m = M.shape_metrics(y[sp.val], pred)
        row = {
            "fold": sp.name, "n_train": int(train.size), "n_val": int(sp.val.size), **m,
            "params": json.dumps(chosen, sort_keys=True),
            "inner_score": inner_score,
        }
        lines = [f"{protocol} {run['name']} split {sp.name}: train {train.size}, val {sp.val.size}, "
                 + ", ".join(f"{a} {b:.4g}" for a, b in m.items()) + f", params {chosen}, "
                 f"{time.time() - t_split:.0f} s"] + [f"  {note}" for note in sp.notes]
        block = design[sp.val].select("recipe_id", "paper_id", "product", "family")
        block = block.with_columns(pl.lit(protocol).alias("protocol"), pl.lit(run["name"]).alias("run"),
                                   pl.lit(sp.name).alias("fold"))
        if task == "size":
            block = block.with_columns(pl.Series("size_true_nm", y[sp.val].astype(float)),
                                       pl.Series("size_pred_nm", pred.astype(float)))
            if interval is not None:  # a model with predict_interval (the transformer)
                block = block.with_columns(pl.Series("size_low_nm", interval[0].astype(float)),
                                           pl.Series("size_high_nm", interval[1].astype(float)))
        else:
            block = block.with_columns(pl.Series("shape_true", [from_paper_code(c) for c in y[sp.val]], pl.String),
                                       pl.Series("shape_pred", [from_paper_code(c) for c in pred], pl.String))
        return row, block, lines  # logged by the calling process (a worker's log goes nowhere)

    if jobs > 1 and len(splits) > 1:  # the splits in parallel processes (e.g. GPU runs)
        from joblib import Parallel, delayed

        done = Parallel(n_jobs=min(jobs, len(splits)))(delayed(one_split)(k, sp) for k, sp in enumerate(splits))
    else:
        done = [one_split(k, sp) for k, sp in enumerate(splits)]
    for _, _, lines in done:
        for line in lines:
            log.info("%s", line)
    fold_rows = [row for row, _, _ in done]
    pred_rows = [block for _, block, _ in done]
    per_fold = pl.DataFrame(fold_rows)
    table = M.summarize(per_fold, task).with_columns(
        pl.lit(protocol).alias("protocol"), pl.lit(run["name"]).alias("run"), pl.lit(task).alias("task"),
        pl.lit(model_name).alias("model"), pl.lit(run["features"]).alias("features"),
        pl.lit(with_size).alias("with_size"),
    )
    lead = ["protocol", "run", "task", "model", "features", "with_size", "fold"]
    table = table.select(lead + [c for c in table.columns if c not in lead])
    return RunResult(pl.concat(pred_rows), table, time.time() - t0)
