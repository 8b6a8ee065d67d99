"""Recipe ingestion: hand-written workbooks and CSVs for every rule, then the real files."""

from __future__ import annotations

import csv
import json
import random

import jsonschema
import openpyxl
import polars as pl
import pytest

from nanoforge import tables, vocabulary
from nanoforge.abbreviations import AbbreviationError, ChemicalDictionary, strip_hydrate
from nanoforge.recipes import (
    RECIPES_SCHEMA,
    REJECTED_SCHEMA,
    RecipeFormatError,
    ShapeMapper,
    check_bounds,
    default_bounds,
    ingest,
    parse_number,
    read_shapes_list,
)

SHAPES = ["Irregular shape", "cube", "flower shape", "four-pointed star", "hexagon", "rectangle",
          "rhombus", "rod", "six-pointed star", "sphere", "triangle"]

ABBREVIATIONS = {
    "qd": [("source", "formula"), ("mp-2201", "PbSe"), ("mp-1", "CdSe-1"), ("mp-2", "CdSe-2")],
    "ligand": [("name", "abbreviations"), ("Oleylamine", "OLA"), ("Oleic acid", "OA"),
               ("Trioctylphosphine", "TOP"), ("nonanoic acid", "NA_"), ("Water", "H2O")],
    "precursor": [("name", "source", "formula/abbreviations"), (None, "mp-20878", "PbO"),
                  (None, "mp-570481", "Se"), ("Tri-n-octylphosphine ", None, "TOP"),
                  (None, "mp-30999", "CuCl2"), ("Copper(II) acetylacetonate", None, "Cu(acac)2")],
    "solvent": [("name", "abbreviations"), ("1-Octadecene", "ODE"), ("Water", "H2O")],
}


def write_abbreviations(path, sheets=ABBREVIATIONS):
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(list(row))
    wb.save(path)
    return path


@pytest.fixture
def lib(tmp_path):
    abbr = write_abbreviations(tmp_path / "abbr.xlsx")
    shapes = tmp_path / "shapes_list.txt"
    shapes.write_text("\n".join(SHAPES))
    return abbr, shapes


# ---------------------------------------------------------------------------------------
# processed CSV

CSV_HEADER = ["ID", "Temperature1", "Temperature2", "Speed", "Time", "Num", "Y1", "Y2", "Y3", "T1", "T2",
              "A1", "B1", "C1", "D1", "A2", "B2", "C2", "D2"]
GOOD = dict(ID="1", Temperature1="140", Temperature2="140", Speed="0", Time="5", Num="1195", Y1="4.87",
            Y2="6.49", Y3="9", T1="1", T2="PbSe", A1="5", B1="5", C1="46.875", D1="0", A2="PbO", B2="Se",
            C2="ODE", D2="PlaceHolder")


def write_csv(path, rows, header=CSV_HEADER):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in rows:
            w.writerow([row.get(h, "") for h in header] if isinstance(row, dict) else row)
    return path


def run_csv(tmp_path, lib, rows, bounds=None, header=CSV_HEADER):
    path = write_csv(tmp_path / "recipes.csv", rows, header)
    return ingest([{"name": "mine", "path": str(path), "format": "csv"}], *lib, bounds)


def test_csv_row_accepted_with_contract_columns(tmp_path, lib):
    res = run_csv(tmp_path, lib, [GOOD, {**GOOD, "ID": "7", "Y1": "6.1", "Num": "-1", "Y3": "1"}])
    assert res.rejected.height == 0
    assert res.recipes.columns[:16] == [
        "recipe_id", "source", "source_row", "source_id", "doi", "product", "injection_temp_c",
        "reaction_temp_c", "heating_rate_c_per_min", "time_min", "reactants", "size_nm",
        "size_spread_pct", "shape", "n_counted", "label_source"]
    first, second = res.recipes.to_dicts()
    assert first["recipe_id"] == "mine:1" and second["recipe_id"] == "mine:7"
    assert first["source_row"] == 2 and second["source_row"] == 3
    assert first["reactants"] == [
        {"name": "PbO", "mmol": 5.0, "role": "precursor"},
        {"name": "Se", "mmol": 5.0, "role": "precursor"},
        {"name": "ODE", "mmol": 46.875, "role": "solvent"},
    ]  # the PlaceHolder slot is no reactant
    assert (first["shape"], second["shape"]) == ("sphere", "cube")
    assert first["n_counted"] == 1195 and first["flags"] == []
    assert second["n_counted"] is None and second["flags"] == ["missing_count"]
    assert first["label_source"] == "literature" and first["doi"] is None
    assert res.counts.row(0, named=True) | {"path": None} == {
        "source": "mine", "format": "csv", "path": None, "read": 2, "accepted": 2, "rejected": 0}


CSV_REJECTIONS = [
    ({"Y1": "bs"}, "non_numeric_size", "column 'Y1': 'bs' is not a number"),
    ({"Y1": "?"}, "non_numeric_size", "'?'"),
    ({"Y1": "hx1"}, "non_numeric_size", "'hx1'"),
    ({"Y1": ""}, "missing_size", "column 'Y1': empty"),
    ({"Y1": "5000"}, "size_out_of_bounds", "5000 nm is outside [0.1, 1000] nm (config recipes.bounds.size_nm)"),
    ({"Y3": "11"}, "unknown_shape", "column 'Y3': '11' is not an index"),
    ({"Y3": "2.5"}, "unknown_shape", "'Y3'"),
    ({"Y3": ""}, "missing_shape", "'Y3'"),
    ({"Temperature1": "hot"}, "non_numeric_temperature", "column 'Temperature1': 'hot'"),
    ({"Temperature2": "900"}, "temperature_out_of_bounds", "recipes.bounds.temp_c"),
    ({"Temperature2": ""}, "missing_temperature", "'Temperature2'"),
    ({"Time": "-3"}, "time_out_of_bounds", "column 'Time': -3 min"),
    ({"Time": "long"}, "non_numeric_time", "'Time'"),
    ({"Speed": "5000"}, "heating_rate_out_of_bounds", "'Speed'"),
    ({"Y2": "250"}, "spread_out_of_bounds", "'Y2'"),
    ({"T2": " "}, "missing_product", "'T2'"),
    ({"A1": "-5"}, "negative_amount", "column 'A1': amount -5 mmol of 'PbO' is negative"),
    ({"B1": "lots"}, "non_numeric_amount", "'B1'"),
    ({"A1": ""}, "missing_amount", "'A1'"),
    ({"C1": "1e6"}, "amount_out_of_bounds", "recipes.bounds.mmol"),
    ({"D1": "2"}, "missing_reactant_name", "column 'D1': amount '2' has no reactant name in column 'D2'"),
    ({"A1": "0", "A2": "PlaceHolder", "B1": "0", "B2": "PlaceHolder", "C1": "0", "C2": ""},
     "no_reactants", "no reactant"),
    ({"ID": ""}, "missing_id", "'ID'"),
]


@pytest.mark.parametrize("change,reason,text", CSV_REJECTIONS, ids=[c[1] + "-" + str(i) for i, c in enumerate(CSV_REJECTIONS)])
def test_csv_rejection_reasons(tmp_path, lib, change, reason, text):
    res = run_csv(tmp_path, lib, [GOOD, {**GOOD, "ID": "2", **change}])
    assert res.recipes["recipe_id"].to_list() == ["mine:1"]
    rej = res.rejected.row(0, named=True)
    assert rej["reason"] == reason
    assert text in rej["message"]
    assert rej["source"] == "mine" and rej["source_row"] == 3
    raw = json.loads(rej["raw"])
    assert raw == {h: str({**GOOD, "ID": "2", **change}[h]) for h in CSV_HEADER}


def test_several_reasons_are_all_kept(tmp_path, lib):
    res = run_csv(tmp_path, lib, [{**GOOD, "Y1": "?", "Temperature1": "999", "A1": "-1"}])
    rej = res.rejected.row(0, named=True)
    assert rej["reasons"] == ["non_numeric_size", "temperature_out_of_bounds", "negative_amount"]
    assert rej["reason"] == "non_numeric_size"
    assert rej["message"].count(";") == 2


def test_duplicate_id_and_duplicate_row(tmp_path, lib):
    rows = [GOOD, {**GOOD, "Y1": "9.9"}, {**GOOD, "ID": "3"}, {**GOOD, "ID": "4", "Y1": "7"}]
    res = run_csv(tmp_path, lib, rows)
    assert res.recipes["recipe_id"].to_list() == ["mine:1", "mine:4"]
    rej = {r["source_row"]: r for r in res.rejected.to_dicts()}
    assert rej[3]["reason"] == "duplicate_id" and "ID '1' is already used by row 2" in rej[3]["message"]
    assert rej[4]["reason"] == "duplicate_row" and "same values as row 2" in rej[4]["message"]


def test_malformed_csv_row_is_rejected_not_lost(tmp_path, lib):
    short = [GOOD[h] for h in CSV_HEADER][:-3]
    res = run_csv(tmp_path, lib, [GOOD, short, {**GOOD, "ID": "3", "Y1": "5"}])
    assert res.counts.row(0, named=True)["read"] == 3
    assert res.recipes["recipe_id"].to_list() == ["mine:1", "mine:3"]
    assert res.rejected["reasons"].to_list() == [["malformed_row", "duplicate_id"]]
    assert "16 fields, the header 19" in res.rejected["message"][0]


def test_csv_row_numbers_are_the_spreadsheet_rows(tmp_path, lib):
    # a blank line, a quoted cell over two lines and a row of empty cells: a spreadsheet shows
    # each as one row, so source_row counts them (reader.line_num would count lines)
    def line(**change):
        return ",".join(str({**GOOD, **change}[h]) for h in CSV_HEADER)

    path = tmp_path / "recipes.csv"
    path.write_text("\n".join([
        ",".join(CSV_HEADER),
        line(ID="1"),                                  # row 2
        "",                                            # row 3: blank
        line(ID="2", A2='"PbO\n"', Y1="5"),           # row 4, over two lines
        "," * (len(CSV_HEADER) - 1),                   # row 5: empty cells
        line(ID="3", Y1="bs"),                         # row 6: rejected
        "",                                            # row 7: blank
        "",                                            # row 8: blank
        line(ID="4", Y1="6"),                          # row 9
    ]) + "\n")
    res = ingest([{"name": "mine", "path": str(path), "format": "csv"}], *lib)
    assert res.counts.row(0, named=True)["read"] == 4
    assert dict(zip(res.recipes["source_id"], res.recipes["source_row"])) == {"1": 2, "2": 4, "4": 9}
    assert res.recipes.filter(pl.col("source_id") == "2")["reactants"][0][0]["name"] == "PbO"
    assert res.rejected.select("source_id", "source_row", "reason").rows() == [("3", 6, "non_numeric_size")]


HOSTILE = [  # (change, reason, column, character named in the message)
    ({"T2": "Pb\x00Se"}, "control_character_in_product", "T2", "U+0000 (NULL)"),
    ({"T2": "\u202eeSbP"}, "control_character_in_product", "T2", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ({"T2": "Pb\u200bSe"}, "control_character_in_product", "T2", "U+200B (ZERO WIDTH SPACE)"),
    ({"T2": "\u2066PbSe\u2069"}, "control_character_in_product", "T2", "U+2066 (LEFT-TO-RIGHT ISOLATE)"),
    ({"A2": "Pb\u202aO"}, "control_character_in_reactant_name", "A2", "U+202A (LEFT-TO-RIGHT EMBEDDING)"),
    ({"B2": "\ufeffSe"}, "control_character_in_reactant_name", "B2", "U+FEFF (ZERO WIDTH NO-BREAK SPACE)"),
    ({"C2": "OD\u200dE"}, "control_character_in_reactant_name", "C2", "U+200D (ZERO WIDTH JOINER)"),
    ({"C2": "ODE\u2060"}, "control_character_in_reactant_name", "C2", "U+2060 (WORD JOINER)"),
    ({"C2": "ODE\x1b[31m"}, "control_character_in_reactant_name", "C2", "U+001B (ESCAPE)"),
    ({"ID": "2\x00"}, "control_character_in_id", "ID", "U+0000 (NULL)"),
    ({"Y3": "9\u200b"}, "control_character_in_shape", "Y3", "U+200B (ZERO WIDTH SPACE)"),
]


@pytest.mark.parametrize("change,reason,column,char", HOSTILE, ids=[f"{h[1]}-{i}" for i, h in enumerate(HOSTILE)])
def test_control_characters_reject_the_row_naming_the_field(tmp_path, lib, change, reason, column, char):
    res = run_csv(tmp_path, lib, [GOOD, {**GOOD, "ID": "2", **change}])
    assert res.recipes["recipe_id"].to_list() == ["mine:1"]
    rej = res.rejected.row(0, named=True)
    assert rej["reason"] == reason and rej["source_row"] == 3
    assert f"column {column!r}: " in rej["message"] and char in rej["message"]
    # the record keeps the cells exactly (json.loads), but no hidden character is written as such
    assert json.loads(rej["raw"]) == {h: str({**GOOD, "ID": "2", **change}[h]) for h in CSV_HEADER}
    assert all(ch.isprintable() for field in ("raw", "message", "source_id") for ch in rej[field])
    tables.validate_table(res.rejected, REJECTED_SCHEMA)


def test_source_name_with_a_hidden_character_is_refused(tmp_path, lib):
    with pytest.raises(ValueError, match=r"recipes.sources: name 'mine\\u200b' holds U\+200B"):
        ingest([{"name": "mine\u200b", "path": str(write_csv(tmp_path / "r.csv", [GOOD])), "format": "csv"}], *lib)


def test_whitespace_inside_names_becomes_one_space(tmp_path, lib):
    res = run_csv(tmp_path, lib, [{**GOOD, "T2": " PbSe\n", "A2": "Oleic\tacid", "C2": "1-Octa\r\ndecene"}])
    rec = res.recipes.row(0, named=True)
    assert res.rejected.height == 0 and rec["product"] == "PbSe"
    # "Oleic acid" of the ligand sheet; "1-Octa decene" matches "1-Octadecene" (lookups ignore spaces)
    assert [r["name"] for r in rec["reactants"]] == ["OA", "Se", "ODE"] and rec["unknown_chemicals"] == []


def test_csv_flags_keep_the_row(tmp_path, lib):
    rows = [
        {**GOOD, "ID": "1", "Num": "?"},
        {**GOOD, "ID": "2", "Num": "12.5", "Y1": "2"},
        {**GOOD, "ID": "3", "Y2": "?", "Y1": "3"},
        {**GOOD, "ID": "4", "Speed": "", "Y1": "4"},
        {**GOOD, "ID": "5", "T2": "ZnO", "Y1": "5"},
        {**GOOD, "ID": "6", "D2": "FooBar", "D1": "1", "Y1": "6"},
        {**GOOD, "ID": "7", "D2": "InCl3", "D1": "1", "Y1": "7"},
        {**GOOD, "ID": "8", "D2": "CuCl2*2H2O", "D1": "1", "Y1": "8"},
    ]
    res = run_csv(tmp_path, lib, rows)
    assert res.rejected.height == 0
    r = {d["source_id"]: d for d in res.recipes.to_dicts()}
    assert r["1"]["flags"] == ["non_numeric_count"] and r["1"]["n_counted"] is None
    assert r["2"]["flags"] == ["invalid_count"] and r["2"]["n_counted"] is None
    assert r["3"]["flags"] == ["non_numeric_spread"] and r["3"]["size_spread_pct"] is None
    assert r["4"]["flags"] == ["missing_heating_rate"] and r["4"]["heating_rate_c_per_min"] is None
    assert r["5"]["flags"] == ["unknown_product"] and r["5"]["product"] == "ZnO"
    assert r["6"]["flags"] == ["unknown_chemical"] and r["6"]["unknown_chemicals"] == ["FooBar"]
    assert r["6"]["reactants"][-1] == {"name": "FooBar", "mmol": 1.0, "role": "other"}
    assert r["7"]["reactants"][-1]["role"] == "precursor" and r["7"]["unknown_chemicals"] == ["InCl3"]
    assert r["8"]["reactants"][-1] == {"name": "CuCl2*2H2O", "mmol": 1.0, "role": "precursor"}
    assert r["8"]["flags"] == []


def test_bounds_come_from_config(tmp_path, lib):
    rows = [GOOD, {**GOOD, "ID": "2", "Y1": "30"}]
    assert run_csv(tmp_path, lib, rows).rejected.height == 0
    res = run_csv(tmp_path, lib, rows, bounds={"size_nm": [0.5, 20]})
    assert res.rejected["reason"].to_list() == ["size_out_of_bounds"]
    assert "[0.5, 20] nm" in res.rejected["message"][0]
    with pytest.raises(ValueError, match="recipes.bounds.temp_c"):
        check_bounds({"temp_c": [300, 100]})
    with pytest.raises(ValueError, match="recipes.bounds.mmol: lower bound -1 is negative"):
        check_bounds({"mmol": [-1, 100]})
    with pytest.raises(ValueError, match="unknown recipes.bounds key"):
        check_bounds({"pressure": [0, 1]})
    assert set(default_bounds()) == {"temp_c", "time_min", "heating_rate_c_per_min", "size_nm",
                                     "size_spread_pct", "mmol"}


def test_csv_bad_header_names_the_column(tmp_path, lib):
    header = [h for h in CSV_HEADER if h != "Y1"]
    with pytest.raises(RecipeFormatError, match=r"recipes\.csv: missing column\(s\) Y1"):
        run_csv(tmp_path, lib, [GOOD], header=header)
    header = [h for h in CSV_HEADER if h != "B2"]
    with pytest.raises(RecipeFormatError, match=r"missing partner column\(s\) B2"):
        run_csv(tmp_path, lib, [GOOD], header=header)


def test_missing_files_are_named(tmp_path, lib):
    with pytest.raises(RecipeFormatError, match="'x': file not found: .*nope.csv"):
        ingest([{"name": "x", "path": str(tmp_path / "nope.csv"), "format": "csv"}], *lib)
    with pytest.raises(AbbreviationError, match="not found: .*none.xlsx"):
        ChemicalDictionary.load(tmp_path / "none.xlsx")
    with pytest.raises(RecipeFormatError, match="shapes list not found"):
        read_shapes_list(tmp_path / "none.txt")


# ---------------------------------------------------------------------------------------
# raw workbook

WB_HEADER = ["cationic precursor", "anionic precursor", "Nanocrystal Composition", "injection temperature/℃",
             "reaction temperature/℃", "reaction time/min", "additive amount/mmol", "reactants",
             "additive amount/mmol", "reactants", "additive amount/mmol", "reactants", "D/nm",
             "Size distribution/%", "shape", "Number of statistics", "DOI",
             "Using Segmentation Models/Y or N", "heating rate/℃ min-1"]
WB_GOOD = ["PbO,OA,OLA", "Se,TOP", "PbSe", 140, 140, 5, 5, "PbO", 5, "Se", 46.875, "ODE", 4.87, 6.49,
           "sphere", 1195, "self-synthesis", "Y", 0]


def wb_row(**change):
    row = list(WB_GOOD)
    cols = {"product": 2, "t_inj": 3, "time": 5, "a1": 6, "n1": 7, "a3": 10, "n3": 11, "size": 12,
            "spread": 13, "shape": 14, "count": 15, "doi": 16, "seg": 17, "rate": 18}
    for k, v in change.items():
        row[cols[k]] = v
    return row


def write_workbook(path, rows, header=WB_HEADER):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "最简输入"
    ws.append(header)
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def run_wb(tmp_path, lib, rows, header=WB_HEADER):
    path = write_workbook(tmp_path / "raw.xlsx", rows, header)
    return ingest([{"name": "wb", "path": str(path), "format": "workbook"}], *lib)


def test_workbook_rows(tmp_path, lib):
    rows = [
        wb_row(),
        wb_row(size="bs", spread="bs", count=None),
        wb_row(shape=" Spherical", count="？", doi="https://doi.org/10.1021/ja0357902", seg="N", rate="?",
               n1=" oleylamine ", n3="NA", size=7.5),
        [None] * len(WB_HEADER),  # an empty row holds no recipe: skipped, not counted
        wb_row(shape="blob", size=8.0),
        wb_row(n3=None, size=9.0),  # amount without a name
        wb_row(a3=None, size=10.0),  # name without an amount
        wb_row(n1=12.5, size=11.0),  # a number where a name should be
    ]
    res = run_wb(tmp_path, lib, rows)
    counts = res.counts.row(0, named=True)
    assert (counts["read"], counts["accepted"], counts["rejected"]) == (7, 2, 5)
    acc = res.recipes.to_dicts()
    assert [a["recipe_id"] for a in acc] == ["wb:2", "wb:4"]
    a = acc[1]
    assert a["shape"] == "sphere" and a["doi"] == "10.1021/ja0357902"
    assert a["measured_by_segmentation"] is False and acc[0]["measured_by_segmentation"] is True
    assert a["flags"] == ["non_numeric_heating_rate", "non_numeric_count"]
    assert a["n_counted"] is None and a["heating_rate_c_per_min"] is None
    assert [r["name"] for r in a["reactants"]] == ["OLA", "Se", "NA_"]
    assert [r["role"] for r in a["reactants"]] == ["ligand", "precursor", "ligand"]
    rej = {r["source_row"]: r for r in res.rejected.to_dicts()}
    assert sorted(rej) == [3, 6, 7, 8, 9]
    assert rej[3]["reason"] == "non_numeric_size" and "column 'M:D/nm': 'bs' is not a number" in rej[3]["message"]
    assert json.loads(rej[3]["raw"])["M:D/nm"] == "bs"
    assert json.loads(rej[3]["raw"])["C:Nanocrystal Composition"] == "PbSe"
    assert rej[6]["reason"] == "unknown_shape" and "'blob'" in rej[6]["message"]
    assert rej[7]["reason"] == "missing_reactant_name" and "'K:additive amount/mmol'" in rej[7]["message"]
    assert rej[8]["reason"] == "missing_amount" and "'ODE'" in rej[8]["message"]
    assert rej[9]["reason"] == "invalid_reactant_name"


def test_workbook_control_characters_and_empty_rows(tmp_path, lib):
    rows = [wb_row(), [None] * len(WB_HEADER), wb_row(shape="sphere\u200b", size=6.0), [],
            wb_row(doi="10.1021/\u202eabc", size=7.0), wb_row(n3="OL\x7fA", size=8.0), wb_row(size=9.0)]
    res = run_wb(tmp_path, lib, rows)
    assert res.recipes["source_row"].to_list() == [2, 8]  # empty rows keep their numbers
    rej = {r["source_row"]: r for r in res.rejected.to_dicts()}
    assert rej[4]["reason"] == "control_character_in_shape" and "'O:shape'" in rej[4]["message"]
    assert rej[6]["reason"] == "control_character_in_doi" and "'Q:DOI'" in rej[6]["message"]
    assert rej[7]["reason"] == "control_character_in_reactant_name" and "U+007F (DELETE)" in rej[7]["message"]
    assert json.loads(rej[7]["raw"])["L:reactants"] == "OL\x7fA" and "\x7f" not in rej[7]["raw"]


def test_workbook_ids_are_stable(tmp_path, lib):
    rows = [wb_row(size=float(i + 1)) for i in range(5)]
    first = run_wb(tmp_path, lib, rows).recipes
    second = run_wb(tmp_path, lib, rows).recipes
    assert first["recipe_id"].to_list() == second["recipe_id"].to_list() == [f"wb:{i}" for i in range(2, 7)]
    assert first.equals(second)


def test_workbook_missing_column_is_named(tmp_path, lib):
    header = [h if h != "D/nm" else "Diameter" for h in WB_HEADER]
    with pytest.raises(RecipeFormatError, match=r"raw\.xlsx: sheet '最简输入': missing column\(s\) 'D/nm'"):
        run_wb(tmp_path, lib, [wb_row()], header=header)
    header = WB_HEADER[:7] + ["name"] + WB_HEADER[8:]
    with pytest.raises(RecipeFormatError, match="column G 'additive amount/mmol' must be followed by a 'reactants'"):
        run_wb(tmp_path, lib, [wb_row()], header=header)


def test_not_a_workbook(tmp_path, lib):
    bad = tmp_path / "raw.xlsx"
    bad.write_text("ID,Y1\n1,2\n")
    with pytest.raises(RecipeFormatError, match=r"raw\.xlsx: not a readable \.xlsx workbook"):
        ingest([{"name": "wb", "path": str(bad), "format": "workbook"}], *lib)


# ---------------------------------------------------------------------------------------
# names, shapes, numbers


def test_chemical_names_and_roles(tmp_path, lib):
    chem = ChemicalDictionary.load(lib[0])
    assert chem.lookup(" ola ").name == "OLA"
    assert chem.lookup("Oleylamine").name == "OLA"
    assert chem.lookup("oleic  ACID").name == "OA"
    assert chem.lookup("NA").name == "NA_"
    assert chem.lookup("Tri-n-octylphosphine").name == "TOP"
    assert chem.lookup("H2O").role == "solvent"  # solvent and ligand sheets: solvent wins
    assert chem.lookup("TOP").role == "ligand"  # ligand and precursor sheets: ligand wins
    assert chem.lookup("PbO").role == "precursor"
    assert chem.lookup("CdSe-1").role == "precursor"  # a product used as a seed
    assert chem.lookup("Cu(acac)2").known and chem.lookup("cu(ACAC)2").name == "Cu(acac)2"
    unknown = chem.lookup("Mystery goo")
    assert (unknown.name, unknown.role, unknown.known) == ("Mystery goo", "other", False)
    assert chem.lookup("Na2S").role == "precursor" and not chem.lookup("Na2S").known
    assert chem.lookup("HCl").role == "other"
    assert chem.product(" PbSe ") == ("PbSe", True)
    assert chem.product("ZnO") == ("ZnO", False)
    assert strip_hydrate("Cu(NO3)2*2.5H2O") == "Cu(NO3)2"


def test_ambiguous_case_insensitive_match_is_not_guessed(tmp_path):
    sheets = {k: list(v) for k, v in ABBREVIATIONS.items()}
    sheets["precursor"] = sheets["precursor"] + [(None, "x", "CoS"), (None, "y", "COS")]
    chem = ChemicalDictionary.load(write_abbreviations(tmp_path / "a.xlsx", sheets))
    assert chem.lookup("CoS").name == "CoS" and chem.lookup("COS").name == "COS"
    assert not chem.lookup("cos").known


def test_abbreviation_workbook_errors(tmp_path):
    sheets = {k: v for k, v in ABBREVIATIONS.items() if k != "solvent"}
    with pytest.raises(AbbreviationError, match=r"missing sheet\(s\) solvent"):
        ChemicalDictionary.load(write_abbreviations(tmp_path / "a.xlsx", sheets))
    sheets = dict(ABBREVIATIONS, ligand=[("name", "abbrev")] + ABBREVIATIONS["ligand"][1:])
    with pytest.raises(AbbreviationError, match=r"sheet 'ligand' lacks column\(s\) abbreviations"):
        ChemicalDictionary.load(write_abbreviations(tmp_path / "b.xlsx", sheets))


@pytest.mark.parametrize("text,expected", [
    ("sphere", "sphere"), (" Spherical ", "sphere"), ("CUBE", "cube"), ("nanorods", "rod"),
    ("four pointed star", "four_pointed_star"), ("Six-Pointed  Star", "six_pointed_star"),
    ("irregular", "irregular"), ("Irregular shape", "irregular"), ("hexagonal", "hexagon"),
    ("flower-like", "flower"), ("star", None), ("blob", None), ("", None),
])
def test_shape_text(text, expected):
    assert ShapeMapper(SHAPES).from_text(text) == expected


def test_shape_index_and_list(tmp_path):
    m = ShapeMapper(SHAPES)
    assert m.from_index(0) == "irregular" and m.from_index(10.0) == "triangle"
    assert m.from_index(11) is None and m.from_index(-1) is None and m.from_index(1.5) is None
    p = tmp_path / "s.txt"
    p.write_text("\n".join(SHAPES))
    assert read_shapes_list(p) == ["irregular", "cube", "flower", "four_pointed_star", "hexagon", "rectangle",
                                   "rhombus", "rod", "six_pointed_star", "sphere", "triangle"]
    p.write_text("cube\nsphere\ncubes\n")
    with pytest.raises(RecipeFormatError, match="listed twice: cube"):
        read_shapes_list(p)
    p.write_text("cube\n\npentagon\n")
    with pytest.raises(RecipeFormatError, match=r"s.txt line 3: 'pentagon' is not a shape class; known shapes: sphere"):
        read_shapes_list(p)


def test_a_shorter_shapes_list_limits_the_classes():
    """Text naming a class that the shapes list does not hold is unknown_shape, as before."""
    m = ShapeMapper(["sphere", "cube"])
    assert m.from_text("spheres") == "sphere" and m.from_text("rod") is None


@pytest.mark.parametrize("value,expected", [
    (3, (3.0, "ok")), (2.5, (2.5, "ok")), (" 4.0 ", (4.0, "ok")), ("1e3", (1000.0, "ok")),
    (None, (None, "missing")), ("  ", (None, "missing")), (float("nan"), (None, "missing")),
    ("?", (None, "non_numeric")), ("？", (None, "non_numeric")), ("bs", (None, "non_numeric")),
    ("nan", (None, "non_numeric")), ("inf", (None, "non_numeric")), (True, (None, "non_numeric")),
])
def test_parse_number(value, expected):
    assert parse_number(value) == expected


# ---------------------------------------------------------------------------------------
# table schemas


def test_table_schema_catches_bad_tables(tmp_path, lib):
    res = run_csv(tmp_path, lib, [GOOD, {**GOOD, "ID": "2", "Y1": "5"}])
    df = res.recipes
    tables.validate_table(df, RECIPES_SCHEMA)
    with pytest.raises(tables.TableSchemaError, match="missing \\['shape'\\]"):
        tables.validate_table(df.drop("shape"), RECIPES_SCHEMA)
    with pytest.raises(tables.TableSchemaError, match="column size_nm has dtype Int64"):
        tables.validate_table(df.with_columns(pl.col("size_nm").cast(pl.Int64)), RECIPES_SCHEMA)
    with pytest.raises(tables.TableSchemaError, match="product: 1 value\\(s\\) null.*rows 1"):
        tables.validate_table(df.with_columns(product=pl.Series(["PbSe", None])), RECIPES_SCHEMA)
    with pytest.raises(tables.TableSchemaError, match="label_source: 2 value\\(s\\) not in"):
        tables.validate_table(df.with_columns(label_source=pl.lit("guess")), RECIPES_SCHEMA)
    bad_role = df.with_columns(pl.col("reactants").list.eval(
        pl.struct(pl.element().struct.field("name"), pl.element().struct.field("mmol"), role=pl.lit("catalyst"))))
    with pytest.raises(tables.TableSchemaError, match=r"reactants\[\]\.role: 6 value\(s\) not in"):
        tables.validate_table(bad_role, RECIPES_SCHEMA)
    with pytest.raises(tables.TableSchemaError, match="recipe_id: 2 rows share a value"):
        tables.validate_table(df.with_columns(recipe_id=pl.lit("mine:1")), RECIPES_SCHEMA)
    with pytest.raises(tables.TableSchemaError, match="time_min: 1 value\\(s\\) below minimum 0"):
        tables.validate_table(df.with_columns(time_min=pl.Series([1.0, -1.0])), RECIPES_SCHEMA)


def test_empty_tables_are_written(tmp_path, lib):
    res = run_csv(tmp_path, lib, [{**GOOD, "Y1": "?"}])
    assert res.recipes.height == 0 and res.rejected.height == 1
    res.write(tmp_path / "r.parquet", tmp_path / "x.parquet")
    assert pl.read_parquet(tmp_path / "r.parquet").schema == tables.polars_schema(RECIPES_SCHEMA)


# ---------------------------------------------------------------------------------------
# the real files


@pytest.fixture(scope="module")
def real(shared_data, tmp_path_factory):
    d = shared_data / "recipes"
    sources = [
        {"name": "raw_workbook", "path": str(d / "raw_recipe_dataset.xlsx"), "format": "workbook"},
        {"name": "processed_csv", "path": str(d / "recipes_processed.csv"), "format": "csv"},
    ]
    res = ingest(sources, d / "chemical_abbreviations.xlsx", d / "shapes_list.txt")
    out = tmp_path_factory.mktemp("real")
    res.write(out / "recipes.parquet", out / "rejected.parquet")
    return res, pl.read_parquet(out / "recipes.parquet"), pl.read_parquet(out / "rejected.parquet")


def _data_rows(shared_data):
    wb = openpyxl.load_workbook(shared_data / "recipes" / "raw_recipe_dataset.xlsx", read_only=True)
    n_wb = sum(1 for row in wb.worksheets[0].iter_rows(min_row=2, values_only=True) if any(v is not None for v in row))
    wb.close()
    with open(shared_data / "recipes" / "recipes_processed.csv", newline="") as fh:
        n_csv = sum(1 for _ in csv.reader(fh)) - 1
    return {"raw_workbook": n_wb, "processed_csv": n_csv}


def test_real_rows_read_equal_accepted_plus_rejected(real, shared_data):
    res, recipes, rejected = real
    expected = _data_rows(shared_data)
    assert expected == {"raw_workbook": 3508, "processed_csv": 3489}
    acc = dict(recipes.group_by("source").len().iter_rows())
    rej = dict(rejected.group_by("source").len().iter_rows())
    for source, n in expected.items():
        assert acc[source] + rej.get(source, 0) == n, source
        row = res.counts.filter(pl.col("source") == source).row(0, named=True)
        assert (row["read"], row["accepted"], row["rejected"]) == (n, acc[source], rej.get(source, 0))
    # the positions of accepted and rejected rows together cover every data row exactly once
    for source, n in expected.items():
        rows = pl.concat([recipes.filter(pl.col("source") == source)["source_row"],
                          rejected.filter(pl.col("source") == source)["source_row"]]).sort()
        assert rows.to_list() == list(range(2, n + 2))


def test_real_rejections_are_plausible(real):
    _, recipes, rejected = real
    wb = rejected.filter(pl.col("source") == "raw_workbook")
    assert 20 <= wb.height <= 200  # the messy sizes, not a wholesale loss
    reasons = dict(wb.group_by("reason").len().iter_rows())
    assert reasons["non_numeric_size"] >= 30
    by_row = {r["source_row"]: r for r in wb.to_dicts()}
    for row, text in [(581, "'bs'"), (3119, "'hx1'"), (3140, "'ia1'")]:
        assert by_row[row]["reason"] == "non_numeric_size" and text in by_row[row]["message"]
    csv_rej = rejected.filter(pl.col("source") == "processed_csv")
    assert csv_rej.height <= 50
    assert set(csv_rej["reason"]) <= {"size_out_of_bounds"}
    assert all(json.loads(r)["Y1"] for r in csv_rej["raw"])
    # 38 % of the workbook's counts are not numbers: flagged, not rejected
    wb_acc = recipes.filter(pl.col("source") == "raw_workbook")
    share = wb_acc["flags"].list.contains("non_numeric_count").mean()
    assert 0.30 < share < 0.45
    assert wb_acc.filter(pl.col("flags").list.contains("non_numeric_count"))["n_counted"].null_count() \
        == wb_acc["flags"].list.contains("non_numeric_count").sum()


def test_real_csv_keeps_paper_ids_and_shapes(real, shared_data):
    _, recipes, _ = real
    c = recipes.filter(pl.col("source") == "processed_csv")
    assert (c["recipe_id"] == "processed_csv:" + c["source_id"]).all()
    with open(shared_data / "recipes" / "recipes_processed.csv", newline="") as fh:
        y3 = {r["ID"]: int(r["Y3"]) for r in csv.DictReader(fh)}
    shapes = (shared_data / "recipes" / "shapes_list.txt").read_text().splitlines()
    # the paper's spelling ("Irregular shape") becomes the vocabulary's ("irregular")
    assert all(s == vocabulary.shape_class(shapes[y3[i]]) for i, s in zip(c["source_id"], c["shape"]))
    assert set(c["shape"]) == set(vocabulary.SHAPE_CLASSES)
    folds = pl.read_csv(shared_data / "recipes" / "paper_folds.csv")
    fold_ids = folds.filter(pl.col("fold") >= 0)["ID"].cast(pl.String)
    assert fold_ids.len() == 617 and fold_ids.is_in(c["source_id"].implode()).all()


def test_real_names_match_the_descriptor_table(real, shared_data):
    _, recipes, _ = real
    names = recipes.select(pl.col("reactants").explode().struct.field("name")).to_series().unique()
    descriptors = set(pl.read_parquet(shared_data / "recipes" / "unimol_descriptors.parquet", columns=["name"])["name"])
    missing = sorted(set(names) - descriptors)
    assert missing == [], missing  # e.g. the workbook's "NA" became the descriptor table's "NA_"
    roles = recipes.select(pl.col("reactants").explode().struct.field("role")).to_series().value_counts()
    counts = dict(roles.iter_rows())
    assert counts["precursor"] > 10000 and counts["ligand"] > 10000 and counts["solvent"] > 3000
    assert recipes["unknown_chemicals"].list.len().sum() == 0


def test_real_rows_validate_with_json_schema(real):
    _, recipes, rejected = real
    rnd = random.Random(0)
    for df, schema in ((recipes, RECIPES_SCHEMA), (rejected, REJECTED_SCHEMA)):
        validator = jsonschema.Draft202012Validator(schema)
        rows = df.to_dicts()
        for row in rnd.sample(rows, min(300, len(rows))):
            validator.validate(row)
