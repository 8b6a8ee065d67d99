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


FINAL_DEFAULTS = {"runs": ["size_et_chem", "shape_et_chem"], "select_on": "G", "interval": 0.8,
                  "neighbours": 5, "domain_quantile": 0.95}


def final_settings(cfg: dict) -> dict:
    return {**FINAL_DEFAULTS, **(cfg.get("final") or {})}


# Model kinds that nanoforge.synthesis.persist cannot save yet (torch weights need a
# safetensors format there): refused in synthesis.final before any training.
UNSAVED_KINDS = frozenset({"transformer"})


def check_final_runs(cfg: dict) -> list[str]:
    """The runs of ``synthesis.final``; HarnessError naming the key when one cannot be trained."""
    names = final_settings(cfg)["runs"]
    for name in names:
        try:
            run = run_spec(cfg, name)
        except HarnessError:
            raise HarnessError(f"config synthesis.final.runs: no run named {name!r} in synthesis.runs "
                               f"(runs: {[r['name'] for r in cfg['runs']]})") from None
        if run.get("with_size"):
            raise HarnessError(f"config synthesis.final.runs: run {name!r} takes the measured size as an "
                               f"input (with_size), so it cannot predict a new recipe")
        if run["task"] == "size" and "G" not in run.get("protocols", ["P", "G", "U"]):
            raise HarnessError(f"config synthesis.final.runs: size run {name!r} needs protocol G in its "
                               f"protocols: its intervals are calibrated on the G residuals")
        model = cfg["models"].get(run["model"], {})
        if model.get("kind", run["model"]) in UNSAVED_KINDS:
            raise HarnessError(f"config synthesis.final.runs: run {name!r} uses model kind "
                               f"{model.get('kind', run['model'])!r}, which cannot be saved yet "
                               f"(nanoforge.synthesis.persist has no format for it)")
    return names
