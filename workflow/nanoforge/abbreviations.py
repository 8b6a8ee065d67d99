"""The chemical-abbreviation workbook: canonical reactant names, their roles, known products.

The paper's workbook (``chemical_abbreviations.xlsx``) has four sheets:

- ``qd``: ``source`` (Materials Project id), ``formula``: the products (``CdSe-1``, ...);
- ``ligand`` and ``solvent``: ``name`` (full name), ``abbreviations``;
- ``precursor``: ``name`` (full name, often empty), ``source``, ``formula/abbreviations``.

The canonical name of a chemical is its abbreviation or formula as the workbook writes it
(``OLA``, ``ODE``, ``PbO``): the recipe tables and the Uni-Mol descriptor table use those.
A reactant name is looked up, in order:

1. exactly, after Unicode NFKC normalisation and whitespace cleanup
   (full-width ``，`` -> ``,``, doubled or trailing spaces removed);
2. ignoring case and a trailing ``_`` (the workbook writes nonanoic acid ``NA_`` so that
   pandas does not read it as missing; the raw recipe sheet writes ``NA``), but only where
   that match is unambiguous;
3. by full name (``Oleylamine`` -> ``OLA``), exact, then ignoring case if unambiguous.

Roles: a name in the ``solvent`` sheet is a solvent, else one in the ``ligand`` sheet a
ligand, else one in the ``precursor`` sheet a precursor (some names are in several sheets:
``H2O`` and ``EG`` are solvents and ligands; ``TOP``, ``DT``, ``TTA`` ... ligands and
precursors; the first sheet in that order wins). A product of the ``qd`` sheet used as a
reactant (a seed or template nanocrystal, e.g. ``CsPbBr3-2`` in an anion exchange) is known
and a precursor. A hydrate (``CuCl2*2H2O``) takes the role
of its anhydrous base (``CuCl2``). A name in no sheet is a precursor when it reads as a
chemical formula containing an element other than H, C, N, O and the halogens (a metal
salt, a chalcogen or pnictogen source), otherwise ``other``; such names are reported as
unknown chemicals, never dropped.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

ROLES = ("precursor", "ligand", "solvent", "other")
ROLE_PRIORITY = ("solvent", "ligand", "precursor")

# Expected sheets and their header cells (after clean_text + casefold).
SHEETS = {
    "qd": ["source", "formula"],
    "ligand": ["name", "abbreviations"],
    "solvent": ["name", "abbreviations"],
    "precursor": ["name", "source", "formula/abbreviations"],
}

ELEMENTS = set(
    """H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge
    As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm
    Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U
    Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og""".split()
)
# Elements that do not make a formula a precursor on their own.
NON_SOURCE_ELEMENTS = {"H", "C", "N", "O", "F", "Cl", "Br", "I", "He", "Ne", "Ar", "Kr", "Xe", "Rn"}

_FORMULA_RE = re.compile(r"^(?:[A-Z][a-z]?|\d+(?:\.\d+)?|[()\[\]]|[*·.])+$")
_HYDRATE_RE = re.compile(r"^(.+?)\s*[*·.]\s*\d*(?:\.\d+)?\s*H2O$")


class AbbreviationError(ValueError):
    """The abbreviation workbook is missing, unreadable or lacks a sheet or column."""


def clean_text(value) -> str:
    """NFKC-normalise, trim and collapse internal whitespace; '' for None."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFKC", str(value))
    return " ".join(text.split())


def loose_key(text: str) -> str:
    """Case-insensitive lookup key: casefold, no spaces, no trailing underscores."""
    return clean_text(text).casefold().replace(" ", "").rstrip("_")


def formula_elements(name: str) -> set[str] | None:
    """Element symbols of ``name`` if it reads as a chemical formula, else None."""
    text = clean_text(name).replace(" ", "")
    if not text or not _FORMULA_RE.match(text):
        return None
    symbols = set(re.findall(r"[A-Z][a-z]?", text))
    if not symbols or not symbols <= ELEMENTS:
        return None
    return symbols


def strip_hydrate(name: str) -> str:
    """``CuCl2*2H2O`` -> ``CuCl2``; other names unchanged."""
    m = _HYDRATE_RE.match(clean_text(name).replace(" ", ""))
    return m.group(1) if m else clean_text(name)


@dataclass
class Chemical:
    name: str  # canonical (abbreviation or formula)
    sheets: set[str] = field(default_factory=set)
    full_names: set[str] = field(default_factory=set)

    @property
    def role(self) -> str:
        for sheet in ROLE_PRIORITY:
            if sheet in self.sheets:
                return sheet
        if "qd" in self.sheets:  # a nanocrystal used as seed or template for the product
            return "precursor"
        return "other"


@dataclass
class Lookup:
    """Result of a name lookup: canonical name, role and whether the workbook knows it."""

    name: str
    role: str
    known: bool


class ChemicalDictionary:
    """Name normalisation and roles from the abbreviation workbook (see module docstring)."""

    def __init__(self, chemicals: dict[str, Chemical], products: set[str], origin: str = "<memory>"):
        self.origin = origin
        self.chemicals = chemicals
        self.products = products
        self._exact: dict[str, str] = {}
        self._loose: dict[str, set[str]] = {}
        self._full: dict[str, str] = {}
        self._full_loose: dict[str, set[str]] = {}
        for canon, chem in chemicals.items():
            self._exact[canon] = canon
            self._loose.setdefault(loose_key(canon), set()).add(canon)
            for full in chem.full_names:
                self._full.setdefault(full, canon)
                self._full_loose.setdefault(loose_key(full), set()).add(canon)
        self._products_loose: dict[str, set[str]] = {}
        for p in products:
            self._products_loose.setdefault(loose_key(p), set()).add(p)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_rows(cls, sheets: dict[str, list[tuple]], origin: str = "<memory>") -> "ChemicalDictionary":
        """Build from sheet name -> data rows (header row excluded), as laid out in SHEETS."""
        chemicals: dict[str, Chemical] = {}

        def add(abbrev, full, sheet):
            canon = clean_text(abbrev)
            if not canon:
                return
            chem = chemicals.setdefault(canon, Chemical(canon))
            chem.sheets.add(sheet)
            full = clean_text(full)
            if full and full != canon:
                chem.full_names.add(full)

        for row in sheets.get("ligand", []):
            add(_cell(row, 1), _cell(row, 0), "ligand")
        for row in sheets.get("solvent", []):
            add(_cell(row, 1), _cell(row, 0), "solvent")
        for row in sheets.get("precursor", []):
            add(_cell(row, 2), _cell(row, 0), "precursor")
        for row in sheets.get("qd", []):
            add(_cell(row, 1), None, "qd")
        products = {clean_text(_cell(r, 1)) for r in sheets.get("qd", [])} - {""}
        return cls(chemicals, products, origin)

    @classmethod
    def load(cls, path: str | Path) -> "ChemicalDictionary":
        import openpyxl

        path = Path(path)
        if not path.is_file():
            raise AbbreviationError(f"chemical abbreviation workbook not found: {path}")
        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises several types for a non-xlsx file
            raise AbbreviationError(f"{path}: not a readable .xlsx workbook ({exc})") from exc
        try:
            found = {clean_text(n).casefold(): n for n in wb.sheetnames}
            missing = [s for s in SHEETS if s not in found]
            if missing:
                raise AbbreviationError(
                    f"{path}: missing sheet(s) {', '.join(missing)} "
                    f"(has {', '.join(wb.sheetnames)}; expected {', '.join(SHEETS)})"
                )
            sheets = {}
            for sheet, expected in SHEETS.items():
                rows = list(wb[found[sheet]].iter_rows(values_only=True))
                header = [clean_text(c).casefold() for c in (rows[0] if rows else ())]
                lacking = [c for c in expected if c not in header]
                if lacking:
                    raise AbbreviationError(
                        f"{path}: sheet '{sheet}' lacks column(s) {', '.join(lacking)} "
                        f"(header: {', '.join(h for h in header if h)})"
                    )
                order = [header.index(c) for c in expected]
                sheets[sheet] = [
                    tuple(row[i] if i < len(row) else None for i in order)
                    for row in rows[1:]
                    if any(v is not None for v in row)
                ]
        finally:
            wb.close()
        return cls.from_rows(sheets, origin=str(path))

    # -- lookups -----------------------------------------------------------------------
    def lookup(self, raw_name) -> Lookup:
        """Canonical name and role of a reactant name as written in a recipe."""
        text = clean_text(raw_name)
        canon = self._resolve(text)
        if canon is None:
            base = strip_hydrate(text)
            base_canon = self._resolve(base) if base != text else None
            if base_canon is not None:
                return Lookup(text, self.chemicals[base_canon].role, True)
            return Lookup(text, _guess_role(text), False)
        return Lookup(canon, self.chemicals[canon].role, True)

    def _resolve(self, text: str) -> str | None:
        if text in self._exact:
            return text
        hits = self._loose.get(loose_key(text), set())
        if len(hits) == 1:
            return next(iter(hits))
        if text in self._full:
            return self._full[text]
        hits = self._full_loose.get(loose_key(text), set())
        if len(hits) == 1:
            return next(iter(hits))
        return None

    def product(self, raw) -> tuple[str, bool]:
        """(cleaned product name, whether the ``qd`` sheet knows it)."""
        text = clean_text(raw)
        if text in self.products:
            return text, True
        hits = self._products_loose.get(loose_key(text), set())
        if len(hits) == 1:
            return next(iter(hits)), True
        return text, False


def _cell(row: tuple, i: int):
    return row[i] if i < len(row) else None


def _guess_role(name: str) -> str:
    elements = formula_elements(strip_hydrate(name))
    if elements and elements - NON_SOURCE_ELEMENTS:
        return "precursor"
    return "other"
