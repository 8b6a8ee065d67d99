"""Runs of config ``synthesis.runs``: lookup and the part of the config a run depends on.
Light (no scientific imports), so the workflow's rule files can use it while parsing."""

from __future__ import annotations


class HarnessError(ValueError):
    """A run cannot be evaluated as configured: the message names the run and key."""


def run_spec(cfg: dict, name: str) -> dict:
    for run in cfg["runs"]:
        if run["name"] == name:
            return run
    raise HarnessError(f"no run named {name!r} in config synthesis.runs")


def run_config(cfg: dict, name: str) -> dict:
    """The part of the ``synthesis`` config that run ``name`` depends on (its model, the
    members of a vote or stack, its feature set, the protocol settings), so that a workflow reruns a
    run only when something it uses changes."""
    run = run_spec(cfg, name)
    models = {}
    model = cfg["models"].get(run["model"])
    if model is not None:
        models[run["model"]] = model
        params = model.get("params") or {}
        parts = list(params.get("members", []) or []) + [params[k] for k in ("size_model", "classifier") if params.get(k)]
        for member in parts:
            if member in cfg["models"]:
                models[member] = cfg["models"][member]
    features = {run["features"]: cfg["feature_sets"][run["features"]]} if run["features"] in cfg["feature_sets"] else {}
    keep = ("validation", "train_max_size_nm", "protocols", "inner")
    out = {k: cfg[k] for k in keep}
    out.update(featurize={"min_count": cfg["featurize"]["min_count"]}, feature_sets=features,
               models=models, runs=[run])
    return out
