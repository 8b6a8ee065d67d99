"""Featurizers: known molecules and formulas give known descriptor values; an unknown
chemical is reported (NaN plus availability / missing-share columns), never zero-filled;
recipe features are computed from the recipe alone; the fitted column filter sees only the
rows it is fitted on."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from nanoforge.chemicals import DEFAULT_PATH, ChemicalTable
from nanoforge.features import composition, molecular
from nanoforge.features.chemical import ChemicalFeaturizer, UnimolError, read_unimol
from nanoforge.features.recipe import (
    RecipeFeaturizer,
    describe_columns,
    feature_columns,
    paper_id,
    recipe_family,
)
from nanoforge.features.select import FeatureFilter


@pytest.fixture(scope="module")
def table() -> ChemicalTable:
    return ChemicalTable.read(DEFAULT_PATH)


# --- molecules and compositions ---------------------------------------------------------

@pytest.mark.parametrize("smiles,expected", [
    # oleylamine C18H37N: 267.50 g/mol, 19 heavy atoms, one NH2 donor, 15 rotatable bonds
    ("CCCCCCCC/C=C\\CCCCCCCCN", {"MolWt": 267.501, "HeavyAtomCount": 19, "NumHDonors": 1,
                                 "NumRotatableBonds": 15, "RingCount": 0, "n_fragments": 1}),
    # toluene C7H8: 92.14 g/mol, one aromatic ring, 7 heavy atoms
    ("Cc1ccccc1", {"MolWt": 92.141, "HeavyAtomCount": 7, "NumAromaticRings": 1, "TPSA": 0.0}),
    # trioctylphosphine oxide C24H51OP: 386.64 g/mol
    ("CCCCCCCCP(=O)(CCCCCCCC)CCCCCCCC", {"MolWt": 386.645, "HeavyAtomCount": 26, "NumHDonors": 0}),
    # lead acetate as ions: 325.29 g/mol, 3 fragments, |charges| 1 + 1 + 2
    ("CC(=O)[O-].CC(=O)[O-].[Pb+2]", {"MolWt": 325.288, "n_fragments": 3, "abs_formal_charge": 4,
                                      "largest_fragment_heavy_atoms": 4}),
])
def test_rdkit_descriptors_of_known_molecules(smiles, expected):
    d = molecular.rdkit_descriptors(smiles)
    assert set(d) == set(molecular.names())
    for k, v in expected.items():
        assert d[k] == pytest.approx(v, abs=0.01), k


def test_morgan_bits():
    a = molecular.morgan_bits("Cc1ccccc1", 64)
    b = molecular.morgan_bits("CCCCCCCC/C=C\\CCCCCCCCN", 64)
    assert a.shape == (64,) and set(np.unique(a)) <= {0.0, 1.0} and a.sum() > 0
    assert not np.array_equal(a, b)
    assert np.array_equal(a, molecular.morgan_bits("c1ccccc1C", 64))  # same molecule
    with pytest.raises(molecular.SmilesError):
        molecular.morgan_bits("C1CC", 64)


def test_composition_descriptors_of_known_formulas():
    d = composition.composition_descriptors("PbSe")
    assert d["Z_mean"] == 58 and d["Z_min"] == 34 and d["Z_max"] == 82 and d["Z_range"] == 48
    assert d["X_mean"] == pytest.approx((2.33 + 2.55) / 2)
    assert d["n_elements"] == 2 and d["n_atoms"] == 2
    assert d["frac_metal"] == 0.5 and d["frac_chalcogen"] == 0.5 and d["frac_halogen"] == 0
    c = composition.composition_descriptors("Cs2CO3")
    assert c["n_atoms"] == 6 and c["frac_alkali"] == pytest.approx(2 / 6)
    assert c["Z_mean"] == pytest.approx((2 * 55 + 6 + 3 * 8) / 6)
    assert composition.element_fractions("CsPbBr3") == pytest.approx({"Cs": 0.2, "Pb": 0.2, "Br": 0.6})
    with pytest.raises(ValueError):
        composition.composition_descriptors("Qq2")


# --- per-chemical vectors ---------------------------------------------------------------

def test_chemical_featurizer_known_formula_only_and_unknown(table):
    f = ChemicalFeaturizer(table, families=("rd", "fp", "comp"), morgan_bits=16).fit()
    names = list(f.get_feature_names_out())
    X = f.transform(["OLA", "PbO", "Unobtainium"])
    has = {fam: names.index(f"has_{fam}") for fam in ("rd", "fp", "comp")}
    rd = [i for i, n in enumerate(names) if n.startswith("rd_")]
    comp = [i for i, n in enumerate(names) if n.startswith("comp_")]
    # oleylamine: everything known
    assert X[0, has["rd"]] == 1 and X[0, has["comp"]] == 1 and np.isfinite(X[0, rd]).all()
    assert X[0, names.index("rd_MolWt")] == pytest.approx(267.5, abs=0.01)
    # lead oxide: a formula, no SMILES -> composition only, molecular part NaN (not 0)
    assert X[1, has["rd"]] == 0 and X[1, has["comp"]] == 1
    assert np.isnan(X[1, rd]).all() and np.isfinite(X[1, comp]).all()
    # an unknown chemical: reported as missing everywhere, never a vector of zeros
    assert X[2, has["rd"]] == 0 and X[2, has["fp"]] == 0 and X[2, has["comp"]] == 0
    assert np.isnan(X[2, : len(names) - 3]).all()
    # a product missing from the table falls back to the formula of its name
    v = f.vectors("CdSe-9", as_product=True)
    assert v["comp"] is not None and v["rd"] is None


def test_unimol_table(tmp_path, shared_data):
    vecs = read_unimol(shared_data / "recipes" / "unimol_descriptors.parquet")
    assert len(vecs) == 1800 and vecs["OLA"].shape == (512,)
    bad = tmp_path / "u.parquet"
    pl.DataFrame({"name": ["a"], "vector": [[1.0, 2.0]]}).write_parquet(bad)
    with pytest.raises(UnimolError, match="not 512"):
        read_unimol(bad)
    with pytest.raises(UnimolError, match="not found"):
        read_unimol(tmp_path / "none.parquet")


# --- recipe features --------------------------------------------------------------------

def _recipes():
    rows = [
        {"recipe_id": "processed_csv:7", "source": "processed_csv", "source_row": 8, "source_id": "7",
         "doi": None, "product": "PbSe", "injection_temp_c": 150.0, "reaction_temp_c": 180.0,
         "heating_rate_c_per_min": None, "time_min": 5.0,
         "reactants": [{"name": "PbO", "mmol": 2.0, "role": "precursor"},
                       {"name": "Se", "mmol": 4.0, "role": "precursor"},
                       {"name": "OA", "mmol": 8.0, "role": "ligand"},
                       {"name": "ODE", "mmol": 30.0, "role": "solvent"},
                       {"name": "Unobtainium", "mmol": 6.0, "role": "other"}],
         "size_nm": 5.0, "size_spread_pct": 8.0, "shape": "sphere", "n_counted": 400},
        {"recipe_id": "raw_workbook:12", "source": "raw_workbook", "source_row": 12, "source_id": None,
         "doi": "10.1/x", "product": "CdSe-1", "injection_temp_c": 25.0, "reaction_temp_c": 240.0,
         "heating_rate_c_per_min": 10.0, "time_min": 30.0,
         "reactants": [{"name": "CdO", "mmol": 1.0, "role": "precursor"},
                       {"name": "OLA", "mmol": 3.0, "role": "ligand"}],
         "size_nm": 4.0, "size_spread_pct": None, "shape": "sphere", "n_counted": None},
    ]
    return pl.DataFrame(rows)


def test_recipe_features_by_hand(table):
    f = RecipeFeaturizer(table, blocks=("cond", "amt", "prod", "pool", "bag", "frac", "chem"),
                         morgan_bits=8)
    out = f.fit_transform(_recipes())
    r = out.row(0, named=True)
    assert r["paper_id"] == 7 and out["paper_id"][1] is None
    assert r["family"] == "PbSe|OA+ODE+PbO+Se+Unobtainium"
    assert r["cond__log_time_min"] == pytest.approx(math.log(6.0))
    assert r["cond__temp_step_c"] == 30 and r["cond__heating_rate_missing"] == 1
    assert math.isnan(r["cond__heating_rate_c_per_min"])
    # amounts: total 50 mmol; the metal precursor is PbO (Pb is the product's metal)
    assert r["amt__n_reactants"] == 5 and r["amt__log_total_mmol"] == pytest.approx(math.log(51))
    assert r["amt__metal__found"] == 1 and r["amt__metal__log_mmol"] == pytest.approx(math.log(3))
    assert r["amt__precursor__n"] == 2 and r["amt__precursor__frac"] == pytest.approx(6 / 50)
    assert r["amt__ligand__log_ratio_metal"] == pytest.approx(math.log(8.001 / 2.001))
    # the unknown chemical keeps the ingestion's role ("other") and is counted, not dropped
    assert r["amt__other__n"] == 1 and r["chem__n_not_in_table"] == 1
    assert r["chem__n_smiles"] == 2 and r["chem__n_formula_only"] == 2
    # pooled descriptors: the unknown chemical is a missing share, not zeros
    assert r["pool__other__rd_missing_frac"] == 1 and math.isnan(r["pool__other__rd_MolWt"])
    assert r["pool__other__comp_missing_frac"] == 1 and math.isnan(r["pool__other__comp_Z_mean"])
    # precursors: PbO and Se have formulas but no SMILES
    assert r["pool__precursor__rd_missing_frac"] == 1
    assert r["pool__precursor__comp_missing_frac"] == 0
    pbo = composition.composition_descriptors("PbO")["Z_mean"]
    se = composition.composition_descriptors("Se")["Z_mean"]
    assert r["pool__precursor__comp_Z_mean"] == pytest.approx((2 * pbo + 4 * se) / 6)
    assert r["pool__ligand__rd_MolWt"] == pytest.approx(molecular.rdkit_descriptors(table.get("OA").smiles)["MolWt"])
    # a role the recipe does not use: NaN means and missing share 0
    assert r["pool__reducing_agent__rd_missing_frac"] == 0 and math.isnan(r["pool__reducing_agent__rd_MolWt"])
    # bag and frac per chemical name
    assert r["bag__OA"] == pytest.approx(math.log(9)) and r["bag__OLA"] == 0
    assert r["frac__ODE"] == pytest.approx(30 / 50)
    # product: composition of PbSe, element fractions, phase
    assert r["prod__comp_Z_mean"] == 58 and r["prod__el_Pb"] == 0.5 and r["prod__el_Cd"] == 0
    assert out["prod__phase"].to_list() == [0, 1]
    cols = describe_columns(out)
    assert set(cols["block"].unique()) == {"", "cond", "amt", "prod", "pool", "bag", "frac", "chem"}
    assert all("__" in c for c in feature_columns(out))


def test_features_of_a_recipe_do_not_depend_on_other_recipes(table):
    """A recipe transformed alone equals its row transformed in a batch, column for column,
    whatever the batch (the vocabularies come from fit only)."""
    recipes = _recipes()
    f = RecipeFeaturizer(table, blocks=("cond", "amt", "prod", "pool", "bag", "frac", "chem"),
                         morgan_bits=8).fit(recipes)
    both = f.transform(recipes)
    assert both.columns[len(both.columns) - len(f.get_feature_names_out()):] == list(f.get_feature_names_out())
    for i in range(recipes.height):
        alone = f.transform(recipes[i:i + 1])
        assert alone.columns == both.columns
        for c in feature_columns(alone):
            a, b = alone[c][0], both[c][i]
            assert (math.isnan(a) and math.isnan(b)) or a == b, (i, c)
    # fitted on the second recipe only: the first one's other chemicals and elements are unseen
    g = RecipeFeaturizer(table, blocks=("prod", "bag", "frac", "chem"), morgan_bits=8).fit(recipes[1:])
    assert g.reactant_names_ == ["CdO", "OLA"] and g.product_elements_ == ["Se", "Cd"]
    first = g.transform(recipes[:1]).row(0, named=True)
    assert "bag__OA" not in first and "prod__el_Pb" not in first
    assert first["bag__<unseen>"] == pytest.approx(math.log1p(50.0)) and first["frac__<unseen>"] == 1.0
    assert first["chem__n_unseen"] == 5 and first["prod__el_<unseen>"] == 0.5 and first["prod__el_Se"] == 0.5
    assert g.unseen(recipes[:1]) == [{"reactants": ["OA", "ODE", "PbO", "Se", "Unobtainium"],
                                      "product": ["PbSe"], "elements": ["Pb"]}]
    second = g.transform(recipes[1:]).row(0, named=True)
    assert second["bag__<unseen>"] == 0 and second["chem__n_unseen"] == 0 and second["prod__el_<unseen>"] == 0


def test_transform_needs_a_fitted_featurizer(table):
    from sklearn.exceptions import NotFittedError

    f = RecipeFeaturizer(table, blocks=("cond", "bag"))
    with pytest.raises(NotFittedError):
        f.transform(_recipes())
    with pytest.raises(NotFittedError):
        f.get_feature_names_out()
    with pytest.raises(ValueError, match="needs the training recipes"):
        f.fit()


def test_uni_block_needs_the_table_and_marks_missing(table):
    with pytest.raises(ValueError, match="Uni-Mol"):
        RecipeFeaturizer(table, blocks=("uni",)).fit(_recipes())
    uni = {"PbO": np.ones(512), "Se": np.full(512, 2.0), "PbSe": np.full(512, 3.0)}
    out = RecipeFeaturizer(table, blocks=("uni",), unimol=uni).fit_transform(_recipes())
    r0, r1 = out.row(0, named=True), out.row(1, named=True)
    assert r0["uni__sum_0"] == 3.0 and r0["uni__prod_5"] == 3.0 and r0["uni__n_missing"] == 3
    assert r1["uni__prod_missing"] == 1 and math.isnan(r1["uni__prod_0"]) and math.isnan(r1["uni__sum_0"])
    with pytest.raises(ValueError, match="unknown feature blocks"):
        RecipeFeaturizer(table, blocks=("nope",)).fit(_recipes())


def test_ids_and_families():
    assert paper_id("processed_csv:123", "123") == 123
    assert paper_id("processed_csv:123", None) == 123
    assert paper_id("", "17") == 17
    assert paper_id("x:abc", None) is None
    assert recipe_family("PbS", ["S", "OLA", "S"]) == "PbS|OLA+S"


# --- fitted column filter ---------------------------------------------------------------

def test_feature_filter_uses_only_fitted_rows():
    names = ["cond__t", "bag__A", "bag__B", "amt__const"]
    X = np.array([[1.0, 1, 0, 5], [2.0, 1, 0, 5], [3.0, 0, 0, 5], [4.0, 1, 1, 5],
                  [100.0, 0, 1, 7]])
    f = FeatureFilter(names, min_count=2, scale=True).fit(X[:4])
    # bag__B is used by one fitted row (needs 2); amt__const is constant on the fitted rows
    assert list(f.get_feature_names_out()) == ["cond__t", "bag__A"]
    assert f.n_rows_fitted_ == 4
    Z = f.transform(X)
    assert Z[:4, 0].mean() == pytest.approx(0) and Z[:4, 0].std() == pytest.approx(1)
    assert Z[4, 0] == pytest.approx((100 - 2.5) / np.std([1, 2, 3, 4]))
    with pytest.raises(ValueError, match="feature names"):
        FeatureFilter(names[:2]).fit(X)


def test_feature_filter_keeps_only_the_chosen_blocks():
    names = ["cond__t", "bag__A", "prod__m", "input__size_nm"]
    X = np.array([[1.0, 1, 2, 5], [2.0, 1, 3, 6], [3.0, 1, 4, 7]])
    f = FeatureFilter(names, min_count=1, blocks=["cond", "prod"]).fit(X)
    # bag is not chosen; the harness's own input column (the measured size) always stays
    assert list(f.get_feature_names_out()) == ["cond__t", "prod__m", "input__size_nm"]
    assert f.transform(X).shape == (3, 3)
    assert FeatureFilter(names, min_count=1).fit(X).keep_.all()
    with pytest.raises(ValueError, match=r"\['uni'\] are not among the blocks"):
        FeatureFilter(names, blocks=["cond", "uni"]).fit(X)
    with pytest.raises(ValueError, match="must be null or a list of blocks, not 'cond'"):
        FeatureFilter(names, blocks="cond").fit(X)  # one block written without its list
