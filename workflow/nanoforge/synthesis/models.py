"""Baseline synthesis models, built from the config: random forest (``rf``), extremely
randomised trees (``et``), LightGBM (``lgbm``) and the mean of several of them (``vote``),
for size regression and shape classification.

A model entry of config ``synthesis.models`` has ``params`` (fixed) and ``grid`` (lists of
values; every combination is a candidate, chosen on the inner split of the training rows).
Besides the estimator's own parameters, three keys are handled outside the estimator:

``log_target``           (size) fit on ln(size) and predict exp(prediction);
``family_weight_power``  weight each training row by (rows of its recipe family)^-power, so
                         that a family with hundreds of near-identical recipes does not
                         dominate (0 = unweighted);
``train_max_size_nm``    train on rows up to this size only (null = every size), overriding
                         config ``synthesis.train_max_size_nm`` for this candidate (applied by
                         the harness).

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
from sklearn.pipeline import Pipeline

from nanoforge.features.select import FeatureFilter

KINDS = ("rf", "et", "lgbm", "vote")
TASKS = ("size", "shape")
SPECIAL = ("log_target", "family_weight_power", "train_max_size_nm")


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


def _estimator(kind: str, task: str, params: dict, seed: int, threads: int, models: dict):
    p = dict(params)
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
        ests = []
        for m in members:
            mcfg = models.get(m)
            if mcfg is None or mcfg.get("kind", m) == "vote":
                raise ModelConfigError(f"model vote: member {m!r} is not a model of synthesis.models")
            mp = dict(mcfg.get("params") or {})
            mp.update(own[m])
            for s in SPECIAL:
                mp.pop(s, None)
            ests.append((m, _estimator(mcfg.get("kind", m), task, mp, seed, threads, models)))
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
    est = _estimator(kind, task, p, seed, threads, models or {})
    if task == "size" and params.get("log_target"):
        est = TransformedTargetRegressor(regressor=est, func=np.log, inverse_func=np.exp,
                                         check_inverse=False)
    return Pipeline([("filter", FeatureFilter(list(feature_names), min_count=min_count)),
                     ("model", est)])


def family_weights(families, power: float) -> np.ndarray:
    """(rows of the row's family)^-power, normalised to mean 1."""
    families = list(families)
    if not power:
        return np.ones(len(families))
    counts = Counter(families)
    w = np.array([counts[f] ** (-float(power)) for f in families])
    return w / w.mean()


def fit_params(params: dict, families) -> dict:
    """Keyword arguments for ``Pipeline.fit``: the family weights, when asked for."""
    power = params.get("family_weight_power", 0) or 0
    if not power:
        return {}
    return {"model__sample_weight": family_weights(families, power)}
