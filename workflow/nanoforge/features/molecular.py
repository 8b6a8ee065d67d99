"""Molecular descriptors from a SMILES with RDKit: a chosen set of physico-chemical
descriptors and a folded Morgan fingerprint.

A metal-organic salt written as ions (``CC(=O)[O-].CC(=O)[O-].[Pb+2]``) is one "molecule"
with several fragments: the descriptors describe the whole formula unit; ``n_fragments``,
``largest_fragment_heavy_atoms`` (the longest ligand chain, roughly) and
``abs_formal_charge`` say how it is built.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# RDKit descriptor functions by name (rdkit.Chem.Descriptors / rdMolDescriptors).
DESCRIPTORS = (
    "MolWt",
    "HeavyAtomCount",
    "NumHeteroatoms",
    "NumHDonors",
    "NumHAcceptors",
    "TPSA",
    "MolLogP",
    "MolMR",
    "NumRotatableBonds",
    "RingCount",
    "NumAromaticRings",
    "FractionCSP3",
    "NumValenceElectrons",
)
EXTRA = ("n_fragments", "largest_fragment_heavy_atoms", "abs_formal_charge")


class SmilesError(ValueError):
    """A SMILES that RDKit cannot parse."""


def names() -> list[str]:
    return list(DESCRIPTORS) + list(EXTRA)


@lru_cache(maxsize=None)
def _mol(smiles: str):
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise SmilesError(f"RDKit cannot parse SMILES {smiles!r}")
    return mol


@lru_cache(maxsize=None)
def _descriptors(smiles: str) -> tuple[float, ...]:
    from rdkit import Chem
    from rdkit.Chem import Descriptors

    mol = _mol(smiles)
    out = [float(getattr(Descriptors, name)(mol)) for name in DESCRIPTORS]
    frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    out.append(float(len(frags)))
    out.append(float(max(f.GetNumHeavyAtoms() for f in frags)))
    out.append(float(sum(abs(a.GetFormalCharge()) for a in mol.GetAtoms())))
    return tuple(out)


def rdkit_descriptors(smiles: str) -> dict[str, float]:
    """The descriptors of DESCRIPTORS and EXTRA for one SMILES."""
    return dict(zip(names(), _descriptors(smiles)))


@lru_cache(maxsize=None)
def _morgan(smiles: str, n_bits: int, radius: int) -> tuple[int, ...]:
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    return tuple(int(b) for b in gen.GetFingerprintAsNumPy(_mol(smiles)))


def morgan_bits(smiles: str, n_bits: int = 64, radius: int = 2) -> np.ndarray:
    """Folded Morgan (ECFP-like) fingerprint bits, 0/1, length ``n_bits``."""
    if n_bits <= 0:
        raise ValueError("n_bits must be positive")
    return np.array(_morgan(smiles, n_bits, radius), dtype=float)
