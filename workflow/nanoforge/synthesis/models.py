"""Baseline synthesis models, built from the config: random forest (``rf``), extremely
randomised trees (``et``), LightGBM (``lgbm``) and the mean of several of them (``vote``),
for size regression and shape classification.

A model entry of config ``synthesis.models`` has ``params`` (fixed) and ``grid`` (lists of
values; every combination is a candidate, chosen on the inner split of the training rows).
Besides the estimator's own parameters, four keys are handled outside the estimator:

``log_target``           (size) fit on ln(size) and predict exp(prediction);
``family_weight_power``  weight each training row by (rows of its recipe family)^-power, so
                         that a family with hundreds of near-identical recipes does not
                         dominate (0 = unweighted);
``train_max_size_nm``    train on rows up to this size only (null = every size), overriding
                         config ``synthesis.train_max_size_nm`` for this candidate (applied by
                         the harness);
``feature_blocks``       use only these blocks of the run's feature set (null = all of them),
                         e.g. ``grid: {feature_blocks: [null, [cond, amt, prod]]}`` lets the
                         inner split choose between all features and the recipe-level ones.

``stack`` (shape only) is a two-stage classifier: ``params.size_model`` (a size model of
``synthesis.models``) predicts ln(size) from the recipe, and ``params.classifier`` (a shape
model) classifies from the recipe plus that predicted size. The classifier is trained on
out-of-fold size predictions of the training rows (``params.cv``-fold, default 3), so that it
learns how far the size model can be trusted; the measured size of a validation row is never
an input (the harness gives the training rows' sizes to ``fit`` only).

``transformer`` is the token transformer of ``nanoforge.synthesis.transformer`` (its params
are those of ``TokenTransformer``); it reads feature blocks ``tok`` and ``cond`` of the run's
feature set, fits its own scaling on the training rows, and works on ln(size) itself (no
``log_target``). The harness also gives it the counted particles of the training rows (weak
rows) and, for shape, their measured sizes (an auxiliary target, never an input).

For ``vote``, ``params.members`` lists the member models; a member's parameter is set with
``<member>__<name>`` (in ``params`` or ``grid``), on top of the member's own ``params``.
Every model is a pipeline ``FeatureFilter`` (fitted on the training rows) -> estimator.
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import Pipeline

from nanoforge.features.select import FeatureFilter

KINDS = ("rf", "et", "lgbm", "vote", "stack", "transformer")
TASKS = ("size", "shape")
SPECIAL = ("log_target", "family_weight_power", "train_max_size_nm", "feature_blocks")


class ModelConfigError(ValueError):
    """A model entry of the config cannot be built: the message names the model and key."""


def candidates(model_cfg: dict) -> list[dict]:
    """Every parameter combination of a model entry: ``params`` updated by one point of the
    cartesian product of ``grid`` (in the order the grid lists keys and values)."""
    base = dict(model_cfg.get("params") or {})
    grid = model_cfg.get("grid") or {}
    keys = list(grid)
    for k in keys:
        if not isinstance(grid[k], list) or not grid[k]:
            raise ModelConfigError(f"grid entry {k!r} must be a non-empty list")
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        cand = dict(base)
        cand.update(dict(zip(keys, values)))
        out.append(cand)
    return out or [base]


class SizeStackedClassifier(ClassifierMixin, BaseEstimator):
    """Shape from the recipe plus a predicted size: ``size_estimator`` regresses ln(size),
    ``classifier`` sees X with one more column, the predicted ln(size) (out-of-fold on the
    rows it is fitted on, from the size model refitted on all of them at prediction)."""

    def __init__(self, size_estimator=None, classifier=None, cv: int = 3, seed: int = 0):
        self.size_estimator = size_estimator
        self.classifier = classifier
        self.cv = cv
        self.seed = seed

    def fit(self, X, y, size=None, sample_weight=None):
        if size is None:
            raise ValueError("SizeStackedClassifier.fit needs the measured sizes of the training rows (size=)")
        X = np.asarray(X, dtype=float)
        log_size = np.log(np.asarray(size, dtype=float))
        folds = KFold(int(self.cv), shuffle=True, random_state=self.seed)
        oof = cross_val_predict(clone(self.size_estimator), X, log_size, cv=folds)
        self.size_estimator_ = clone(self.size_estimator).fit(X, log_size)
        extra = {} if sample_weight is None else {"sample_weight": sample_weight}
        self.classifier_ = clone(self.classifier).fit(np.column_stack([X, oof]), y, **extra)
        self.classes_ = self.classifier_.classes_
        return self

    def _stacked(self, X):
        X = np.asarray(X, dtype=float)
        return np.column_stack([X, self.size_estimator_.predict(X)])

    def predict(self, X):
        return self.classifier_.predict(self._stacked(X))

    def predict_proba(self, X):
        return self.classifier_.predict_proba(self._stacked(X))


def _member(models: dict, name: str, owner: str, task: str, seed: int, threads: int,
            overrides: dict | None = None, names=None):
    """The estimator of model ``name`` of ``synthesis.models`` (its own params updated by
    ``overrides``, without the harness-level keys), as a part of model ``owner``."""
    mcfg = models.get(name)
    if mcfg is None or mcfg.get("kind", name) in ("vote", "stack"):
        raise ModelConfigError(f"model {owner}: member {name!r} is not a plain model of synthesis.models")
    mp = {**(mcfg.get("params") or {}), **(overrides or {})}
    mp = {k: v for k, v in mp.items() if k not in SPECIAL}
    return _estimator(mcfg.get("kind", name), task, mp, seed, threads, models, names)


def _estimator(kind: str, task: str, params: dict, seed: int, threads: int, models: dict, names=None):
    p = dict(params)
    if kind == "transformer":
        from nanoforge.synthesis.transformer import TokenTransformer

        if names is None:
            raise ModelConfigError("model transformer: needs the run's feature names")
        try:
            return TokenTransformer(feature_names=list(names), task=task, seed=seed, threads=threads, **p)
        except TypeError as e:
            raise ModelConfigError(f"model transformer: {e}") from None
    if kind == "stack":
        if task != "shape":
            raise ModelConfigError("model stack: predicts shape from a predicted size; use it for shape runs")
        for key in ("size_model", "classifier"):
            if not p.get(key):
                raise ModelConfigError(f"model stack: params.{key} must name a model of synthesis.models")
        return SizeStackedClassifier(_member(models, p["size_model"], "stack", "size", seed, threads),
                                     _member(models, p["classifier"], "stack", "shape", seed, threads),
                                     cv=int(p.get("cv", 3)), seed=seed)
    if kind == "rf":
        cls = RandomForestRegressor if task == "size" else RandomForestClassifier
        return cls(random_state=seed, n_jobs=threads, **p)
    if kind == "et":
        cls = ExtraTreesRegressor if task == "size" else ExtraTreesClassifier
        return cls(random_state=seed, n_jobs=threads, **p)
    if kind == "lgbm":
        import lightgbm as lgb

        cls = lgb.LGBMRegressor if task == "size" else lgb.LGBMClassifier
        p.setdefault("verbose", -1)
        return cls(random_state=seed, n_jobs=threads, **p)
    if kind == "vote":
        members = p.pop("members", None)
        if not members:
            raise ModelConfigError("model vote: params.members must list member models")
        own: dict[str, dict] = {m: {} for m in members}
        for key, value in p.items():
            member, _, name = key.partition("__")
            if member not in own or not name:
                raise ModelConfigError(f"model vote: parameter {key!r} is not <member>__<name> of {members}")
            if name in SPECIAL:
                raise ModelConfigError(f"model vote: set {name} on the vote model, not on member {member}")
            own[member][name] = value
        ests = [(m, _member(models, m, "vote", task, seed, threads, own[m])) for m in members]
        if task == "size":
            return VotingRegressor(ests)
        return VotingClassifier(ests, voting="soft")
    raise ModelConfigError(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")


def build_pipeline(kind: str, task: str, params: dict, feature_names, *, min_count: int = 3,
                   seed: int = 0, threads: int = 1, models: dict | None = None) -> Pipeline:
    """FeatureFilter -> estimator (for size with ``log_target``: wrapped so that it fits
    ln(size) and predicts in nm). ``params`` may hold the SPECIAL keys; they are ignored
    here (see ``fit_params``)."""
    if task not in TASKS:
        raise ModelConfigError(f"unknown task {task!r}; known: {TASKS}")
    p = {k: v for k, v in params.items() if k not in SPECIAL}
    if kind == "transformer":
        bad = [k for k in ("log_target", "feature_blocks") if params.get(k)]
        if bad:
            raise ModelConfigError(f"model transformer: {bad} do not apply (it fits ln(size) on its tokens itself)")
        return Pipeline([("model", _estimator(kind, task, p, seed, threads, models or {}, feature_names))])
    est = _estimator(kind, task, p, seed, threads, models or {})
    if task == "size" and params.get("log_target"):
        est = TransformedTargetRegressor(regressor=est, func=np.log, inverse_func=np.exp,
                                         check_inverse=False)
    return Pipeline([("filter", FeatureFilter(list(feature_names), min_count=min_count,
                                              blocks=params.get("feature_blocks"))),
                     ("model", est)])


def family_weights(families, power: float) -> np.ndarray:
    """(rows of the row's family)^-power, normalised to mean 1."""
    families = list(families)
    if not power:
        return np.ones(len(families))
    counts = Counter(families)
    w = np.array([counts[f] ** (-float(power)) for f in families])
    return w / w.mean()


def fit_params(params: dict, families, sizes=None, kind: str = "", counted=None) -> dict:
    """Keyword arguments for ``Pipeline.fit``: the family weights, when asked for, the
    measured sizes of the training rows for a ``stack`` or ``transformer`` model and, for a
    ``transformer``, their counted particles."""
    out = {}
    if kind in ("stack", "transformer"):
        out["model__size"] = np.asarray(sizes, dtype=float)
    if kind == "transformer" and counted is not None:
        out["model__counted"] = np.asarray(counted, dtype=float)
    power = params.get("family_weight_power", 0) or 0
    if power:
        out["model__sample_weight"] = family_weights(families, power)
    return out
