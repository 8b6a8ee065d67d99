"""Saving and loading trained synthesis models without executing code from the files.

A model is a folder of *parts*, each one file in a data format, listed with its sha256 in
``manifest.json``:

``json``     plain settings and vocabularies (``json``);
``parquet``  tables (training rows, calibration residuals), read by polars;
``file``     a byte copy of an input (the chemicals table CSV);
``skops``    a scikit-learn / LightGBM estimator, written by ``skops.io`` and loaded only if
             every type it holds is one of ``TRUSTED_TYPES`` (or one skops trusts by default:
             scikit-learn, numpy and builtin types); anything else is refused with the names
             of the offending types. No pickle is ever loaded.

A torch part (issue 24's transformer) is meant to be a ``safetensors`` file of weights plus a
``json`` part with the architecture's settings, read with ``safetensors`` (or
``torch.load(weights_only=True)``): add its reader and writer to ``WRITERS``/``READERS``; the
manifest, checksums and version checks are the same for every format.

Loading refuses a folder whose files do not match the checksums of its manifest (a file was
changed after saving) and warns (``ModelVersionWarning``) when the packages that wrote it
differ from the ones installed here, naming each package and both versions.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
import warnings
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import polars as pl

from nanoforge.download import sha256sum

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Packages whose versions are recorded with a model and compared when it is loaded.
PACKAGES = ("numpy", "scipy", "scikit-learn", "lightgbm", "skops", "crepes", "polars", "rdkit",
            "pymatgen-core", "torch", "safetensors")
# Types a skops part may hold beyond those skops trusts by default.
TRUSTED_TYPES = frozenset({
    "nanoforge.features.select.FeatureFilter",
    "nanoforge.synthesis.models.SizeStackedClassifier",
    "sklearn.tree._tree.Tree",
    "sklearn.utils._bunch.Bunch",
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMRegressor",
    "lightgbm.sklearn.LGBMClassifier",
})


class ModelFileError(RuntimeError):
    """A model folder cannot be loaded safely: the message names the folder, file and reason."""


class ModelVersionWarning(UserWarning):
    """The model was written with other package versions than the ones installed here."""


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


# --- formats ------------------------------------------------------------------------------

def _write_json(obj, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True, allow_nan=True) + "\n", encoding="utf-8")


def _write_parquet(obj: pl.DataFrame, path: Path) -> None:
    obj.write_parquet(path)


def _write_file(obj, path: Path) -> None:
    shutil.copyfile(obj, path)


def _write_skops(obj, path: Path) -> None:
    import skops.io as sio

    data = sio.dumps(obj)
    extra = sorted(set(sio.get_untrusted_types(data=data)) - TRUSTED_TYPES)
    if extra:
        raise ModelFileError(f"{path.name}: the estimator holds types {extra} that "
                             f"nanoforge.synthesis.persist.TRUSTED_TYPES does not list; add them there "
                             f"if they are safe to rebuild")
    path.write_bytes(data)


def _read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _read_parquet(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path)


def _read_file(path: Path) -> Path:
    return path


def _read_skops(path: Path):
    import skops.io as sio

    data = path.read_bytes()
    try:
        types = sio.get_untrusted_types(data=data)
    except Exception as exc:  # not a skops file at all
        raise ModelFileError(f"{path}: not a readable skops file ({exc})") from None
    refused = sorted(set(types) - TRUSTED_TYPES)
    if refused:
        raise ModelFileError(f"{path}: refused to load: it holds types that are not trusted: {refused} "
                             f"(trusted: nanoforge.synthesis.persist.TRUSTED_TYPES)")
    return sio.loads(data, trusted=list(types))


WRITERS = {"json": _write_json, "parquet": _write_parquet, "file": _write_file, "skops": _write_skops}
READERS = {"json": _read_json, "parquet": _read_parquet, "file": _read_file, "skops": _read_skops}
SUFFIX = {"json": ".json", "parquet": ".parquet", "file": "", "skops": ".skops"}


# --- folders ------------------------------------------------------------------------------

def save_folder(folder: str | Path, parts: dict[str, tuple[str, object]], meta: dict,
                extra_files: dict[str, str] | None = None) -> Path:
    """Write ``parts`` (name -> (format, object); a ``file`` part's object is a path, kept
    under its own suffix) and ``extra_files`` (file name -> text, e.g. the model card; not
    read back) into ``folder`` with a manifest, replacing the folder as a whole."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        files = {}
        for name, (fmt, obj) in parts.items():
            if fmt not in WRITERS:
                raise ModelFileError(f"part {name}: unknown format {fmt!r}; known: {sorted(WRITERS)}")
            fname = name + (SUFFIX[fmt] or Path(str(obj)).suffix)
            WRITERS[fmt](obj, tmp / fname)
            files[name] = {"path": fname, "format": fmt, "sha256": sha256sum(tmp / fname)}
        for fname, text in (extra_files or {}).items():
            (tmp / fname).write_text(text, encoding="utf-8")
        manifest = {"format_version": FORMAT_VERSION, "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "versions": package_versions(), "files": files, "meta": meta}
        _write_json(manifest, tmp / MANIFEST)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder


def read_manifest(folder: str | Path) -> dict:
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelFileError(f"{folder}: no {MANIFEST}: not a saved nanoforge model "
                             f"(train one with: snakemake results/models/<run>)")
    try:
        manifest = _read_json(path)
    except ValueError as exc:
        raise ModelFileError(f"{path}: not valid JSON ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format {manifest.get('format_version')!r}, this nanoforge "
                             f"reads format {FORMAT_VERSION}; retrain the model")
    return manifest


def version_differences(saved: dict[str, str]) -> list[str]:
    here = package_versions()
    out = []
    for name in sorted(set(saved) | set(here)):
        if saved.get(name) != here.get(name):
            out.append(f"{name} {saved.get(name, 'absent')} (saved) vs {here.get(name, 'absent')} (here)")
    return out


def load_folder(folder: str | Path) -> tuple[dict[str, object], dict]:
    """The parts of a saved folder (name -> object; a ``file`` part -> its path) and its
    manifest. Every file is checked against its sha256 first; ModelFileError if one
    differs or is missing."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    for name, entry in manifest["files"].items():
        if not isinstance(entry.get("path"), str) or Path(entry["path"]).name != entry["path"]:
            raise ModelFileError(f"{folder}: part {name}: {entry.get('path')!r} is not a plain file name "
                                 f"inside the model folder; refused to load it")
        path = folder / entry["path"]
        if not path.is_file():
            raise ModelFileError(f"{folder}: part {name} ({entry['path']}) is missing")
        got = sha256sum(path)
        if got != entry["sha256"]:
            raise ModelFileError(f"{path}: sha256 {got} differs from the manifest's {entry['sha256']}: "
                                 f"the file was changed after the model was saved; refused to load it")
        if entry["format"] not in READERS:
            raise ModelFileError(f"{path}: unknown part format {entry['format']!r}")
    diffs = version_differences(manifest.get("versions", {}))
    if diffs:
        warnings.warn(f"{folder}: the model was saved with other package versions: {'; '.join(diffs)}. "
                      f"Predictions may differ from the ones the model card reports; retrain it to be sure.",
                      ModelVersionWarning, stacklevel=2)
    parts = {name: READERS[e["format"]](folder / e["path"]) for name, e in manifest["files"].items()}
    return parts, manifest
