"""Per-chemical vectors: the descriptor families of one chemical, with explicit availability.

Families (each a fixed-length float vector):

``rd``    RDKit descriptors (``molecular.names()``), from the SMILES;
``fp``    folded Morgan fingerprint bits, from the SMILES;
``comp``  composition descriptors (``composition.names()``), from the formula (a molecule's
          formula too, so that salts, molecules and inorganic precursors share a space);
``uni``   the paper's 512-d Uni-Mol vector, where the optional Uni-Mol table has the name.

A family a chemical lacks (no SMILES, no formula, not in the chemicals table, not in the
Uni-Mol table) is ``None`` here, and NaN plus a ``*_missing_frac`` column in the recipe
features: a missing structure is never a vector of zeros.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator, TransformerMixin

from nanoforge.chemicals import ChemicalTable, product_formula
from nanoforge.features import composition, molecular

FAMILIES = ("rd", "fp", "comp", "uni")
UNIMOL_DIM = 512


class UnimolError(ValueError):
    """The Uni-Mol descriptor table is missing or malformed."""


def read_unimol(path: str | Path) -> dict[str, np.ndarray]:
    """The Uni-Mol table (``name``, ``vector`` list of 512 floats) as name -> vector."""
    path = Path(path)
    if not path.is_file():
        raise UnimolError(f"Uni-Mol descriptor table not found: {path}")
    df = pl.read_parquet(path)
    if set(df.columns) != {"name", "vector"}:
        raise UnimolError(f"{path}: columns are {df.columns}, expected name and vector")
    out = {}
    for name, vec in zip(df["name"].to_list(), df["vector"].to_list()):
        arr = np.asarray(vec, dtype=float)
        if arr.shape != (UNIMOL_DIM,) or not np.isfinite(arr).all():
            raise UnimolError(f"{path}: vector of {name!r} is not {UNIMOL_DIM} finite floats")
        out[name] = arr
    return out


class ChemicalFeaturizer(BaseEstimator, TransformerMixin):
    """Chemical names -> descriptor vectors (scikit-learn transformer, stateless).

    ``transform(names)`` returns an array of shape (n, d) with the families of ``families``
    concatenated and NaN where a family is missing, followed by one 0/1 availability column
    per family (``has_<family>``), so a consumer (a tree model, a token embedding) can tell
    an unknown chemical from a known one.
    """

    def __init__(self, chemicals: ChemicalTable, families=("rd", "fp", "comp"), morgan_bits=32,
                 morgan_radius=2, unimol: dict[str, np.ndarray] | None = None):
        self.chemicals = chemicals
        self.families = families
        self.morgan_bits = morgan_bits
        self.morgan_radius = morgan_radius
        self.unimol = unimol
        self._cache: dict[str, dict[str, np.ndarray | None]] = {}

    # sklearn API -----------------------------------------------------------------------
    def fit(self, X=None, y=None):
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown descriptor families {unknown}; known: {FAMILIES}")
        if "uni" in self.families and self.unimol is None:
            raise ValueError("the uni family needs the Uni-Mol table (unimol=...)")
        return self

    def transform(self, X) -> np.ndarray:
        self.fit()
        rows = []
        for name in X:
            fam = self.vectors(str(name))
            parts = [fam[f] if fam[f] is not None else np.full(self.dim(f), np.nan)
                     for f in self.families]
            parts.append(np.array([float(fam[f] is not None) for f in self.families]))
            rows.append(np.concatenate(parts))
        return np.vstack(rows) if rows else np.zeros((0, len(self.get_feature_names_out())))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.array([f"{f}_{c}" for f in self.families for c in self.family_names(f)]
                        + [f"has_{f}" for f in self.families], dtype=object)

    # per-family access -----------------------------------------------------------------
    def dim(self, family: str) -> int:
        return len(self.family_names(family))

    def family_names(self, family: str) -> list[str]:
        if family == "rd":
            return molecular.names()
        if family == "fp":
            return [str(i) for i in range(self.morgan_bits)]
        if family == "comp":
            return composition.names()
        if family == "uni":
            return [str(i) for i in range(UNIMOL_DIM)]
        raise ValueError(f"unknown descriptor family {family!r}")

    def formula_of(self, name: str, as_product: bool = False) -> str | None:
        """The formula used for composition descriptors: the table's; for a product not in
        the table, the formula its name spells (``CdSe-1`` -> ``CdSe``) if it parses."""
        formula = self.chemicals.formula(name)
        if formula is None and as_product and name not in self.chemicals:
            candidate = product_formula(name)
            try:
                composition.composition_descriptors(candidate)
                formula = candidate
            except ValueError:
                formula = None
        return formula

    def vectors(self, name: str, as_product: bool = False) -> dict[str, np.ndarray | None]:
        """Family -> vector (or None where the chemical lacks that family)."""
        key = f"{'P' if as_product else 'R'}:{name}"
        if key in self._cache:
            return self._cache[key]
        chem = self.chemicals.get(name)
        smiles = chem.smiles if chem is not None else None
        formula = self.formula_of(name, as_product)
        out: dict[str, np.ndarray | None] = {f: None for f in FAMILIES}
        if smiles:
            d = molecular.rdkit_descriptors(smiles)
            out["rd"] = np.array([d[k] for k in molecular.names()], dtype=float)
            out["fp"] = molecular.morgan_bits(smiles, self.morgan_bits, self.morgan_radius)
        if formula:
            d = composition.composition_descriptors(formula)
            out["comp"] = np.array([d[k] for k in composition.names()], dtype=float)
        if self.unimol is not None and name in self.unimol:
            out["uni"] = self.unimol[name]
        self._cache[key] = out
        return out
