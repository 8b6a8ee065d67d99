"""Shared fixtures: the real data folder, a temporary Snakemake working directory on the
tiny test config, and a helper to run Snakemake there."""

from __future__ import annotations

import importlib.util
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Tests import this checkout's library, whatever else PYTHONPATH or the virtual environment
# (an editable install of another checkout) offers: the scripts' helper puts it first.
_spec = importlib.util.spec_from_file_location("_nanoforge_path", REPO / "workflow" / "scripts" / "_nanoforge_path.py")
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))

from nanoforge.config import merge_overlay  # noqa: E402  (after the checkout's library is first)

SHARED_DATA = Path(os.environ.get("NANOFORGE_SHARED_DATA", REPO.parent / "shared" / "data"))
TINY_CONFIG = REPO / "tests" / "data" / "tiny_config.yaml"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

# The recipe inputs of the tiny config, copied from the shared data folder.
RECIPE_FILES = [
    "raw_recipe_dataset.xlsx",
    "chemical_abbreviations.xlsx",
    "recipes_processed.csv",
    "shapes_list.txt",
]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real data folder not found: {SHARED_DATA} (set NANOFORGE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def processed_recipes(tmp_path_factory, shared_data):
    """The paper's processed CSV, ingested by the project's own ingestion (recipes.parquet rows)."""
    import polars as pl

    from nanoforge.recipes import ingest

    tmp = tmp_path_factory.mktemp("recipes")
    for name in ("recipes_processed.csv", "chemical_abbreviations.xlsx", "shapes_list.txt"):
        shutil.copyfile(shared_data / "recipes" / name, tmp / name)
    result = ingest([{"name": "processed_csv", "path": str(tmp / "recipes_processed.csv"), "format": "csv"}],
                    tmp / "chemical_abbreviations.xlsx", tmp / "shapes_list.txt")
    result.write(tmp / "recipes.parquet", tmp / "rejected.parquet")
    return pl.read_parquet(tmp / "recipes.parquet")


def copy_inputs(shared: Path, workdir: Path) -> None:
    dest = workdir / "resources" / "recipes"
    dest.mkdir(parents=True, exist_ok=True)
    for name in RECIPE_FILES:
        shutil.copyfile(shared / "recipes" / name, dest / name)


def write_config(workdir: Path, overrides: dict | None = None) -> Path:
    with open(TINY_CONFIG) as fh:
        cfg = yaml.safe_load(fh)
    merge_overlay(cfg, overrides or {})
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def tem_workdir(workdir: Path, shared: Path, datasets: list[str], overrides: dict | None = None) -> Path:
    """A working directory for the TEM stage: ``datasets`` copied from the shared folder into
    resources/tem/ (the others come through the mirror rule from the shared folder), the tiny
    config with that mirror, the checksum of sophon_example and ``overrides``."""
    from nanoforge.tem.resources import tree_sha256

    for name in datasets:
        shutil.copytree(shared / "tem" / name, workdir / "resources" / "tem" / name, copy_function=shutil.copyfile)
    base = {"download": {"mirrors": [str(shared / "tem")]},
            "tem": {"datasets": {"sophon_example": {"sha256": tree_sha256(shared / "tem" / "sophon_example")}}}}
    merge_overlay(base, overrides or {})
    return write_config(workdir, base)


@pytest.fixture
def workdir(tmp_path, shared_data) -> Path:
    """A Snakemake working directory with the tiny config and its inputs in place."""
    copy_inputs(shared_data, tmp_path)
    write_config(tmp_path)
    return tmp_path


def run_snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 900):
    """Run the project's Snakefile in ``workdir``; returns the CompletedProcess."""
    cmd = [
        SNAKEMAKE,
        "-s", str(REPO / "Snakefile"),
        "-d", str(workdir),
        "--configfile", str(workdir / "config.yaml"),
        "--cores", "2",
        *args,
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow"))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout[-5000:]}\n--- stderr ---\n{proc.stderr[-8000:]}"
        )
    return proc


# Files that would run code when loaded unsafely (tests of nanoforge.safe_io and its users).


class MarkerPayload:
    """Unpickling this runs ``touch <marker>``: a file that would run code when loaded."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def malicious_yaml(path: Path, marker: Path) -> Path:
    path.write_text(f"SOLVER:\n  MAX_ITER: 5\nX: !!python/object/apply:os.system [\"touch {marker}\"]\n")
    return path


def malicious_checkpoint(path: Path, marker: Path, legacy: bool = False) -> Path:
    """A checkpoint whose unpickling creates ``marker``: torch.save's zip format, or a plain
    pickle (``legacy``; Detectron2 would unpickle it under a ``.pkl`` name)."""
    import torch

    state = {"model": {"w": torch.zeros(2)}, "iteration": 1, "extra": MarkerPayload(marker)}
    if legacy:
        with open(path, "wb") as fh:
            pickle.dump(state, fh)
    else:
        torch.save(state, path)
    return path
