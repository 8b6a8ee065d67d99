"""Table schemas: one JSON schema (2020-12) per table in ``workflow/schemas/<table>.schema.yaml``.

A table schema describes ONE ROW of the table as a JSON object (``type: object``,
``properties`` in column order, ``required``, ``additionalProperties: false``), so any
JSON-schema validator can check a row. From it this module derives

- the typed polars schema (``string`` -> String, ``integer`` -> Int64, ``number`` ->
  Float64, ``boolean`` -> Boolean, ``array`` -> List, ``object`` -> Struct with fields in
  ``properties`` order; ``type: [X, "null"]`` allows nulls), and
- a vectorised check of a whole DataFrame (column names, order and dtypes; nulls; ``enum``,
  ``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum``, ``pattern``,
  ``minLength``, ``minItems`` and the same inside list and struct columns), fast enough for
  million-row tables.

Table-level rules use the annotation keyword ``x-unique``: a list whose entries are a column
name (its values are unique) or a list of column names (their combination is unique, e.g.
``[[image_id, particle_id]]``).

Optional columns: a column that is not in ``required`` must allow null. ``write_table`` adds
such a column, all null, where the frame lacks it, so that adding a column to a table is one
line in its schema: writers that do not know the column keep working, readers always find it.
``write_table`` validates, then writes Parquet; a violation raises :class:`TableSchemaError`
naming the file, the column and the rows.

``write_csv`` is the one way the project writes a CSV file: every text cell (and column
name) goes through :func:`nanoforge.text.csv_cell`, so a cell that would start a formula in a
spreadsheet is prefixed with a single quote and an unsafe character is escaped; numeric,
boolean and date columns are written unchanged.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from nanoforge.safe_io import load_yaml_safely

from nanoforge.text import csv_cell

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

_SCALARS = {"string": pl.String, "integer": pl.Int64, "number": pl.Float64, "boolean": pl.Boolean}


class TableSchemaError(ValueError):
    """A table does not match its schema; the message names the table, column and rows."""


def load_table_schema(name_or_path: str | Path) -> dict:
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml", ".json"):
        path = SCHEMA_DIR / f"{name_or_path}.schema.yaml"
    schema = load_yaml_safely(path)
    schema.setdefault("title", path.name)
    return schema


def _types(spec: dict) -> tuple[str, bool]:
    t = spec.get("type")
    if t is None and "enum" in spec:  # an enum of strings (optionally with null)
        values = spec["enum"]
        if all(isinstance(v, str) or v is None for v in values):
            return "string", None in values
    if isinstance(t, list):
        nullable = "null" in t
        rest = [x for x in t if x != "null"]
        if len(rest) != 1:
            raise ValueError(f"column type must be one JSON type, optionally with null: {t}")
        return rest[0], nullable
    return t, False


def dtype_of(spec: dict) -> pl.DataType:
    """Polars dtype of a column's JSON schema."""
    t, _ = _types(spec)
    if t in _SCALARS:
        return _SCALARS[t]
    if t == "array":
        return pl.List(dtype_of(spec["items"]))
    if t == "object":
        return pl.Struct({k: dtype_of(v) for k, v in spec["properties"].items()})
    raise ValueError(f"unsupported column type in table schema: {spec.get('type')!r}")


def polars_schema(schema: dict) -> pl.Schema:
    return pl.Schema({col: dtype_of(spec) for col, spec in schema["properties"].items()})


def empty_frame(schema: dict) -> pl.DataFrame:
    return pl.DataFrame(schema=polars_schema(schema))


def frame(rows: list[dict], schema: dict) -> pl.DataFrame:
    """A table from row dicts in the schema's columns and dtypes (a key a row lacks is null)."""
    return pl.DataFrame(rows, schema=polars_schema(schema)) if rows else empty_frame(schema)


def optional_columns(schema: dict) -> list[str]:
    """Columns not in ``required``; raises ValueError if one of them does not allow null."""
    required = set(schema.get("required", schema["properties"]))
    optional = [c for c in schema["properties"] if c not in required]
    strict = [c for c in optional if not _types(schema["properties"][c])[1]]
    if strict:
        raise ValueError(f"{schema.get('title', 'table schema')}: optional column(s) {strict} must allow null "
                         "(type [X, \"null\"]), or be listed in required")
    return optional


def with_optional_columns(df: pl.DataFrame, schema: dict) -> pl.DataFrame:
    """``df`` with every optional column it lacks added as nulls, at its place in the schema.
    A frame whose columns are out of the schema's order is returned as it is (for
    :func:`validate_table` to report)."""
    missing = [c for c in optional_columns(schema) if c not in df.columns]
    present = [c for c in df.columns if c in schema["properties"]]
    if not missing or present != [c for c in schema["properties"] if c in present]:
        return df
    dtypes = polars_schema(schema)
    df = df.with_columns([pl.lit(None, dtype=dtypes[c]).alias(c) for c in missing])
    order = [c for c in schema["properties"] if c in df.columns]
    return df.select(order + [c for c in df.columns if c not in dtypes])


def _check_values(name: str, values: pl.Series, spec: dict, rows: pl.Series) -> list[str]:
    """Check one column, or one field of a nested column flattened to a Series; ``rows``
    gives the table row of each value, for the message."""
    problems = []
    t, nullable = _types(spec)

    def report(mask: pl.Series, what: str):
        mask = mask.fill_null(False)
        n = int(mask.sum())
        if n:
            bad = sorted(set(rows.filter(mask).to_list()))
            shown = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            problems.append(f"{name}: {n} value(s) {what} (rows {shown})")

    if not nullable:
        report(values.is_null(), "null, which the schema does not allow")
    if "enum" in spec:
        allowed = [v for v in spec["enum"] if v is not None]
        report(~values.is_in(allowed), f"not in {allowed}")
    for key, op, text in (
        ("minimum", lambda s, v: s < v, "below minimum"),
        ("maximum", lambda s, v: s > v, "above maximum"),
        ("exclusiveMinimum", lambda s, v: s <= v, "at or below exclusiveMinimum"),
        ("exclusiveMaximum", lambda s, v: s >= v, "at or above exclusiveMaximum"),
    ):
        if key in spec:
            report(op(values, spec[key]), f"{text} {spec[key]}")
    if t == "number":
        report(values.is_nan(), "NaN")
    if "pattern" in spec:
        report(~values.str.contains(spec["pattern"]), f"not matching {spec['pattern']!r}")
    if "minLength" in spec:
        report(values.str.len_chars() < spec["minLength"], f"shorter than {spec['minLength']}")
    if t == "array":
        if "minItems" in spec:
            report(values.list.len() < spec["minItems"], f"with fewer than {spec['minItems']} items")
        items = pl.DataFrame({"v": values, "r": rows}).filter(pl.col("v").list.len() > 0).explode("v")
        problems += _check_values(f"{name}[]", items["v"], spec["items"], items["r"])
    if t == "object":
        for field, sub in spec["properties"].items():
            problems += _check_values(f"{name}.{field}", values.struct.field(field), sub, rows)
    return problems


def validate_table(df: pl.DataFrame, schema: dict | str | Path) -> None:
    """Raise TableSchemaError listing every way ``df`` breaks its table schema (rows are
    0-based positions in ``df``)."""
    if not isinstance(schema, dict):
        schema = load_table_schema(schema)
    title = schema.get("title", "table")
    expected = polars_schema(schema)
    if list(df.columns) != list(expected.names()):
        missing = [c for c in expected.names() if c not in df.columns]
        extra = [c for c in df.columns if c not in expected]
        detail = (
            f"missing {missing or 'none'}, unexpected {extra or 'none'}"
            if missing or extra
            else f"order {df.columns} != {list(expected.names())}"
        )
        raise TableSchemaError(f"{title}: columns differ: {detail}")
    problems = [
        f"column {col} has dtype {df.schema[col]}, the schema wants {dtype}"
        for col, dtype in expected.items()
        if df.schema[col] != dtype
    ]
    if problems:
        raise TableSchemaError(f"{title}: " + "; ".join(problems))
    rows = pl.Series("row", range(df.height), dtype=pl.Int64)
    for col, spec in schema["properties"].items():
        problems += _check_values(col, df[col], spec, rows)
    for key in schema.get("x-unique", []):
        cols = [key] if isinstance(key, str) else list(key)
        dup = df.select(cols).is_duplicated()
        if dup.any():
            values = df.select(cols).filter(dup).unique(maintain_order=True).head(5).rows()
            values = [v[0] for v in values] if isinstance(key, str) else values
            problems.append(f"{', '.join(cols)}: {int(dup.sum())} rows share a value (e.g. {values})")
    if problems:
        raise TableSchemaError(f"{title}: " + "; ".join(problems))


def write_table(df: pl.DataFrame, path: str | Path, schema: dict | str | Path) -> Path:
    """Validate ``df`` against its table schema (optional columns it lacks added as nulls),
    then write it as Parquet. Nothing is written when the table breaks its schema."""
    if not isinstance(schema, dict):
        schema = load_table_schema(schema)
    df = with_optional_columns(df, schema)
    try:
        validate_table(df, schema)
    except TableSchemaError as exc:
        raise TableSchemaError(f"not writing {path}: {exc}") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.write_parquet(path)
    return path


def csv_safe(df) -> pl.DataFrame:
    """A polars copy of ``df`` (polars or pandas; a pandas index is dropped) whose text
    columns and column names have been through :func:`nanoforge.text.csv_cell`."""
    if not isinstance(df, pl.DataFrame):
        if not hasattr(df, "to_dict") or not hasattr(df, "columns"):
            raise TypeError(f"write_csv takes a polars or pandas DataFrame, not {type(df).__name__}")
        df = pl.from_pandas(df, include_index=False)
    text = [c for c, t in df.schema.items() if t == pl.String or isinstance(t, (pl.Categorical, pl.Enum))]
    df = df.with_columns(
        pl.Series(c, [None if v is None else csv_cell(v) for v in df[c].cast(pl.String).to_list()],
                  dtype=pl.String)
        for c in text
    )
    names = [csv_cell(c) for c in df.columns]
    return df.rename(dict(zip(df.columns, names))) if names != df.columns else df


def write_csv(df, path: str | Path) -> Path:
    """Write ``df`` (polars or pandas) as a CSV file safe to open in a spreadsheet (see
    :func:`csv_safe`); the folder is created. The project's only CSV writer."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    csv_safe(df).write_csv(path)
    return path
