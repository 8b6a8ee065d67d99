"""Hostile text: unsafe characters (NUL, bidirectional, zero-width) never reach an output, and
every CSV file the project writes is safe to open in a spreadsheet (a formula-leading text
cell is prefixed with a single quote; numbers stay numbers)."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from nanoforge import quality, tables
from nanoforge.recipes import ingest
from nanoforge.synthesis.stage import featurize
from nanoforge.text import csv_cell, escape_unsafe, unsafe_characters, unsafe_message

REPO = Path(__file__).resolve().parents[1]
HYPERLINK = '=HYPERLINK("http://x","y")'


def formula_cells(path) -> list[str]:
    """The cells of a CSV file that a spreadsheet would run as a formula (a plain number
    such as -1.5 is not one)."""
    with open(path, newline="") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    return [c for c in cells if c[:1] and c[:1] in "=+-@\t\r" and not re.fullmatch(r"[-+]?[\d.]+(e-?\d+)?", c)]


@pytest.mark.parametrize("char,label", [
    ("\x00", "U+0000 (NULL)"), ("\x07", "U+0007 (control character)"), ("\x7f", "U+007F (DELETE)"),
    ("\x85", "U+0085 (NEXT LINE)"), ("\u00ad", "U+00AD (SOFT HYPHEN)"),
    ("\u061c", "U+061C (ARABIC LETTER MARK)"), ("\u200b", "U+200B (ZERO WIDTH SPACE)"),
    ("\u200c", "U+200C (ZERO WIDTH NON-JOINER)"), ("\u200d", "U+200D (ZERO WIDTH JOINER)"),
    ("\u200e", "U+200E (LEFT-TO-RIGHT MARK)"), ("\u202a", "U+202A (LEFT-TO-RIGHT EMBEDDING)"),
    ("\u202e", "U+202E (RIGHT-TO-LEFT OVERRIDE)"), ("\u2060", "U+2060 (WORD JOINER)"),
    ("\u2066", "U+2066 (LEFT-TO-RIGHT ISOLATE)"), ("\u2069", "U+2069 (POP DIRECTIONAL ISOLATE)"),
    ("\ufeff", "U+FEFF (ZERO WIDTH NO-BREAK SPACE)"), ("\ue000", "U+E000 (private-use character)"),
    ("\U000e0041", "U+E0041 (TAG LATIN CAPITAL LETTER A)"),
])
def test_unsafe_characters_are_found_and_named(char, label):
    assert unsafe_characters(f"Pb{char}Se{char}") == [char]
    message = unsafe_message(f"Pb{char}Se")
    assert message.endswith(f"holds {label}") and message.isprintable()
    escaped = escape_unsafe(f"Pb{char}Se")
    assert escaped.isprintable() and char not in escaped


@pytest.mark.parametrize("text", ["PbSe", "Cu(acac)2", "1-octadecene", "oleic acid", "a\tb", "a\nb", "a\r\nb",
                                  "a\u00a0b", "a\u2028b", "Ø 5 µm", "硒化铅", "CdSe·2H2O", ""])
def test_ordinary_text_and_whitespace_are_safe(text):
    assert unsafe_characters(text) == [] and unsafe_message(text) is None and escape_unsafe(text) == text


@pytest.mark.parametrize("text,cell", [
    (HYPERLINK, "'" + HYPERLINK), ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"), ("-2+3", "'-2+3"),
    ("@SUM(A1:A2)", "'@SUM(A1:A2)"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("  =1", "'  =1"),
    ("\uff1d1+1", "'\uff1d1+1"), ("-", "'-"), ("-x", "'-x"),
    ("-1", "-1"), ("-1.5", "-1.5"), ("+3", "+3"), ("-2e-3", "-2e-3"), (" -.5 ", " -.5 "),  # numbers
    ("PbSe", "PbSe"), ("a=b", "a=b"), ("1-octadecene", "1-octadecene"), ("", ""), ("'=1", "'=1"),
    ("\x00=1", "\\u0000=1"), ("=\u202e1", "'=\\u202e1"),
])
def test_csv_cell(text, cell):
    assert csv_cell(text) == cell


def test_write_csv_escapes_text_and_keeps_numbers(tmp_path):
    df = pl.DataFrame({
        "name": [HYPERLINK, "PbSe", "-1", "@x", None, "Pb\x00Se"],
        "kind": pl.Series(["=a", "b", "b", "b", "b", "b"], dtype=pl.Categorical),
        "n": [-3, 2, 0, -1, 5, 6],
        "x": [-1.5, 2.25, -1e-3, float("nan"), None, 0.0],
        "ok": [True, False, True, None, True, False],
        "=total": [1, 2, 3, 4, 5, 6],
    })
    path = tables.write_csv(df, tmp_path / "sub" / "t.csv")
    back = pl.read_csv(path)
    assert back.columns == ["name", "kind", "n", "x", "ok", "'=total"]
    assert back["name"].to_list() == ["'" + HYPERLINK, "PbSe", "-1", "'@x", None, "Pb\\u0000Se"]
    assert back["kind"].to_list() == ["'=a", "b", "b", "b", "b", "b"]
    assert back.schema["n"] == pl.Int64 and back["n"].to_list() == [-3, 2, 0, -1, 5, 6]
    assert back.schema["x"] == pl.Float64 and back["x"].to_list()[:3] == [-1.5, 2.25, -1e-3]
    assert back["ok"].to_list() == [True, False, True, None, True, False]
    assert formula_cells(path) == []
    assert "\x00" not in path.read_text()
    pdf = pd.DataFrame({"name": [HYPERLINK, "x"], "v": [-2.5, 1.0]}, index=[7, 8])
    back = pl.read_csv(tables.write_csv(pdf, tmp_path / "p.csv"))
    assert back.columns == ["name", "v"] and back["name"].to_list() == ["'" + HYPERLINK, "x"]
    assert back["v"].to_list() == [-2.5, 1.0]
    with pytest.raises(TypeError, match="polars or pandas"):
        tables.write_csv([1, 2], tmp_path / "l.csv")


def test_every_csv_writer_of_the_workflow_goes_through_write_csv():
    writer = re.compile(r"(?<!tables)\.write_csv\(|\.to_csv\(|csv\.writer\(|csv\.DictWriter\(")
    files = [*(REPO / "workflow").rglob("*.py"), *(REPO / "workflow").rglob("*.smk"), REPO / "Snakefile"]
    found = [f"{p.relative_to(REPO)}:{i}" for p in sorted(files)
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if writer.search(line) and "# csv-internal:" not in line
             and p != REPO / "workflow" / "nanoforge" / "tables.py"]
    assert found == [], f"CSV written without nanoforge.tables.write_csv: {found}"


def test_hostile_recipes_are_rejected_and_formulas_escaped_in_the_csv_outputs(tmp_path, shared_data):
    """The path a NUL once took into results/features/chemicals_coverage.csv: recipe CSV ->
    ingestion -> quality summary and featurization."""
    header = ["ID", "Temperature1", "Temperature2", "Speed", "Time", "Num", "Y1", "Y2", "Y3", "T2",
              "A1", "B1", "C1", "A2", "B2", "C2"]
    good = dict(zip(header, ["1", "140", "140", "0", "5", "100", "4.8", "6", "9", "PbSe",
                             "5", "5", "40", "PbO", "Se", "ODE"]))
    for name in ("chemical_abbreviations.xlsx", "shapes_list.txt"):
        shutil.copyfile(shared_data / "recipes" / name, tmp_path / name)
    rows = [
        good,
        {**good, "ID": "2", "T2": HYPERLINK, "Y1": "5"},  # accepted (unknown product), escaped on output
        {**good, "ID": "3", "C2": "@SUM(1+1)", "Y1": "6"},  # accepted (unknown chemical)
        {**good, "ID": "4", "T2": "Pb\x00Se", "Y1": "7"},
        {**good, "ID": "5", "A2": "Pb\u202eO", "Y1": "8"},
        {**good, "ID": "6", "B2": "S\u200be", "Y1": "9"},
    ]
    src = tmp_path / "recipes.csv"
    with open(src, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows([[r[h] for h in header] for r in rows])
    res = ingest([{"name": "mine", "path": str(src), "format": "csv"}],
                 tmp_path / "chemical_abbreviations.xlsx", tmp_path / "shapes_list.txt")
    assert res.recipes["source_id"].to_list() == ["1", "2", "3"]
    assert res.rejected.select("source_id", "reason").rows() == [
        ("4", "control_character_in_product"), ("5", "control_character_in_reactant_name"),
        ("6", "control_character_in_reactant_name")]
    res.write(tmp_path / "recipes.parquet", tmp_path / "rejected.parquet")

    quality.write_summary(tmp_path / "recipes.parquet", tmp_path / "rejected.parquet",
                          tmp_path / "quality_summary.csv", tmp_path / "quality.png")
    cfg = {"blocks": ["cond", "amt", "prod", "pool", "bag", "chem"], "morgan_bits": 8, "morgan_radius": 2}
    featurize(tmp_path / "recipes.parquet", REPO / "resources" / "chemicals.csv", None, ["mine"], cfg,
              tmp_path / "features.parquet", tmp_path / "feature_columns.csv", tmp_path / "chemicals_coverage.csv")

    summary = pl.read_csv(tmp_path / "quality_summary.csv")
    assert "'" + HYPERLINK in summary.filter(pl.col("category") == "product")["value"].to_list()
    assert "'@SUM(1+1)" in summary.filter(pl.col("category") == "unknown_chemical")["value"].to_list()
    coverage = pl.read_csv(tmp_path / "chemicals_coverage.csv")
    assert {"'" + HYPERLINK, "'@SUM(1+1)"} <= set(coverage["name"].to_list())
    assert coverage.schema["n_recipes"] == pl.Int64
    for name in ("quality_summary.csv", "chemicals_coverage.csv", "feature_columns.csv"):
        text = (tmp_path / name).read_text()
        assert unsafe_characters(text) == [], name
        assert formula_cells(tmp_path / name) == [], name
