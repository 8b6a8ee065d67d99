"""The chemicals table: the committed resources/chemicals.csv is valid (every SMILES parses
with RDKit and agrees atom for atom with its formula), covers every chemical of the real
recipe data, and bad tables are rejected with the line named."""

from __future__ import annotations

import csv

import polars as pl
import pytest

from nanoforge.chemicals import (
    COLUMNS,
    DEFAULT_PATH,
    ChemicalsTableError,
    ChemicalTable,
    check_rows,
    coverage_report,
    coverage_summary,
    product_formula,
    product_phase,
    smiles_composition,
)


def _row(**kw):
    base = {"name": "X", "canonical_name": "x", "role": "ligand", "smiles": "", "formula": "",
            "source": "test", "note": ""}
    base.update(kw)
    return base


def _write(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def table() -> ChemicalTable:
    return ChemicalTable.read(DEFAULT_PATH)


def test_committed_table_is_valid_and_small(table):
    assert DEFAULT_PATH.stat().st_size < 1_000_000
    assert len(table) > 800
    roles = {c.role for c in table}
    assert roles == {"precursor", "ligand", "solvent", "reducing_agent", "product", "other"}
    # the check that ChemicalTable.read ran: SMILES parse and agree with the formula
    with_smiles = [c for c in table if c.smiles]
    assert len(with_smiles) > 350
    for c in with_smiles:
        comp = smiles_composition(c.smiles)
        assert comp, c.name


@pytest.mark.parametrize("name,formula,smiles_has", [
    ("OLA", "C18H37N", "N"), ("OA", "C18H34O2", "C(=O)O"), ("TOP", "C24H51P", "P"),
    ("ODE", "C18H36", "C=C"), ("PbAc2", "C4H6O4Pb", "[Pb+2]"), ("Cu(acac)2", "C10H14CuO4", "[Cu+2]"),
])
def test_known_entries(table, name, formula, smiles_has):
    c = table.get(name)
    assert c is not None and c.formula == formula and smiles_has in c.smiles
    assert c.status == "smiles"


def test_inorganics_and_products_are_formula_only(table):
    for name in ("PbO", "Se", "Cs2CO3", "CdSe-1", "CsPbBr3-2"):
        c = table.get(name)
        assert c is not None and not c.smiles and c.formula, name
    assert table.get("CdSe-1").role == "product"
    assert table.get("CdSe-1").formula == "CdSe"


def test_every_chemical_of_the_real_data_is_in_the_table(table, processed_recipes):
    report = coverage_report(processed_recipes, table)
    assert set(report["used_as"]) == {"reactant", "product"}
    assert (report["status"] == "not_in_table").sum() == 0, report.filter(pl.col("status") == "not_in_table")
    reactants = report.filter(pl.col("used_as") == "reactant")
    assert reactants.height > 500
    # most reactant uses have a molecular structure or a formula; the few without are listed
    no_structure = report.filter(pl.col("status") == "no_structure")["name"].to_list()
    assert set(no_structure) <= {"Cr-FC", "EOT", "PL"}
    assert "without a usable structure" in coverage_summary(report)
    # rows without a usable structure come first
    assert report["status"][0] == "no_structure"


def test_coverage_lists_unknown_chemicals(table):
    recipes = pl.DataFrame({
        "recipe_id": ["a:1", "a:2"], "product": ["PbSe", "NewProduct"],
        "reactants": [[{"name": "OLA", "mmol": 1.0, "role": "ligand"},
                       {"name": "Unobtainium", "mmol": 2.0, "role": "other"}],
                      [{"name": "Unobtainium", "mmol": 1.0, "role": "other"}]],
    })
    report = coverage_report(recipes, table)
    row = report.filter(pl.col("name") == "Unobtainium").row(0, named=True)
    assert row["status"] == "not_in_table" and row["n_recipes"] == 2 and row["used_as"] == "reactant"
    assert report["name"][0] in ("Unobtainium", "NewProduct")
    assert "Unobtainium (not_in_table, 2 recipes)" in coverage_summary(report)


def test_bad_tables_are_rejected_naming_the_line(tmp_path):
    rows = [
        _row(name="A", smiles="C1CC", formula="C3H6"),  # unclosed ring
        _row(name="B", smiles="CCO", formula="C2H5O"),  # formula disagrees with the SMILES
        _row(name="B", smiles="", formula="NaCl"),  # repeated name
        _row(name="C", role="catalyst", formula="Pt"),  # unknown role
        _row(name="D", role="product", smiles="O", formula="H2O"),  # product with a SMILES
        _row(name="E", smiles="CC", formula=""),  # SMILES without its formula
        _row(name="F", formula="Xq2"),  # formula that does not parse
    ]
    problems = check_rows(rows, "t.csv")
    text = "\n".join(problems)
    assert "t.csv line 2 ('A')" in text and "does not parse" in text
    assert "line 3 ('B'): formula 'C2H5O' disagrees" in text
    assert "line 4 ('B'): name repeats line 3" in text
    assert "line 5 ('C'): role 'catalyst'" in text
    assert "line 6 ('D'): a product is given by its formula" in text
    assert "line 7 ('E'): a SMILES needs its formula" in text
    assert "line 8 ('F')" in text
    with pytest.raises(ChemicalsTableError, match="is invalid"):
        ChemicalTable.read(_write(tmp_path / "bad.csv", rows))


def test_table_lines_count_blank_lines_and_hidden_characters_are_refused(tmp_path):
    path = _write(tmp_path / "c.csv", [_row(name="A", formula="NaCl"), _row(name="B", formula="KCl")])
    header, a, b = path.read_text().splitlines()
    path.write_text("\n".join([header, "", a, '"B",b,ligand,,"KCl\n",test,', "", b]) + "\n")
    with pytest.raises(ChemicalsTableError, match=r"line 7 \('B'\): name repeats line 4"):
        ChemicalTable.read(path)
    path = _write(tmp_path / "d.csv", [_row(name="A", formula="NaCl"), _row(name="B\u202e", note="x\x00")])
    with pytest.raises(ChemicalsTableError, match=r"line 3: column 'name': 'B\\u202e' holds U\+202E "
                                                  r"\(RIGHT-TO-LEFT OVERRIDE\); column 'note': .*U\+0000 \(NULL\)"):
        ChemicalTable.read(path)
    path.write_text(f"{header}\nA,a,ligand,,NaCl,test\n")
    with pytest.raises(ChemicalsTableError, match="line 2: 6 fields, the header 7"):
        ChemicalTable.read(path)


def test_wrong_columns_and_missing_file(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("name,role\nOLA,ligand\n")
    with pytest.raises(ChemicalsTableError, match="columns"):
        ChemicalTable.read(path)
    with pytest.raises(ChemicalsTableError, match="not found"):
        ChemicalTable.read(tmp_path / "missing.csv")


def test_product_names():
    assert product_formula("CdSe-1") == "CdSe"
    assert product_formula("PbSe") == "PbSe"
    assert product_formula("Cs2InCl5-H2O") == "Cs2InCl5(H2O)1"
    assert product_formula("Cs2InCl5·H2O") == "Cs2InCl5(H2O)1"
    assert product_phase("CsPbBr3-2") == 2 and product_phase("Au") == 0


def test_command_line_check(tmp_path, capsys, processed_recipes):
    from nanoforge.chemicals import main

    assert main([]) == 0 and "all valid" in capsys.readouterr().out
    bad = _write(tmp_path / "bad.csv", [_row(name="A", smiles="CCO", formula="C2H5O")])
    assert main(["--table", str(bad)]) == 1 and "disagrees" in capsys.readouterr().err
    path = tmp_path / "r.parquet"
    processed_recipes.write_parquet(path)
    assert main(["--recipes", str(path)]) == 0 and "not_in_table 0" in capsys.readouterr().out
