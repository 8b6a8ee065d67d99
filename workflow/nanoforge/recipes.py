"""Recipe ingestion: the paper's raw workbook and processed CSV -> one table of recipes plus
a table of rejected rows with their reasons.

Two source formats (config ``recipes.sources[].format``):

``workbook``
    The paper's ``Raw recipe dataset.xlsx`` layout: the first sheet, a header row, then one
    recipe per row. Columns are found by header text (case, spacing and ``℃``/``°C``
    ignored): ``Nanocrystal Composition``, ``injection temperature/℃``, ``reaction
    temperature/℃``, ``reaction time/min``, pairs of ``additive amount/mmol`` + ``reactants``
    (amount first), ``D/nm``, ``Size distribution/%``, ``shape``, ``Number of statistics``,
    ``DOI``, ``heating rate/℃ min-1``; optional ``Using Segmentation Models/Y or N``.
    ``recipe_id`` = ``<source>:<spreadsheet row number>`` (header = row 1), stable as long
    as rows are not inserted above it.

``csv``
    The paper's processed model-input layout (``0309_classification_and_reg-raw-v3.csv``),
    the format for one's own datasets: ``ID``, ``Temperature1`` (injection °C),
    ``Temperature2`` (reaction °C), ``Speed`` (°C/min), ``Time`` (min), ``Num`` (particles
    counted, -1 = unknown), ``Y1`` (size nm), ``Y2`` (size spread %), ``Y3`` (index into the
    shapes list), ``T2`` (product; ``T1``, its amount, is not used), reactant pairs
    ``<L>1`` (mmol) / ``<L>2`` (name, ``PlaceHolder`` or empty = no reactant) for letters
    other than T and Y; an optional ``DOI`` column. ``recipe_id`` = ``<source>:<ID>``.

``source_row`` is the row number a spreadsheet program shows (header = row 1): blank lines
and empty workbook rows count (they are rows there, though they hold no recipe and are not
read), a CSV record whose quoted cell spans several lines is one row.

Text cells used as names or identifiers (product, reactant names, shape, ID, DOI) must not
hold an unsafe character (NUL and other controls, bidirectional and zero-width
characters: :mod:`nanoforge.text`): such a row is rejected with reason
``control_character_in_<field>``. Tabs and line breaks inside a name are harmless: like
runs of spaces they become one space (``clean_text``). Cells the ingestion does not use are
not checked.

Rejection reasons (``rejected.parquet``; a row can have several, ``reason`` is the first):
``malformed_row`` (CSV row with the wrong number of fields), ``missing_id``,
``duplicate_id`` (a later row reusing an ID; the first is kept), ``duplicate_row`` (a later
row identical to an earlier one apart from its ID), ``missing_product``, ``missing_size``,
``non_numeric_size`` (``bs``, ``?``, ``hx1`` ...), ``size_out_of_bounds``,
``missing_shape``, ``unknown_shape``, ``missing_temperature``,
``non_numeric_temperature``, ``temperature_out_of_bounds``, ``missing_time``,
``non_numeric_time``, ``time_out_of_bounds``, ``heating_rate_out_of_bounds``,
``spread_out_of_bounds``, ``no_reactants``, ``missing_reactant_name``,
``invalid_reactant_name``, ``missing_amount``, ``non_numeric_amount``,
``negative_amount``, ``amount_out_of_bounds``, ``control_character_in_product``,
``control_character_in_reactant_name``, ``control_character_in_shape``,
``control_character_in_id``, ``control_character_in_doi``. Bounds come from config
``recipes.bounds`` (inclusive). In the rejected table, unsafe characters of ``raw`` and
``source_id`` are written as JSON escapes (``\\u0000``).

Accepted with a flag (``recipes.parquet`` column ``flags``; the value becomes null):
a missing, non-numeric (``?``, ``*``) or invalid particle count (38 % of the workbook's
counts are not numbers: rejecting those rows would throw away a third of the recipes
for a value that only weights the size label), a missing or non-numeric size spread or
heating rate; also ``unknown_product`` (not in the ``qd`` sheet) and ``unknown_chemical``
(a reactant not in the abbreviation workbook; listed in ``unknown_chemicals``).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import polars as pl

from nanoforge import tables, vocabulary
from nanoforge.abbreviations import ChemicalDictionary, clean_text, loose_key
from nanoforge.text import escape_unsafe, unsafe_message

log = logging.getLogger(__name__)

FORMATS = ("workbook", "csv")
LABEL_SOURCE = "literature"
BOUND_KEYS = ("temp_c", "time_min", "heating_rate_c_per_min", "size_nm", "size_spread_pct", "mmol")
UNITS = {"temp_c": "°C", "time_min": "min", "heating_rate_c_per_min": "°C/min", "size_nm": "nm",
         "size_spread_pct": "%", "mmol": "mmol"}
NON_NEGATIVE = ("time_min", "size_nm", "size_spread_pct", "mmol")  # physical limits

RECIPES_SCHEMA = tables.load_table_schema("recipes")
REJECTED_SCHEMA = tables.load_table_schema("rejected")


class RecipeFormatError(ValueError):
    """A recipe source cannot be read as its format: the message names the file and columns."""


# ----------------------------------------------------------------------------------------
# shapes


def read_shapes_list(path: str | Path) -> list[str]:
    """The shape classes of the shapes list, one a line, in the vocabulary's spelling
    (``Y3`` indexes this list). Every line must name a class of
    :data:`nanoforge.vocabulary.SHAPE_CLASSES` in a spelling the vocabulary accepts (the
    paper's list spells four classes its own way, see :data:`nanoforge.vocabulary.PAPER_SHAPES_LIST`)."""
    path = Path(path)
    if not path.is_file():
        raise RecipeFormatError(f"shapes list not found: {path}")
    lines = [(i, clean_text(line)) for i, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1)]
    lines = [(i, text) for i, text in lines if text]
    if not lines:
        raise RecipeFormatError(f"{path}: the shapes list is empty")
    classes = []
    for i, text in lines:
        cls = vocabulary.find_shape_class(text)
        if cls is None:
            raise RecipeFormatError(f"{path} line {i}: {text!r} is not a shape class; known shapes: "
                                    f"{', '.join(vocabulary.SHAPE_CLASSES)} (nanoforge.vocabulary)")
        classes.append(cls)
    dup = sorted({c for c in classes if classes.count(c) > 1})
    if dup:
        raise RecipeFormatError(f"{path}: shape(s) listed twice: {', '.join(dup)}")
    return classes


class ShapeMapper:
    """Maps free-text shapes (any spelling :mod:`nanoforge.vocabulary` accepts) and ``Y3``
    indices to the classes of the shapes list."""

    def __init__(self, classes: list[str]):
        self.classes = [vocabulary.shape_class(c) for c in classes]

    def from_text(self, text) -> str | None:
        cls = vocabulary.find_shape_class(clean_text(text))
        return cls if cls in self.classes else None

    def from_index(self, value: float) -> str | None:
        if value != int(value) or not 0 <= value < len(self.classes):
            return None
        return self.classes[int(value)]


# ----------------------------------------------------------------------------------------
# bounds and values


def default_bounds() -> dict[str, list[float]]:
    """The bounds defaults of the config schema (the one place they are written)."""
    from nanoforge.config import load_schema

    props = load_schema()["properties"]["recipes"]["properties"]["bounds"]["properties"]
    return {k: list(v["default"]) for k, v in props.items()}


def check_bounds(bounds: dict | None) -> dict[str, tuple[float, float]]:
    merged = default_bounds()
    merged.update(bounds or {})
    unknown = sorted(set(merged) - set(BOUND_KEYS))
    if unknown:
        raise ValueError(f"unknown recipes.bounds key(s): {', '.join(unknown)}")
    out = {}
    for key in BOUND_KEYS:
        lo, hi = merged[key]
        if lo > hi:
            raise ValueError(f"recipes.bounds.{key}: lower bound {lo} is above upper bound {hi}")
        if key in NON_NEGATIVE and lo < 0:
            raise ValueError(f"recipes.bounds.{key}: lower bound {lo} is negative; a {key} cannot be")
        out[key] = (float(lo), float(hi))
    return out


def parse_number(value: Any) -> tuple[float | None, str]:
    """(number, status) with status 'ok', 'missing' (empty) or 'non_numeric'."""
    if value is None:
        return None, "missing"
    if isinstance(value, bool):
        return None, "non_numeric"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return None, "missing"
        return (float(value), "ok") if math.isfinite(value) else (None, "non_numeric")
    text = clean_text(value)
    if text == "":
        return None, "missing"
    try:
        number = float(text)
    except ValueError:
        return None, "non_numeric"
    if not math.isfinite(number):
        return None, "non_numeric"
    return number, "ok"


def clean_doi(value) -> str | None:
    text = clean_text(value)
    text = re.sub(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", "", text, flags=re.IGNORECASE)
    return text or None


def _fmt(value) -> str:
    if isinstance(value, float) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)


# ----------------------------------------------------------------------------------------
# one source row, format-independent


@dataclass
class Cell:
    """A source value and the column it came from (for messages)."""

    value: Any
    column: str


@dataclass
class RawRow:
    source: str
    source_row: int
    raw: dict
    fingerprint: str  # the row's content apart from its ID, for duplicate detection
    product: Cell
    injection_temp: Cell
    reaction_temp: Cell
    time: Cell
    heating_rate: Cell
    size: Cell
    spread: Cell
    count: Cell
    shape: Cell
    shape_is_index: bool
    reactants: list[tuple[Cell, Cell]]  # (name, amount)
    source_id: str | None = None
    id_column: str | None = None
    doi: Any = None
    doi_column: str = "DOI"
    segmentation: Any = None
    count_unknown_values: tuple = ()  # numeric values meaning "not counted" (CSV: -1)
    empty_names: tuple = ()  # name texts meaning "no reactant in this slot" (loose keys)
    malformed: str | None = None  # why the row could not be split into fields


VALUE_FIELDS = ("product", "injection_temp", "reaction_temp", "time", "heating_rate", "size",
                "spread", "count", "shape")
"""The :class:`RawRow` fields that hold one source cell each."""


def _value_cells(cell: Callable[[str], Cell]) -> dict[str, Cell]:
    """The :data:`VALUE_FIELDS` of a :class:`RawRow`, each read by ``cell(field)`` (the
    reader's column lookup), as keyword arguments for :class:`RawRow`."""
    return {fld: cell(fld) for fld in VALUE_FIELDS}


@dataclass
class Context:
    chemicals: ChemicalDictionary
    shapes: ShapeMapper
    bounds: dict[str, tuple[float, float]]


class _Checker:
    """Collects reasons (rejecting) and flags (accepting with a null) for one row."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.reasons: list[tuple[str, str]] = []
        self.flags: list[str] = []

    def reject(self, code: str, message: str) -> None:
        self.reasons.append((code, message))

    def flag(self, code: str) -> None:
        if code not in self.flags:
            self.flags.append(code)

    def safe_text(self, value, column: str | None, field: str) -> bool:
        """False, with reason ``control_character_in_<field>``, where a text value holds an
        unsafe character (:mod:`nanoforge.text`)."""
        problem = unsafe_message(value)
        if problem:
            where = f"column {column!r}: " if column else ""
            self.reject(f"control_character_in_{field}", f"{where}{problem}")
        return problem is None

    def number(self, cell: Cell, what: str, bound: str, *, required: bool, positive=False,
               flag_name: str | None = None) -> float | None:
        """Parse a numeric cell. Required: missing/non-numeric/out-of-bounds reject.
        Optional: missing/non-numeric flag ``missing_<flag_name>``/``non_numeric_<flag_name>``
        and give None; out of bounds still rejects."""
        value, status = parse_number(cell.value)
        if status != "ok":
            if required:
                self.reject(f"{status}_{what}",
                            f"column {cell.column!r}: " + ("empty" if status == "missing"
                                                          else f"{_fmt(cell.value)} is not a number"))
            else:
                self.flag(f"{status}_{flag_name or what}")
            return None
        lo, hi = self.ctx.bounds[bound]
        unit = UNITS[bound]
        if not lo <= value <= hi or (positive and value <= 0):
            rng = f"[{_fmt(lo)}, {_fmt(hi)}] {unit} (config recipes.bounds.{bound})"
            extra = " and must be positive" if positive and value <= 0 else ""
            self.reject(f"{what}_out_of_bounds",
                        f"column {cell.column!r}: {_fmt(value)} {unit} is outside {rng}{extra}")
            return None
        return value


REACTANT_REASONS = {"missing_reactant_name", "invalid_reactant_name", "missing_amount",
                    "non_numeric_amount", "negative_amount", "amount_out_of_bounds"}


def validate_row(row: RawRow, ctx: Context) -> tuple[dict | None, list[tuple[str, str]]]:
    """Return (recipe record, []) for an accepted row or (None, reasons) for a rejected one."""
    if row.malformed:
        return None, [("malformed_row", row.malformed)]
    c = _Checker(ctx)
    if row.id_column is not None and not row.source_id:
        c.reject("missing_id", f"column {row.id_column!r}: empty")
    c.safe_text(row.source_id, row.id_column, "id")
    c.safe_text(row.doi, row.doi_column, "doi")

    product_text = clean_text(row.product.value)
    if not c.safe_text(row.product.value, row.product.column, "product"):
        product = None
    elif not product_text:
        c.reject("missing_product", f"column {row.product.column!r}: empty")
        product = None
    else:
        product, known = ctx.chemicals.product(product_text)
        if not known:
            c.flag("unknown_product")

    size = c.number(row.size, "size", "size_nm", required=True, positive=True)

    shape = None
    raw_shape = row.shape.value
    if not c.safe_text(raw_shape, row.shape.column, "shape"):
        pass  # the reason is given
    elif raw_shape is None or clean_text(raw_shape) == "":
        c.reject("missing_shape", f"column {row.shape.column!r}: empty")
    elif row.shape_is_index:
        idx, status = parse_number(raw_shape)
        shape = ctx.shapes.from_index(idx) if status == "ok" else None
        if shape is None:
            c.reject("unknown_shape",
                     f"column {row.shape.column!r}: {_fmt(raw_shape)} is not an index into the "
                     f"shapes list (0..{len(ctx.shapes.classes) - 1})")
    else:
        shape = ctx.shapes.from_text(raw_shape)
        if shape is None:
            c.reject("unknown_shape",
                     f"column {row.shape.column!r}: {_fmt(raw_shape)} is not one of the shape "
                     f"classes ({', '.join(ctx.shapes.classes)}) or an unambiguous synonym")

    t_inj = c.number(row.injection_temp, "temperature", "temp_c", required=True)
    t_react = c.number(row.reaction_temp, "temperature", "temp_c", required=True)
    time = c.number(row.time, "time", "time_min", required=True)
    rate = c.number(row.heating_rate, "heating_rate", "heating_rate_c_per_min", required=False)
    spread = c.number(row.spread, "spread", "size_spread_pct", required=False)

    n_counted = None
    count, status = parse_number(row.count.value)
    if status != "ok":
        c.flag(f"{status}_count")
    elif count in row.count_unknown_values:
        c.flag("missing_count")
    elif count != int(count) or count < 1:
        c.flag("invalid_count")
    else:
        n_counted = int(count)

    reactants, unknown = [], []
    lo, hi = ctx.bounds["mmol"]
    for name_cell, amount_cell in row.reactants:
        name_value = name_cell.value
        if not c.safe_text(name_value, name_cell.column, "reactant_name"):
            continue
        name = clean_text(name_value)
        amount, status = parse_number(amount_cell.value)
        if not name or loose_key(name) in row.empty_names:
            if status == "non_numeric" or (status == "ok" and amount != 0):
                c.reject("missing_reactant_name",
                         f"column {amount_cell.column!r}: amount {_fmt(amount_cell.value)} has no "
                         f"reactant name in column {name_cell.column!r}")
            continue
        if isinstance(name_value, (int, float)) and not isinstance(name_value, bool):
            c.reject("invalid_reactant_name",
                     f"column {name_cell.column!r}: {_fmt(name_value)} is a number, not a reactant name")
            continue
        if status == "missing":
            c.reject("missing_amount",
                     f"column {amount_cell.column!r}: no amount for reactant {name!r} "
                     f"(column {name_cell.column!r})")
            continue
        if status == "non_numeric":
            c.reject("non_numeric_amount",
                     f"column {amount_cell.column!r}: amount {_fmt(amount_cell.value)} of {name!r} "
                     f"is not a number")
            continue
        if amount < 0:
            c.reject("negative_amount",
                     f"column {amount_cell.column!r}: amount {_fmt(amount)} mmol of {name!r} is negative")
            continue
        if not lo <= amount <= hi:
            c.reject("amount_out_of_bounds",
                     f"column {amount_cell.column!r}: {_fmt(amount)} mmol of {name!r} is outside "
                     f"[{_fmt(lo)}, {_fmt(hi)}] mmol (config recipes.bounds.mmol)")
            continue
        hit = ctx.chemicals.lookup(name)
        if not hit.known:
            unknown.append(hit.name)
            c.flag("unknown_chemical")
        reactants.append({"name": hit.name, "mmol": amount, "role": hit.role})
    if not reactants and not any(code in REACTANT_REASONS for code, _ in c.reasons):
        c.reject("no_reactants", "no reactant with a name and an amount")

    if c.reasons:
        return None, c.reasons
    seg = clean_text(row.segmentation).upper()
    return {
        "recipe_id": f"{row.source}:{row.source_id if row.id_column else row.source_row}",
        "source": row.source,
        "source_row": row.source_row,
        "source_id": row.source_id,
        "doi": clean_doi(row.doi),
        "product": product,
        "injection_temp_c": t_inj,
        "reaction_temp_c": t_react,
        "heating_rate_c_per_min": rate,
        "time_min": time,
        "reactants": reactants,
        "size_nm": size,
        "size_spread_pct": spread,
        "shape": shape,
        "n_counted": n_counted,
        "label_source": LABEL_SOURCE,
        "measured_by_segmentation": {"Y": True, "N": False}.get(seg),
        "flags": c.flags,
        "unknown_chemicals": list(dict.fromkeys(unknown)),
    }, []


# ----------------------------------------------------------------------------------------
# readers


def _need_file(path: Path, source: str) -> None:
    if not path.is_file():
        raise RecipeFormatError(f"recipe source {source!r}: file not found: {path}")


def _header_key(text) -> str:
    return clean_text(text).casefold()


def _header_problems(missing: list[str], doubled: list[str], unpaired: list[str] | None = None) -> str:
    """The header's faults as one message part ('' when there are none): missing columns,
    columns without their partner, columns given twice."""
    problem = []
    if missing:
        problem.append(f"missing column(s) {', '.join(missing)}")
    if unpaired:
        problem.append(f"missing partner column(s) {', '.join(unpaired)}")
    if doubled:
        problem.append(f"column(s) given twice: {', '.join(doubled)}")
    return "; ".join(problem)


WORKBOOK_COLUMNS = {
    "product": "Nanocrystal Composition",
    "injection_temp": "injection temperature/℃",
    "reaction_temp": "reaction temperature/℃",
    "time": "reaction time/min",
    "size": "D/nm",
    "spread": "Size distribution/%",
    "shape": "shape",
    "count": "Number of statistics",
    "doi": "DOI",
    "heating_rate": "heating rate/℃ min-1",
}
WORKBOOK_OPTIONAL = {"segmentation": "Using Segmentation Models/Y or N"}
WORKBOOK_AMOUNT = "additive amount/mmol"
WORKBOOK_NAME = "reactants"


def read_workbook(path: str | Path, source: str) -> Iterable[RawRow]:
    """Rows of the paper's raw recipe workbook (first sheet). Entirely empty rows are
    skipped (and counted in the log): they hold no recipe."""
    import openpyxl
    from openpyxl.utils import get_column_letter

    path = Path(path)
    _need_file(path, source)
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise RecipeFormatError(f"{path}: not a readable .xlsx workbook ({exc})") from exc
    try:
        if not wb.worksheets:
            raise RecipeFormatError(f"{path}: the workbook has no sheet")
        ws = wb.worksheets[0]
        if len(wb.worksheets) > 1:
            log.warning("%s: %d sheets; reading the first, %r", path, len(wb.worksheets), ws.title)
        rows = ws.iter_rows(values_only=True)
        header = list(next(rows, ()) or ())
        keys = [_header_key(h) for h in header]
        letters = [get_column_letter(i + 1) for i in range(len(header))]
        label = [f"{letters[i]}:{clean_text(header[i])}" if keys[i] else letters[i] for i in range(len(header))]

        cols: dict[str, int] = {}
        missing, doubled = [], []
        for fld, name in {**WORKBOOK_COLUMNS, **WORKBOOK_OPTIONAL}.items():
            hits = [i for i, k in enumerate(keys) if k == _header_key(name)]
            if len(hits) > 1:
                doubled.append(f"{name!r} (columns {', '.join(letters[i] for i in hits)})")
            elif hits:
                cols[fld] = hits[0]
            elif fld in WORKBOOK_COLUMNS:
                missing.append(repr(name))
        pairs = []
        for i, k in enumerate(keys):
            if k == _header_key(WORKBOOK_AMOUNT):
                if i + 1 >= len(keys) or keys[i + 1] != _header_key(WORKBOOK_NAME):
                    raise RecipeFormatError(
                        f"{path}: column {letters[i]} {WORKBOOK_AMOUNT!r} must be followed by a "
                        f"{WORKBOOK_NAME!r} column")
                pairs.append((i + 1, i))
        if not pairs:
            missing.append(f"{WORKBOOK_AMOUNT!r} + {WORKBOOK_NAME!r} pairs")
        problems = _header_problems(missing, doubled)
        if problems:
            raise RecipeFormatError(
                f"{path}: sheet {ws.title!r}: {problems} "
                f"(header found: {', '.join(clean_text(h) for h in header if h is not None)})")

        width = len(header)
        skipped = 0
        for n, values in enumerate(rows, start=2):
            values = list(values) + [None] * max(0, width - len(values))
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                skipped += 1
                continue
            raw = {label[i]: values[i] for i in range(len(values))
                   if i < width and (keys[i] or values[i] is not None)}
            for i in range(width, len(values)):
                if values[i] is not None:
                    raw[get_column_letter(i + 1)] = values[i]
            raw_json = json.dumps(raw, ensure_ascii=False, default=str)

            def cell(fld):
                i = cols[fld]
                return Cell(values[i], label[i])

            yield RawRow(
                source=source,
                source_row=n,
                raw=raw,
                fingerprint=raw_json,
                **_value_cells(cell),
                shape_is_index=False,
                reactants=[(Cell(values[ni], label[ni]), Cell(values[ai], label[ai])) for ni, ai in pairs],
                doi=values[cols["doi"]],
                doi_column=label[cols["doi"]],
                segmentation=values[cols["segmentation"]] if "segmentation" in cols else None,
            )
        if skipped:
            log.info("%s: skipped %d empty rows", path, skipped)
    finally:
        wb.close()


CSV_COLUMNS = {
    "id": "ID",
    "injection_temp": "Temperature1",
    "reaction_temp": "Temperature2",
    "heating_rate": "Speed",
    "time": "Time",
    "count": "Num",
    "size": "Y1",
    "spread": "Y2",
    "shape": "Y3",
    "product": "T2",
}
CSV_PLACEHOLDERS = ("placeholder",)


def read_processed_csv(path: str | Path, source: str) -> Iterable[RawRow]:
    """Rows of a CSV in the paper's processed layout. Blank lines (and rows of empty cells)
    are skipped but keep their row number."""
    path = Path(path)
    _need_file(path, source)
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
    except UnicodeDecodeError as exc:
        raise RecipeFormatError(f"{path}: not a UTF-8 text file ({exc})") from exc
    with fh:
        missing = [c for c in CSV_COLUMNS.values() if c not in header]
        doubled = sorted({h for h in header if h and header.count(h) > 1})
        slot = re.compile(r"^([A-Z])([12])$")
        letters = sorted({m.group(1) for h in header if (m := slot.match(h))} - {"T", "Y"})
        unpaired = [f"{L}{i}" for L in letters for i in (1, 2) if f"{L}{3 - i}" in header and f"{L}{i}" not in header]
        if not letters:
            missing.append("reactant columns A1/A2 (amount/name pairs)")
        problems = _header_problems(missing, doubled, unpaired)
        if problems:
            raise RecipeFormatError(
                f"{path}: {problems} (header found: {', '.join(header)}). Expected the "
                f"processed-recipe layout: {', '.join(CSV_COLUMNS.values())}, T1 and reactant "
                f"pairs A1..M1 (mmol) / A2..M2 (names).")
        pairs = [(f"{L}2", f"{L}1") for L in letters]
        known = set(CSV_COLUMNS.values()) | {"T1", "DOI"} | {c for p in pairs for c in p}
        extra = [h for h in header if h not in known]
        if extra:
            log.info("%s: ignoring column(s) %s", path, ", ".join(extra))
        index = {h: i for i, h in enumerate(header)}
        id_i = index["ID"]
        try:
            # n counts records, blank ones included: the row a spreadsheet shows (a quoted
            # cell over several lines is one record; reader.line_num counts lines)
            for n, values in enumerate(reader, start=2):
                if not values or all(not v.strip() for v in values):
                    continue
                raw = {h: (values[i] if i < len(values) else None) for i, h in enumerate(header)}
                if len(values) > len(header):
                    raw["_extra_fields"] = values[len(header):]
                malformed = None
                if len(values) != len(header):
                    malformed = f"the row has {len(values)} fields, the header {len(header)}"
                sid = clean_text(values[id_i]) if id_i < len(values) else ""

                def cell(fld):
                    col = CSV_COLUMNS[fld]
                    return Cell(raw.get(col), col)

                yield RawRow(
                    source=source,
                    source_row=n,
                    raw=raw,
                    fingerprint=json.dumps([v for i, v in enumerate(values) if i != id_i]),
                    **_value_cells(cell),
                    shape_is_index=True,
                    reactants=[(Cell(raw.get(nc), nc), Cell(raw.get(ac), ac)) for nc, ac in pairs],
                    source_id=sid or None,
                    id_column="ID",
                    doi=raw.get("DOI"),
                    count_unknown_values=(-1.0,),
                    empty_names=CSV_PLACEHOLDERS,
                    malformed=malformed,
                )
        except csv.Error as exc:
            raise RecipeFormatError(f"{path}: CSV parse error near line {reader.line_num}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise RecipeFormatError(f"{path}: not a UTF-8 text file ({exc})") from exc


READERS = {"workbook": read_workbook, "csv": read_processed_csv}


# ----------------------------------------------------------------------------------------
# ingestion


@dataclass
class IngestResult:
    recipes: pl.DataFrame
    rejected: pl.DataFrame
    counts: pl.DataFrame  # source, format, path, read, accepted, rejected

    def write(self, recipes_path: str | Path, rejected_path: str | Path) -> None:
        tables.write_table(self.recipes, recipes_path, RECIPES_SCHEMA)
        tables.write_table(self.rejected, rejected_path, REJECTED_SCHEMA)


def ingest_rows(rows: Iterable[RawRow], ctx: Context) -> tuple[list[dict], list[dict], int]:
    """Validate the rows of one source: (accepted records, rejected records, rows read)."""
    accepted, rejected = [], []
    seen_ids: dict[str, int] = {}
    seen_content: dict[str, int] = {}
    n_read = 0
    for row in rows:
        n_read += 1
        record, reasons = validate_row(row, ctx)
        dup = []
        if row.source_id is not None and row.id_column is not None:
            first = seen_ids.setdefault(row.source_id, row.source_row)
            if first != row.source_row:
                dup.append(("duplicate_id", f"column {row.id_column!r}: ID {row.source_id!r} "
                                            f"is already used by row {first}"))
        first = seen_content.setdefault(row.fingerprint, row.source_row)
        if first != row.source_row and not row.malformed:
            dup.append(("duplicate_row", f"same values as row {first}"))
        head = [r for r in reasons if r[0] in ("malformed_row", "missing_id", "control_character_in_id")]
        reasons = head + dup + [r for r in reasons if r not in head]
        if reasons:
            rejected.append({
                "source": row.source,
                "source_row": row.source_row,
                "source_id": None if row.source_id is None else escape_unsafe(row.source_id),
                "reason": reasons[0][0],
                "reasons": [code for code, _ in reasons],
                "message": "; ".join(msg for _, msg in reasons),
                "raw": escape_unsafe(json.dumps(row.raw, ensure_ascii=False, default=str)),
            })
        else:
            accepted.append(record)
    return accepted, rejected, n_read


def ingest(sources: list[dict], abbreviations: str | Path, shapes_list: str | Path,
           bounds: dict | None = None) -> IngestResult:
    """Read every source (``{name, path, format}`` as in config ``recipes.sources``)."""
    names = [s["name"] for s in sources]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"config recipes.sources: name(s) used twice: {', '.join(dup)}")
    for name in names:
        problem = unsafe_message(name)
        if problem:  # the name starts every recipe_id of the source
            raise ValueError(f"config recipes.sources: name {problem}; remove the character")
    ctx = Context(ChemicalDictionary.load(abbreviations), ShapeMapper(read_shapes_list(shapes_list)),
                  check_bounds(bounds))
    accepted, rejected, counts = [], [], []
    for spec in sources:
        fmt = spec["format"]
        if fmt not in READERS:
            raise ValueError(f"recipe source {spec['name']!r}: unknown format {fmt!r} (use {', '.join(FORMATS)})")
        acc, rej, n_read = ingest_rows(READERS[fmt](spec["path"], spec["name"]), ctx)
        if n_read != len(acc) + len(rej):  # the contract; a failure here is a bug
            raise AssertionError(f"{spec['name']}: {n_read} rows read != {len(acc)} + {len(rej)}")
        log.info("%s (%s, %s): %d rows read, %d accepted, %d rejected",
                 spec["name"], fmt, spec["path"], n_read, len(acc), len(rej))
        accepted += acc
        rejected += rej
        counts.append({"source": spec["name"], "format": fmt, "path": str(spec["path"]),
                       "read": n_read, "accepted": len(acc), "rejected": len(rej)})
    recipes = pl.DataFrame(accepted, schema=tables.polars_schema(RECIPES_SCHEMA)) \
        if accepted else tables.empty_frame(RECIPES_SCHEMA)
    rejected_df = pl.DataFrame(rejected, schema=tables.polars_schema(REJECTED_SCHEMA)) \
        if rejected else tables.empty_frame(REJECTED_SCHEMA)
    tables.validate_table(recipes, RECIPES_SCHEMA)
    tables.validate_table(rejected_df, REJECTED_SCHEMA)
    if rejected:
        top = rejected_df.group_by("source", "reason").len().sort("len", descending=True).head(10)
        for r in top.iter_rows(named=True):
            log.info("rejected %s: %s x%d", r["source"], r["reason"], r["len"])
    counts_df = pl.DataFrame(counts, schema={"source": pl.String, "format": pl.String, "path": pl.String,
                                             "read": pl.Int64, "accepted": pl.Int64, "rejected": pl.Int64})
    return IngestResult(recipes, rejected_df, counts_df)
