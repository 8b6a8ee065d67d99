"""The chemicals table (``resources/chemicals.csv``): every chemical name of the recipe data
-> canonical name, role, structure, and where the entry came from.

Columns (one row per name as the recipe tables write it):

``name``
    The reactant or product name exactly as ``recipes.parquet`` writes it (the abbreviation
    or formula of the paper's abbreviation workbook: ``OLA``, ``PbO``, ``CdSe-1``).
``canonical_name``
    A readable chemical name (``oleylamine``, ``lead(II) oxide``).
``role``
    The usual role in a colloidal synthesis: ``precursor``, ``ligand``, ``solvent``,
    ``reducing_agent``, ``product`` or ``other`` (halide sources, acids, bases, additives).
    A chemical can play several roles (oleylamine is a ligand, a solvent and a reducing
    agent); the table keeps the one the featurizer pools it under.
``smiles``
    SMILES of molecular species (organics, metal-organic salts written as ions, e.g. lead
    acetate ``CC(=O)[O-].CC(=O)[O-].[Pb+2]``), empty for inorganic salts, elements, products,
    polymers and mixtures. Every SMILES must parse with RDKit.
``formula``
    Empirical formula (any order, parentheses allowed: ``Pb(NO3)2``); for a molecular species
    it must agree with the SMILES atom for atom (hydrogens included), which checks the
    curation. Empty where the composition is not known (an isomer mixture of unknown chain
    length, a complex the source does not identify).
``source``
    Where the entry came from (the workbook sheet and its full name or database id; what was
    curated here).
``note``
    Caveats (a representative isomer chosen for a mixture, a polymer given by its repeat
    unit, ...).

A chemical has a *usable structure* when it has a SMILES (molecular descriptors) or a
formula (composition descriptors). The coverage report lists every chemical of the recipe
data with its status; featurizers treat ``formula_only``, ``no_structure`` and
``not_in_table`` chemicals explicitly (indicator columns, NaN descriptors), never as zeros.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import polars as pl

from nanoforge.text import unsafe_message

COLUMNS = ["name", "canonical_name", "role", "smiles", "formula", "source", "note"]
ROLES = ("precursor", "ligand", "solvent", "reducing_agent", "product", "other")
REACTANT_ROLES = tuple(r for r in ROLES if r != "product")
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "resources" / "chemicals.csv"

# Coverage statuses, best first.
STATUSES = ("smiles", "formula_only", "no_structure", "not_in_table")

_PHASE_RE = re.compile(r"-(\d+)$")
_HYDRATE_RE = re.compile(r"^(.+?)\s*[-*·.]\s*(\d*)H2O$")


class ChemicalsTableError(ValueError):
    """The chemicals table is missing, malformed or inconsistent: the message names the row."""


@dataclass(frozen=True)
class Chemical:
    name: str
    canonical_name: str
    role: str
    smiles: str | None
    formula: str | None
    source: str
    note: str

    @property
    def status(self) -> str:
        if self.smiles:
            return "smiles"
        if self.formula:
            return "formula_only"
        return "no_structure"


def product_formula(name: str) -> str:
    """Formula of a product name: the phase suffix (``CdSe-1``) dropped, a hydrate
    (``Cs2InCl5-H2O``, ``Cs2InCl5·H2O``) written as one formula (``Cs2InCl5H2O``)."""
    base = _PHASE_RE.sub("", name.strip())
    m = _HYDRATE_RE.match(base)
    if m:
        base = f"{m.group(1)}(H2O){m.group(2) or 1}"
    return base


def product_phase(name: str) -> int:
    """The phase suffix of a product name (``CdSe-2`` -> 2), 0 where there is none."""
    m = _PHASE_RE.search(name.strip())
    return int(m.group(1)) if m else 0


@lru_cache(maxsize=None)
def composition(formula: str) -> dict[str, float]:
    """Element -> amount of a formula (pymatgen parser); raises ValueError if unparsable."""
    from pymatgen.core import Composition, Element

    try:
        comp = Composition(formula)
    except Exception as exc:  # pymatgen raises several types
        raise ValueError(f"formula {formula!r} cannot be parsed: {exc}") from exc
    if comp.num_atoms <= 0:
        raise ValueError(f"formula {formula!r} has no atoms")
    unknown = [str(el) for el in comp.elements if not isinstance(el, Element)]
    if unknown:  # pymatgen reads unknown symbols as dummy species
        raise ValueError(f"formula {formula!r} has unknown element symbol(s) {unknown}")
    return {str(el): float(n) for el, n in comp.get_el_amt_dict().items()}


@lru_cache(maxsize=None)
def smiles_composition(smiles: str) -> dict[str, float]:
    """Element -> atom count of a SMILES, hydrogens included; raises ValueError if RDKit
    cannot parse it."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"SMILES {smiles!r} does not parse with RDKit")
    counts = Counter(a.GetSymbol() for a in Chem.AddHs(mol).GetAtoms())
    return {el: float(n) for el, n in counts.items()}


def _same_composition(a: dict[str, float], b: dict[str, float]) -> bool:
    return set(a) == set(b) and all(abs(a[k] - b[k]) < 1e-6 for k in a)


def check_rows(rows: list[dict], where: str = "chemicals table", lines: list[int] | None = None) -> list[str]:
    """Every problem of the table rows, each naming its line: ``lines[k]``, the file line
    where row ``k`` starts, or k + 2 (header = line 1, no blank lines) without it."""
    problems = []
    seen: dict[str, int] = {}
    for k, row in enumerate(rows):
        i = lines[k] if lines is not None else k + 2
        unsafe = [f"column {col!r}: {msg}" for col in COLUMNS if (msg := unsafe_message(row.get(col)))]
        if unsafe:  # NUL, bidirectional or zero-width characters (nanoforge.text)
            problems.append(f"{where} line {i}: " + "; ".join(unsafe))
            continue
        name = row["name"]
        at = f"{where} line {i} ({name!r})"
        if not name:
            problems.append(f"{where} line {i}: empty name")
            continue
        if name in seen:
            problems.append(f"{at}: name repeats line {seen[name]}")
        seen.setdefault(name, i)
        if row["role"] not in ROLES:
            problems.append(f"{at}: role {row['role']!r} is not one of {', '.join(ROLES)}")
        if not row["canonical_name"]:
            problems.append(f"{at}: empty canonical_name")
        if not row["source"]:
            problems.append(f"{at}: empty source")
        comp_f = comp_s = None
        if row["formula"]:
            try:
                comp_f = composition(row["formula"])
            except ValueError as exc:
                problems.append(f"{at}: {exc}")
        if row["smiles"]:
            try:
                comp_s = smiles_composition(row["smiles"])
            except ValueError as exc:
                problems.append(f"{at}: {exc}")
            if comp_s is not None and not row["formula"]:
                problems.append(f"{at}: a SMILES needs its formula (the curation check)")
        if comp_f is not None and comp_s is not None and not _same_composition(comp_f, comp_s):
            problems.append(
                f"{at}: formula {row['formula']!r} disagrees with the SMILES "
                f"({_fmt_comp(comp_s)})"
            )
        if row["role"] == "product" and row["smiles"]:
            problems.append(f"{at}: a product is given by its formula, not a SMILES")
    return problems


def _fmt_comp(comp: dict[str, float]) -> str:
    return "".join(f"{el}{int(n) if float(n).is_integer() else n}" for el, n in sorted(comp.items()))


class ChemicalTable:
    """The chemicals table, loaded and checked."""

    def __init__(self, rows: list[dict], where: str = "chemicals table", lines: list[int] | None = None):
        problems = check_rows(rows, where, lines)
        if problems:
            shown = "\n  - ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise ChemicalsTableError(f"{where} is invalid:\n  - {shown}{more}")
        self.where = where
        self._by_name = {
            r["name"]: Chemical(
                name=r["name"],
                canonical_name=r["canonical_name"],
                role=r["role"],
                smiles=r["smiles"] or None,
                formula=r["formula"] or None,
                source=r["source"],
                note=r["note"],
            )
            for r in rows
        }

    @classmethod
    def read(cls, path: str | Path = DEFAULT_PATH) -> "ChemicalTable":
        path = Path(path)
        if not path.is_file():
            raise ChemicalsTableError(f"chemicals table not found: {path}")
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header != COLUMNS:
                raise ChemicalsTableError(f"{path}: columns are {header}, expected {COLUMNS}")
            rows, lines, start = [], [], reader.line_num + 1
            for values in reader:  # blank lines are skipped, but counted in the line numbers
                if any(v.strip() for v in values):
                    if len(values) != len(COLUMNS):
                        raise ChemicalsTableError(
                            f"{path} line {start}: {len(values)} fields, the header {len(COLUMNS)}")
                    rows.append({k: v.strip() for k, v in zip(COLUMNS, values)})
                    lines.append(start)
                start = reader.line_num + 1
        return cls(rows, where=str(path), lines=lines)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self):
        return iter(self._by_name.values())

    def get(self, name: str) -> Chemical | None:
        return self._by_name.get(name)

    def status(self, name: str) -> str:
        chem = self._by_name.get(name)
        return "not_in_table" if chem is None else chem.status

    def role(self, name: str, fallback: str = "other") -> str:
        chem = self._by_name.get(name)
        return chem.role if chem is not None else fallback

    def formula(self, name: str) -> str | None:
        chem = self._by_name.get(name)
        return chem.formula if chem is not None else None

    def to_frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            [
                {
                    "name": c.name, "canonical_name": c.canonical_name, "role": c.role,
                    "smiles": c.smiles, "formula": c.formula, "source": c.source,
                    "note": c.note,
                }
                for c in self
            ],
            schema={k: pl.String for k in COLUMNS},
        )


def recipe_chemicals(recipes: pl.DataFrame) -> pl.DataFrame:
    """Every chemical name of a recipes table with how it is used: ``name``, ``used_as``
    (``reactant`` or ``product``), ``n_recipes``, ``recipe_role`` (the ingestion's role, the
    most frequent where several)."""
    reactants = (
        recipes.select("recipe_id", "reactants")
        .explode("reactants")
        .unnest("reactants")
        .group_by("name")
        .agg(
            pl.col("recipe_id").n_unique().alias("n_recipes"),
            pl.col("role").mode().first().alias("recipe_role"),
        )
        .with_columns(pl.lit("reactant").alias("used_as"))
    )
    products = (
        recipes.group_by(pl.col("product").alias("name"))
        .agg(pl.len().cast(pl.UInt32).alias("n_recipes"))
        .with_columns(pl.lit("product").alias("recipe_role"), pl.lit("product").alias("used_as"))
    )
    cols = ["name", "used_as", "n_recipes", "recipe_role"]
    return (
        pl.concat([reactants.select(cols), products.select(cols)])
        .with_columns(pl.col("n_recipes").cast(pl.Int64))
        .sort("used_as", "n_recipes", "name", descending=[True, True, False])
    )


def coverage_report(recipes: pl.DataFrame, table: ChemicalTable) -> pl.DataFrame:
    """One row per chemical name of ``recipes``: ``name``, ``used_as``, ``n_recipes``,
    ``status`` (``smiles``, ``formula_only``, ``no_structure``, ``not_in_table``),
    ``has_smiles``, ``has_formula``, ``role``, ``note``. Rows without a usable structure
    (status ``no_structure`` or ``not_in_table``) come first."""
    used = recipe_chemicals(recipes)
    rows = []
    for rec in used.iter_rows(named=True):
        chem = table.get(rec["name"])
        status = table.status(rec["name"])
        rows.append(
            {
                **rec,
                "status": status,
                "has_smiles": bool(chem and chem.smiles),
                "has_formula": bool(chem and chem.formula),
                "role": chem.role if chem else None,
                "note": chem.note if chem else "not in the chemicals table",
            }
        )
    out = pl.DataFrame(
        rows,
        schema={
            "name": pl.String, "used_as": pl.String, "n_recipes": pl.Int64,
            "recipe_role": pl.String, "status": pl.String, "has_smiles": pl.Boolean,
            "has_formula": pl.Boolean, "role": pl.String, "note": pl.String,
        },
    )
    order = {s: i for i, s in enumerate(reversed(STATUSES))}
    return out.with_columns(
        pl.col("status").replace_strict(order, return_dtype=pl.Int64).alias("_o")
    ).sort("_o", "n_recipes", descending=[False, True]).drop("_o")


def coverage_summary(report: pl.DataFrame) -> str:
    """A few lines for a log: counts per status, and the names without a usable structure."""
    lines = []
    for used_as in ("reactant", "product"):
        sub = report.filter(pl.col("used_as") == used_as)
        counts = {s: int((sub["status"] == s).sum()) for s in STATUSES}
        lines.append(f"{used_as}s: {sub.height} names; " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    missing = report.filter(pl.col("status").is_in(["no_structure", "not_in_table"]))
    if missing.height:
        lines.append(
            "without a usable structure: "
            + ", ".join(f"{r['name']} ({r['status']}, {r['n_recipes']} recipes)" for r in missing.iter_rows(named=True))
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m nanoforge.chemicals [--table PATH] [--recipes recipes.parquet]``: check the
    table (every SMILES parses and agrees with its formula) and, given a recipes table, print
    its coverage. Exit status 1 when the table is invalid or a recipe chemical is missing."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m nanoforge.chemicals", description=main.__doc__)
    ap.add_argument("--table", default=str(DEFAULT_PATH))
    ap.add_argument("--recipes", help="a recipes.parquet to check coverage against")
    args = ap.parse_args(argv)
    try:
        table = ChemicalTable.read(args.table)
    except ChemicalsTableError as exc:
        print(exc, file=sys.stderr)
        return 1
    counts = Counter(c.status for c in table)
    print(f"{args.table}: {len(table)} chemicals, all valid; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if args.recipes:
        report = coverage_report(pl.read_parquet(args.recipes), table)
        print(coverage_summary(report))
        return 1 if (report["status"] == "not_in_table").any() else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
