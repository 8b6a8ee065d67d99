"""The token transformer (model kind ``transformer``): its token block, fit/predict contract,
determinism, intervals, weak rows, the reaction-intermediate augmentation, and that the
harness never trains it on a validation recipe or an augmented copy of one. Tiny data and
one or two epochs: these check the plumbing, not the accuracy."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import yaml

from conftest import REPO
from nanoforge.chemicals import DEFAULT_PATH, ChemicalTable
from nanoforge.config import load_config, validate_config
from nanoforge.features.recipe import RecipeFeaturizer, token_code, token_feature_names
from nanoforge.synthesis import models
from nanoforge.synthesis.harness import cross_validate_run
from nanoforge.synthesis.runs import run_spec
from nanoforge.synthesis.protocols import ProtocolSettings, make_splits
from nanoforge.synthesis.transformer import (
    TokenTransformer,
    TransformerError,
    augment_recipes,
    read_intermediates,
    token_layout,
)

FEATS = ["rd_a", "comp_b", "has_rd", "has_comp", "role_precursor", "role_ligand"]
CHEMS = {"A": [1.0, 2.0, 1, 1, 1, 0], "B": [0.5, 1.0, 1, 1, 1, 0], "C": [3.0, np.nan, 1, 0, 0, 1],
         "D": [np.nan, 4.0, 0, 1, 0, 1]}
PRODUCTS = {"PbSe": [np.nan, 5.0, 0, 1, 0, 0], "Ni": [np.nan, 6.0, 0, 1, 0, 0],
            "Au": [np.nan, 7.0, 0, 1, 0, 0]}
SLOTS = 3


def _token_design(n=90, seed=0) -> pl.DataFrame:
    """Recipes of 2-3 of the chemicals A-D as block tok (+ cond with the row id), sizes that
    depend on the amount of A and the temperature."""
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {}

    def put(name, value):
        cols.setdefault(name, []).append(value)

    products = rng.choice(list(PRODUCTS), n)
    sizes = []
    for i in range(n):
        chems = list(rng.choice(list(CHEMS), int(rng.integers(2, SLOTS + 1)), replace=False))
        mmol = rng.uniform(0.5, 5, len(chems))
        temp = rng.uniform(100, 300)
        put("cond__temp", temp)
        put("cond__rowid", float(i))
        put("tok__p__code", float(token_code(products[i])))
        for f, v in zip(FEATS, PRODUCTS[products[i]]):
            put(f"tok__p__{f}", float(v))
        for j in range(SLOTS):
            has = j < len(chems)
            put(f"tok__r{j}__code", float(token_code(chems[j])) if has else np.nan)
            put(f"tok__r{j}__mmol", float(mmol[j]) if has else 0.0)
            for k, f in enumerate(FEATS):
                put(f"tok__r{j}__{f}", float(CHEMS[chems[j]][k]) if has else np.nan)
        a = sum(m for c, m in zip(chems, mmol) if c == "A")
        sizes.append(2 + a + temp / 100 + rng.normal(0, 0.2))
    keys = pl.DataFrame({
        "recipe_id": [f"t:{i}" for i in range(n)], "source": "t", "source_row": np.arange(2, n + 2),
        "paper_id": np.arange(1, n + 1), "product": products,
        "family": [f"{p}|f{i % 9}" for i, p in enumerate(products)],
        "size_nm": np.array(sizes), "shape": rng.choice(["sphere", "cube"], n),
        "n_counted": rng.choice([50, 500], n),
    })
    return pl.concat([keys, pl.DataFrame(cols)], how="horizontal")


def _unimol(tmp_path) -> str:
    rng = np.random.default_rng(1)
    names = [*CHEMS, *PRODUCTS, "A@B", "C@D"]
    path = tmp_path / "unimol.parquet"
    pl.DataFrame({"name": names, "vector": [rng.normal(size=512).tolist() for _ in names]}).write_parquet(path)
    return str(path)


def _xy(design, task="size"):
    names = [c for c in design.columns if c.startswith(("tok__", "cond__"))]
    X = design.select(names).to_numpy().astype(float)
    return names, X, design["size_nm" if task == "size" else "shape"].to_numpy()


TINY = {"d_model": 8, "n_layers": 1, "n_heads": 2, "ffn": 16, "epochs": 2, "warmup_epochs": 1,
        "batch_size": 32}


# --- the token block of the feature table --------------------------------------------------


def test_token_block_of_the_featurizer():
    table = ChemicalTable.read(DEFAULT_PATH)
    recipes = pl.DataFrame({
        "recipe_id": ["s:1", "s:2"], "source": "s", "source_row": [2, 3], "source_id": ["1", "2"],
        "doi": None, "product": ["PbSe", "CdSe-1"], "injection_temp_c": [150.0, 200.0],
        "reaction_temp_c": [150.0, 240.0], "heating_rate_c_per_min": [None, 5.0], "time_min": [5.0, 10.0],
        "reactants": [[{"name": "PbO", "mmol": 5.0, "role": "precursor"}, {"name": "OA", "mmol": 20.0, "role": "ligand"}],
                      [{"name": "ODE", "mmol": 40.0, "role": "solvent"}]],
        "size_nm": [5.0, 3.0], "size_spread_pct": [None, None], "shape": ["sphere", "sphere"], "n_counted": [400, 10],
    })
    out = RecipeFeaturizer(table, blocks=("tok",), token_slots=2).fit_transform(recipes)
    lay = token_layout([c for c in out.columns if "__" in c])
    assert lay["slots"] == ["p", "r0", "r1"] and lay["feats"] == token_feature_names()
    row = out.row(0, named=True)
    assert row["tok__p__code"] == token_code("PbSe") and row["tok__r1__code"] == token_code("OA")
    assert row["tok__r0__mmol"] == 5.0 and row["tok__r0__role_precursor"] == 1.0
    assert row["tok__r1__role_ligand"] == 1.0 and row["tok__p__role_precursor"] == 0.0
    assert row["tok__r0__has_comp"] == 1.0 and np.isfinite(row["tok__r1__rd_MolWt"])
    empty = out.row(1, named=True)  # one reactant: slot r1 empty
    assert np.isnan(empty["tok__r1__code"]) and empty["tok__r1__mmol"] == 0.0 and np.isnan(empty["tok__r1__rd_MolWt"])
    with pytest.raises(ValueError, match="recipe s:1: 2 reactants, more than the 1 token slots"):
        RecipeFeaturizer(table, blocks=("tok",), token_slots=1).fit_transform(recipes)


# --- the estimator ------------------------------------------------------------------------


def test_fit_predict_interval_and_determinism():
    design = _token_design()
    names, X, y = _xy(design)
    fit = lambda seed: TokenTransformer(names, seed=seed, n_seeds=2, **TINY).fit(X[:60], y[:60])  # noqa: E731
    a, b, c = fit(0), fit(0), fit(1)
    pa = a.predict(X[60:])
    assert pa.shape == (30,) and (pa > 0).all()
    np.testing.assert_array_equal(pa, b.predict(X[60:]))  # same seed: same model
    assert not np.allclose(pa, c.predict(X[60:]))
    lo, hi = a.predict_interval(X[60:])
    assert (lo <= pa).all() and (pa <= hi).all() and (lo < hi).any()
    assert a._outputs(X[60:]).shape == (2, 30, 3) and len(a.history_) == 2  # 2 members, 2 epochs


def test_shape_classifier_with_auxiliary_size():
    design = _token_design()
    names, X, y = _xy(design, "shape")
    m = TokenTransformer(names, task="shape", **TINY).fit(X, y, size=design["size_nm"].to_numpy())
    proba = m.predict_proba(X)
    assert proba.shape == (len(y), 2) and np.allclose(proba.sum(1), 1)
    assert set(m.predict(X)) <= {"sphere", "cube"}
    with pytest.raises(AttributeError):
        m.predict_interval(X)


def test_weak_rows_count_only_beyond_the_tolerance():
    design = _token_design()
    names, X, y = _xy(design)
    weak = np.full(len(y), 10.0)  # every row weak
    lenient = TokenTransformer(names, weak_tolerance=1e6, **TINY).fit(X, y, counted=weak)
    assert lenient.history_ == [0.0, 0.0]  # never off by more than the tolerance
    strict = TokenTransformer(names, weak_tolerance=1e6, **TINY).fit(X, y, counted=np.full(len(y), 500.0))
    assert min(strict.history_) > 0  # solid rows always count


def test_configuration_errors_are_named(tmp_path):
    design = _token_design(n=20)
    names, X, y = _xy(design)
    with pytest.raises(TransformerError, match="need params.unimol"):
        TokenTransformer(names, tokens="uni", **TINY).fit(X, y)
    with pytest.raises(TransformerError, match="feature block tok"):
        TokenTransformer(["cond__temp"], **TINY).fit(X[:, :1], y)
    with pytest.raises(TransformerError, match="tokens must be one of"):
        TokenTransformer(names, tokens="bag", **TINY).fit(X, y)
    with pytest.raises(models.ModelConfigError, match="log_target"):
        models.build_pipeline("transformer", "size", {"log_target": True}, names)
    with pytest.raises(models.ModelConfigError, match="model transformer"):
        models.build_pipeline("transformer", "size", {"nonsense": 1}, names)
    uni = TokenTransformer(names, tokens="both", unimol=_unimol(tmp_path), **TINY).fit(X, y)
    assert uni.predict(X).shape == y.shape


# --- reaction-intermediate augmentation ---------------------------------------------------


def test_augmentation_replaces_a_pair_by_its_intermediate():
    pairs = {token_code("A"): {token_code("B"): token_code("A@B")}}
    assert read_intermediates({"A@B": 0, "A": 0, "x@y@z": 0}) == pairs
    a, b, c = (float(token_code(x)) for x in "ABC")
    codes = np.array([[1.0, a, b, c, np.nan], [1.0, c, np.nan, np.nan, np.nan]])
    mmol = np.array([[0, 2.0, 5.0, 1.0, 0], [0, 1.0, 0, 0, 0]])
    vecs = np.zeros(codes.shape + (2,))
    inter = np.zeros(codes.shape)
    merge = lambda va, vb, code: np.array([7.0, 7.0])  # noqa: E731
    out = augment_recipes(codes, mmol, vecs, inter, pairs, 20, np.random.default_rng(0), merge)
    c2, m2, v2, t2, origin = out
    assert (origin == 0).all() and len(origin) == 20  # recipe 1 has no known pair: no copy
    ab = float(token_code("A@B"))
    for k in range(len(origin)):
        assert ab in c2[k] and t2[k][c2[k] == ab].all() and (v2[k][c2[k] == ab] == 7).all()
        used_a = m2[k][c2[k] == a].sum() + m2[k][c2[k] == ab].sum()
        used_b = m2[k][c2[k] == b].sum() + m2[k][c2[k] == ab].sum()
        assert used_a == pytest.approx(2.0) and used_b == pytest.approx(5.0)  # amounts conserved
        assert m2[k][c2[k] == c].sum() == 1.0 and c2[k][0] == 1.0  # others and the product kept


@pytest.mark.parametrize("protocol", ["P", "G", "U"])
def test_no_augmented_copy_of_a_validation_recipe_is_trained_on(protocol, tmp_path):
    design = _token_design()
    unimol = _unimol(tmp_path)
    cfg = {
        "validation": {"min_counted": 300, "max_size_nm": 20},
        "train_max_size_nm": {"size": 20, "shape": None},
        "protocols": {"P": {"kfold_seed": 0}, "G": {"n_splits": 3}, "U": {"products": ["Ni", "Au"]}},
        "inner": {"fraction": 0.2}, "featurize": {"min_count": 1},
        "feature_sets": {"tokens": ["cond", "tok"]},
        "models": {"tf": {"kind": "transformer", "params": {**TINY, "epochs": 1, "augment": 2, "unimol": unimol},
                          "grid": {"lr": [1e-3, 2e-3]}}},
        "runs": [],
    }
    run = {"name": "r", "task": "size", "model": "tf", "features": "tokens"}
    fits = []

    class Recording(TokenTransformer):
        def fit(self, X, y, **kw):
            super().fit(X, y, **kw)
            rowid = np.asarray(X)[:, self.feature_names.index("cond__rowid")].astype(int)
            fits.append({"given": set(rowid), "trained": set(rowid[self.origins_]),
                         "copies": len(self.origins_) - len(rowid)})
            return self

    def make(params, names):
        pipe = models.build_pipeline("transformer", "size", params, names, seed=0)
        p = pipe.steps[-1][1].get_params()
        pipe.steps[-1] = ("model", Recording(**p))
        return pipe

    res = cross_validate_run(design, cfg, run, protocol, make_pipeline=make)
    splits = make_splits(design, protocol, ProtocolSettings.from_config(cfg, "size"))
    assert len(fits) == 3 * len(splits)  # two candidates on the inner split, one refit
    for k, sp in enumerate(splits):
        val = set(sp.val.tolist())
        for fit in fits[3 * k:3 * k + 3]:
            assert fit["copies"] > 0  # the augmentation ran
            # the origin of every row trained on, copies included
            assert fit["trained"] <= fit["given"] <= set(sp.train.tolist())
            assert not fit["trained"] & val
    mean = res.metrics.filter(pl.col("fold") == "mean").row(0, named=True)
    assert 0 <= mean["interval_coverage"] <= 1
    assert {"size_low_nm", "size_high_nm"} <= set(res.predictions.columns)


# --- the configured runs ------------------------------------------------------------------


def test_configured_transformer_models_build():
    """The configured transformer models (tf for size, tf_shape for shape) build for their task
    on the token feature set (their runs are listed in config.paper.yaml, left out of the
    default for their CPU cost)."""
    cfg = load_config(REPO / "config.yaml")["synthesis"]
    tf_models = {name: m for name, m in cfg["models"].items() if m.get("kind") == "transformer"}
    assert set(tf_models) == {"tf", "tf_shape"}
    assert set(cfg["feature_sets"]["tokens"]) >= {"tok", "cond"}
    design = _token_design(n=5)
    names, _, _ = _xy(design)
    for name, task in (("tf", "size"), ("tf_shape", "shape")):
        for params in models.candidates(tf_models[name]):
            est = models.build_pipeline("transformer", task, params, names).steps[-1][1]
            assert isinstance(est, TokenTransformer) and est.task == task
    # the runs config.paper.yaml lists (commented out) are valid runs of these models
    lines = [ln.strip()[2:] for ln in (REPO / "config.paper.yaml").read_text().splitlines()
             if ln.strip().startswith("# - {name:") and "features: tokens" in ln]
    listed = [yaml.safe_load(ln)[0] for ln in lines]
    assert {r["model"] for r in listed} == {"tf", "tf_shape"}
    full = load_config(REPO / "config.yaml")
    full["synthesis"]["runs"] = full["synthesis"]["runs"] + listed
    validate_config(full)
    for run in listed:
        assert run["task"] == ("size" if run["model"] == "tf" else "shape")
        assert run_spec(full["synthesis"], run["name"])["features"] == "tokens"


def test_device_auto_uses_cuda_when_present(monkeypatch):
    import torch

    model = TokenTransformer(device="auto")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert model._device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert model._device().type == "cpu"
    assert TokenTransformer(device="cpu")._device().type == "cpu"


def test_attention_by_role_shares():
    design = _token_design(n=40)
    names, X, y = _xy(design)
    m = TokenTransformer(names, **TINY).fit(X, y)
    shares = m.attention_by_role(X)
    assert set(shares) == {"product", "precursor", "ligand"}
    # every token of the tiny recipes has a role (or is the product): the shares sum to 1
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-4) and min(shares.values()) > 0


# --- grouped permutation importance -------------------------------------------------------


def test_column_groups_and_importance_by_hand():
    from nanoforge.synthesis import importance as imp

    names = ["cond__t", "prod__comp_Z_mean", "amt__n_reactants", "pool__ligand__rd_MolWt", "bag__OA", "bag__PbO"]
    groups = imp.column_groups(names, {"OA": "ligand", "PbO": "precursor"}.get)
    assert {g: c.tolist() for g, c in groups.items()} == {
        "conditions": [0], "product": [1], "ligand": [3, 4], "precursor": [5], "amounts": [2]}
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = 3 * X[:, 0]  # only column 0 matters
    predict = lambda Z: 3 * Z[:, 0]  # noqa: E731
    res = imp.grouped_importance(predict, X, y, {"a": imp.column_permuter([0]), "b": imp.column_permuter([1])})
    assert res["baseline"] == 0 and res["b"] == 0 and res["a"] > 1


def test_token_permuter_swaps_the_tokens_of_one_role():
    from nanoforge.synthesis import importance as imp

    design = _token_design(n=30)
    names, X, _ = _xy(design)
    lay = token_layout(names)
    perm = np.roll(np.arange(len(X)), 1)
    out = imp.token_permuter(lay, "ligand")(X, perm)
    feats = lay["feats"]

    def tokens(row, ligand):
        return sorted(row[lay["code"][s]] for s in range(1, len(lay["slots"]))
                      if np.isfinite(row[lay["code"][s]])
                      and (row[lay["vec"][s][feats.index("role_ligand")]] == 1) == ligand)

    for i, j in enumerate(perm):
        if len(tokens(X[i], False)) + len(tokens(X[j], True)) <= SLOTS:
            assert tokens(out[i], True) == tokens(X[j], True)  # the donor's ligands
            assert tokens(out[i], False) == tokens(X[i], False)  # its own other chemicals
        assert out[i, lay["code"][0]] == X[i, lay["code"][0]]  # product kept
    prod = imp.token_permuter(lay, "product")(X, perm)
    assert (prod[:, lay["code"][0]] == X[perm, lay["code"][0]]).all()
