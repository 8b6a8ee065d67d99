"""Composition descriptors of a chemical formula: element-property statistics.

For a formula (``PbSe``, ``Cs2CO3``, ``C18H37N``) each element property of pymatgen's
element data is summarised over the atoms of one formula unit: the atom-fraction-weighted
``mean``, the ``min``, ``max`` and ``range`` over the elements present. Plus the number of
elements, the atoms per formula unit and the atom fractions of element classes (metal,
transition metal, rare earth, alkali, chalcogen, pnictogen, halogen, hydrogen, carbon).

Column names: ``<property>_<stat>`` and ``n_elements``, ``n_atoms``, ``frac_<class>``.
An element without a value for a property (e.g. the atomic radius of a noble gas) is left
out of that property's statistics; a property no element has is NaN.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from nanoforge.chemicals import composition

PROPERTIES = ("Z", "X", "atomic_radius", "row", "group", "atomic_mass", "mendeleev_no",
              "ionization_energy")
STATS = ("mean", "min", "max", "range")
CLASSES = ("metal", "transition_metal", "rare_earth", "alkali", "chalcogen", "pnictogen",
           "halogen", "hydrogen", "carbon")

PNICTOGENS = {"N", "P", "As", "Sb", "Bi"}


def names() -> list[str]:
    """Column names of composition_descriptors, in order."""
    cols = [f"{p}_{s}" for p in PROPERTIES for s in STATS]
    return cols + ["n_elements", "n_atoms"] + [f"frac_{c}" for c in CLASSES]


@lru_cache(maxsize=None)
def element_data(symbol: str) -> dict[str, float]:
    """The properties and classes of one element (NaN where pymatgen has no value)."""
    from pymatgen.core import Element

    el = Element(symbol)

    def num(value) -> float:
        try:
            return float(value) if value is not None else float("nan")
        except (TypeError, ValueError):
            return float("nan")

    data = {
        "Z": float(el.Z),
        "X": num(el.X),
        "atomic_radius": num(el.atomic_radius),
        "row": float(el.row),
        "group": float(el.group),
        "atomic_mass": num(el.atomic_mass),
        "mendeleev_no": num(el.mendeleev_no),
        "ionization_energy": num(getattr(el, "ionization_energy", None)),
        "metal": float(bool(el.is_metal)),
        "transition_metal": float(bool(el.is_transition_metal)),
        "rare_earth": float(bool(el.is_rare_earth)),
        "alkali": float(bool(el.is_alkali)),
        "chalcogen": float(bool(el.is_chalcogen)),
        "pnictogen": float(symbol in PNICTOGENS),
        "halogen": float(bool(el.is_halogen)),
        "hydrogen": float(symbol == "H"),
        "carbon": float(symbol == "C"),
    }
    return data


@lru_cache(maxsize=None)
def _descriptors(formula: str) -> tuple[float, ...]:
    comp = composition(formula)
    els = list(comp)
    amounts = np.array([comp[e] for e in els], dtype=float)
    frac = amounts / amounts.sum()
    data = [element_data(e) for e in els]
    out: list[float] = []
    for prop in PROPERTIES:
        vals = np.array([d[prop] for d in data])
        ok = ~np.isnan(vals)
        if not ok.any():
            out += [float("nan")] * len(STATS)
            continue
        v, w = vals[ok], frac[ok] / frac[ok].sum()
        out += [float((v * w).sum()), float(v.min()), float(v.max()), float(v.max() - v.min())]
    out += [float(len(els)), float(amounts.sum())]
    out += [float(sum(f * d[c] for f, d in zip(frac, data))) for c in CLASSES]
    return tuple(out)


def composition_descriptors(formula: str) -> dict[str, float]:
    """Descriptors of one formula (see the module docstring); ValueError if it does not parse."""
    return dict(zip(names(), _descriptors(formula)))


def element_fractions(formula: str) -> dict[str, float]:
    """Element -> atom fraction of a formula."""
    comp = composition(formula)
    total = sum(comp.values())
    return {el: n / total for el, n in comp.items()}
