"""Configuration: load, fill defaults from the JSON schema, validate with clear messages."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema

from nanoforge.safe_io import SafeLoadError, load_yaml_safely

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration problem; the message names the offending key."""


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    return load_yaml_safely(path)


def _fill_defaults(schema: dict, instance: Any) -> None:
    """Insert schema defaults for missing keys, recursively (in place)."""
    if not isinstance(instance, dict) or schema.get("type") != "object":
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(sub, instance[key])
            if sub.get("type") == "array" and isinstance(instance[key], list):
                for item in instance[key]:
                    _fill_defaults(sub.get("items", {}), item)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                _fill_defaults(extra, value)


def _key_path(path) -> str:
    parts = []
    for p in path:
        parts.append(f"[{p}]" if isinstance(p, int) else ("." if parts else "") + str(p))
    return "".join(parts) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        unknown = sorted(k for k in error.instance if k not in allowed)
        prefix = "" if where == "<top level>" else where + "."
        names = ", ".join(f"'{prefix}{k}'" for k in unknown)
        return f"unknown config key {names} (allowed here: {', '.join(sorted(allowed))})"
    if error.validator == "required":
        return f"config key '{where}': {error.message}"
    return f"config key '{where}': {error.message}"


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Return a validated copy of ``config`` with defaults filled in.

    Raises ConfigError listing every problem, each naming its key.
    """
    schema = schema if schema is not None else load_schema()
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError("the configuration must be a mapping of keys to values")
    filled = copy.deepcopy(config)
    _fill_defaults(schema, filled)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n  - ".join(_describe(e) for e in errors)
        raise ConfigError(f"invalid configuration:\n  - {lines}")
    return filled


def _read_yaml(path: str | Path):
    try:
        return load_yaml_safely(path)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except SafeLoadError as exc:
        raise ConfigError(f"config file {exc}") from exc


def merge_overlay(base: dict, overlay: dict) -> dict:
    """Merge ``overlay`` into ``base`` key by key, as ``snakemake --configfile`` does: mappings
    merge recursively, any other value (a list too) replaces the base's. Changes ``base``."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_overlay(base[key], value)
        else:
            base[key] = value
    return base


def load_config(path: str | Path, *overlays: str | Path) -> dict:
    """The validated config of ``path`` with the overlay files (e.g. config.paper.yaml)
    merged in, in order."""
    raw = _read_yaml(path)
    for overlay in overlays:
        extra = _read_yaml(overlay)
        if not isinstance(raw, dict) or not isinstance(extra, dict):
            raise ConfigError(f"config files {path} and {overlay} must be mappings of keys to values")
        merge_overlay(raw, extra)
    return validate_config(raw)


def simulation_settings(simulate: dict) -> dict:
    """Config ``simulate`` -> the settings of one image (``nanoforge.tem.simulate``): without
    the split sizes and the figure's image list, so that changing how many images a split
    has does not redraw the other splits (each image depends on seed, split and index only)."""
    return {k: v for k, v in simulate.items() if k not in ("splits", "figure_real_images")}


def detector_training_overrides(det: dict) -> dict:
    """Config ``detector`` -> the Detectron2 overrides of its training
    (``nanoforge.tem.detector.train_detector``): iterations, batch, checkpoint period, crop
    size, then ``opts`` (any other Detectron2 key)."""
    return {
        "SOLVER.MAX_ITER": det["max_iter"],
        "SOLVER.IMS_PER_BATCH": det["ims_per_batch"],
        "SOLVER.CHECKPOINT_PERIOD": det["checkpoint_period"],
        "NANOFORGE.CROP_SIZE": det["crop_size"],
        **det["opts"],
    }


def split_weak_label_config(wl: dict) -> tuple[dict, dict]:
    """Config ``weak_labels`` -> (the morphology settings, for
    ``nanoforge.tem.weak_labels.WeakLabelParams``; the overrides of the detector's inference
    settings, from ``test_scales`` and ``adaptive_scale_target`` where given)."""
    detector_keys = ("test_scales", "adaptive_scale_target")
    morph = {k: v for k, v in wl.items() if k not in detector_keys}
    overrides = {}
    if wl.get("test_scales"):
        overrides["NANOFORGE.TEST_SCALES"] = tuple(wl["test_scales"])
    if wl.get("adaptive_scale_target") is not None:
        overrides["NANOFORGE.ADAPTIVE_SCALE_TARGET"] = float(wl["adaptive_scale_target"])
    return morph, overrides
