"""The evaluation harness: metrics, the protocols' fold logic (the paper's folds recomputed
from the data, G's families and U's products kept apart), and that no validation row
reaches any fitted filter, scaler or model, including the fits of model selection."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.pipeline import Pipeline

from conftest import REPO
from nanoforge.chemicals import DEFAULT_PATH, ChemicalTable
from nanoforge.config import load_config
from nanoforge.features.recipe import RecipeFeaturizer
from nanoforge.features.select import FeatureFilter
from nanoforge.synthesis import compare, metrics, models
from nanoforge.synthesis.harness import HarnessError, cross_validate_run
from nanoforge.synthesis.protocols import (
    ProtocolError,
    ProtocolSettings,
    family_partition,
    inner_split,
    make_splits,
    paper_folds,
    solid_mask,
)
from nanoforge.vocabulary import paper_code

# --- metrics ----------------------------------------------------------------------------


def test_size_metrics_by_hand():
    m = metrics.size_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 5.0])
    assert m["mae_nm"] == pytest.approx(1.0)
    assert m["mse_nm2"] == pytest.approx(5 / 3)
    assert m["rmse_nm"] == pytest.approx(math.sqrt(5 / 3))
    assert m["mape_pct"] == pytest.approx(100 * (1 + 0 + 2 / 3) / 3)
    assert m["r2"] == pytest.approx(1 - 5 / 2)


def test_shape_metrics_by_hand():
    m = metrics.shape_metrics(["a", "a", "b", "c"], ["a", "b", "b", "c"])
    assert m["accuracy"] == 0.75
    # F1: a = 2/3 (p 1, r 1/2), b = 2/3 (p 1/2, r 1), c = 1
    assert m["f1_macro"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m["f1_weighted"] == pytest.approx((2 * 2 / 3 + 1 * 2 / 3 + 1 * 1) / 4)


def test_summarize_mean_and_std_over_folds():
    per = pl.DataFrame({"fold": ["0", "1"], "n_val": [3, 5], "mae_nm": [1.0, 3.0], "mse_nm2": [1.0, 1.0],
                        "rmse_nm": [1.0, 1.0], "mape_pct": [10.0, 30.0], "r2": [0.5, 0.7]})
    out = metrics.summarize(per, "size")
    mean = out.filter(pl.col("fold") == "mean").row(0, named=True)
    std = out.filter(pl.col("fold") == "std").row(0, named=True)
    assert mean["mae_nm"] == 2.0 and std["mae_nm"] == 1.0 and mean["r2"] == pytest.approx(0.6)
    assert mean["n_val"] is None and out.height == 4


# --- protocols on the real data ---------------------------------------------------------


@pytest.fixture(scope="module")
def real_keys(processed_recipes) -> pl.DataFrame:
    """Key columns (no features) of the paper's processed CSV, through the project's ingestion."""
    return RecipeFeaturizer(ChemicalTable.read(DEFAULT_PATH), blocks=()).fit_transform(processed_recipes)


def test_paper_folds_are_recomputed_exactly(real_keys, shared_data):
    s = ProtocolSettings()
    folds = paper_folds(real_keys, s)
    assert (folds >= 0).sum() == 617 and solid_mask(real_keys, s).sum() == 617
    given = pl.read_csv(shared_data / "recipes" / "paper_folds.csv")
    table = dict(zip(given["ID"].to_list(), given["fold"].to_list()))
    ours = dict(zip(real_keys["paper_id"].to_list(), folds.tolist()))
    for pid, f in table.items():
        if f >= 0:
            assert ours[pid] == f, pid
    # the given table gives the same folds, and is checked against the data
    s_table = ProtocolSettings(fold_table=table)
    assert np.array_equal(paper_folds(real_keys, s_table), folds)
    with pytest.raises(ProtocolError, match="not in the recipe table"):
        paper_folds(real_keys, ProtocolSettings(fold_table={**table, 999999: 2}))


def test_paper_predictions_file_matches_fold_order(real_keys, shared_data):
    """Concatenating folds 0..4 (rows in file order) gives the paper's own prediction file."""
    pred = pl.read_csv(shared_data / "recipes" / "paper_size_predictions.csv")
    folds = paper_folds(real_keys, ProtocolSettings())
    order = np.argsort(real_keys["source_row"].to_numpy(), kind="stable")
    sizes = [real_keys["size_nm"][int(i)] for k in range(5) for i in order if folds[i] == k]
    assert np.allclose(sizes, pred["true"].to_numpy(), atol=0.01)


def test_protocol_splits_keep_rows_apart(real_keys):
    s = ProtocolSettings()
    family = real_keys["family"].to_numpy()
    product = real_keys["product"].to_numpy()
    size = real_keys["size_nm"].to_numpy()
    seen = []
    for sp in make_splits(real_keys, "P", s):
        assert not np.intersect1d(sp.train, sp.val).size
        assert (size[sp.train] <= 20).all()
        assert sp.train.size + sp.val.size == (size <= 20).sum()  # everything else trains
        seen += sp.val.tolist()
    assert sorted(seen) == sorted(np.flatnonzero(solid_mask(real_keys, s)).tolist())
    seen = []
    for sp in make_splits(real_keys, "G", s):
        assert not set(family[sp.train]) & set(family[sp.val])
        seen += sp.val.tolist()
    assert sorted(seen) == sorted(np.flatnonzero(solid_mask(real_keys, s)).tolist())
    splits = make_splits(real_keys, "U", s)
    assert [sp.name for sp in splits] == ["PbSe", "Ag2S", "Ni", "Cs2NaBiCl6"]
    for sp in splits:
        assert (product[sp.val] == sp.name).all() and (size[sp.val] <= 20).all()
        assert sp.name not in set(product[sp.train])
        assert sp.val.size == ((product == sp.name) & (size <= 20)).sum()
    with pytest.raises(ProtocolError, match="not in the recipe table"):
        make_splits(real_keys, "U", ProtocolSettings(products=("Kryptonite",)))
    # shape trains on every size (no limit), as the paper's classifier does
    shape = make_splits(real_keys, "P", ProtocolSettings(train_max_size_nm=None))
    assert (size[shape[0].train] > 20).any()


def test_other_family_partitions_of_protocol_g(real_keys):
    """partition_seed draws another partition of the families (balanced, whole families,
    reproducible); absent, G keeps GroupKFold's partition (the published comparison's)."""
    s = ProtocolSettings()
    family = real_keys["family"].to_numpy()
    solid = np.flatnonzero(solid_mask(real_keys, s))
    standard = [sorted(sp.val) for sp in make_splits(real_keys, "G", s)]
    drawn = {}
    for seed in (1, 2):
        splits = make_splits(real_keys, "G", ProtocolSettings(partition_seed=seed))
        assert sorted(np.concatenate([sp.val for sp in splits]).tolist()) == solid.tolist()
        for sp in splits:
            assert not set(family[sp.train]) & set(family[sp.val])
        drawn[seed] = [sorted(sp.val) for sp in splits]
        assert drawn[seed] != standard
        assert [sorted(sp.val) for sp in make_splits(real_keys, "G", ProtocolSettings(partition_seed=seed))] == drawn[seed]
    assert drawn[1] != drawn[2]
    # by hand: 'a' (4 rows) and 'b' (3 rows) each fill a fold; the 1-row groups balance them
    groups = np.array(list("aaaabbbcd"))
    for seed in range(5):
        folds = family_partition(groups, 2, seed)
        for g in "abcd":
            assert len(set(folds[groups == g])) == 1  # a group is never split
        sizes = np.bincount(folds, minlength=2)
        assert sizes.max() - sizes.min() <= 4
    assert len({tuple(family_partition(groups, 3, seed)) for seed in range(10)}) > 1  # seeds differ


def test_inner_split_mirrors_the_protocol(real_keys):
    s = ProtocolSettings()
    family = real_keys["family"].to_numpy()
    product = real_keys["product"].to_numpy()
    for protocol in ("P", "G", "U"):
        sp = make_splits(real_keys, protocol, s)[0]
        itr, iva = inner_split(real_keys, sp.train, protocol, s, 0.2, seed=1)
        assert set(itr) <= set(sp.train) and set(iva) <= set(sp.train)
        assert not set(itr) & set(iva) and not set(iva) & set(sp.val)
        if protocol == "G":
            assert not set(family[itr]) & set(family[iva])
        if protocol == "U":
            assert not set(product[itr]) & set(product[iva])
        if protocol in ("P", "G"):
            assert solid_mask(real_keys, s)[iva].all()


# --- no validation row in any fitted object ---------------------------------------------

FITS: list[dict] = []


class RecordingFilter(FeatureFilter):
    def fit(self, X, y=None):
        FITS.append({"what": "filter", "rows": set(np.asarray(X)[:, 0].astype(int))})
        return super().fit(X, y)


class RecordingModel(BaseEstimator):
    def __init__(self, task="size", **params):
        self.task = task
        self.params = params

    def fit(self, X, y, sample_weight=None):
        # X went through the filter: column 0 is still test__rowid (never constant)
        FITS.append({"what": "model", "rows": set(np.asarray(X)[:, 0].astype(int)),
                     "weighted": sample_weight is not None})
        self.value_ = np.mean(y) if self.task == "size" else max(set(y), key=list(y).count)
        return self

    def predict(self, X):
        return np.full(len(X), self.value_, dtype=float if self.task == "size" else object)


class _Reg(RecordingModel, RegressorMixin):
    pass


class _Clf(RecordingModel, ClassifierMixin):
    pass


def _synthetic_design(n=400, seed=0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    products = rng.choice(["PbSe", "CdSe-1", "Au", "Ni", "InP", "Ag2S"], n)
    fam = [f"{p}|chem{rng.integers(0, 6)}" for p in products]
    return pl.DataFrame({
        "recipe_id": [f"t:{i}" for i in range(n)], "source": "t", "source_row": np.arange(2, n + 2),
        "paper_id": np.arange(1, n + 1), "product": products, "family": fam,
        "size_nm": rng.uniform(1, 30, n), "shape": rng.choice(["sphere", "cube", "rod"], n),
        "n_counted": rng.choice([50, 500], n),
        "test__rowid": np.arange(n).astype(float), "test__x": rng.normal(size=n),
    })


def _cfg(grid):
    return {
        "validation": {"min_counted": 300, "max_size_nm": 20},
        "train_max_size_nm": {"size": 20, "shape": None},
        "protocols": {"P": {"kfold_seed": 0}, "G": {"n_splits": 5}, "U": {"products": ["Ni", "Au"]}},
        "inner": {"fraction": 0.2}, "featurize": {"min_count": 1},
        "feature_sets": {"t": ["test"]},
        "models": {"rec": {"params": {}, "grid": grid}},
        "runs": [],
    }


@pytest.mark.parametrize("protocol", ["P", "G", "U"])
@pytest.mark.parametrize("task", ["size", "shape"])
def test_no_validation_row_in_any_fit(protocol, task):
    design = _synthetic_design()
    cfg = _cfg({"a": [1, 2, 3], "family_weight_power": [0.5]})
    run = {"name": "r", "task": task, "model": "rec", "features": "t", "with_size": task == "shape"}

    def make(params, names):
        est = _Reg(task, **params) if task == "size" else _Clf(task, **params)
        return Pipeline([("filter", RecordingFilter(names, min_count=1)), ("model", est)])

    FITS.clear()
    result = cross_validate_run(design, cfg, run, protocol, make_pipeline=make)
    settings = ProtocolSettings.from_config(cfg, task)
    splits = make_splits(design, protocol, settings)
    per_split = 2 * (3 + 1)  # filter + model, for 3 candidates on the inner split and 1 refit
    assert len(FITS) == per_split * len(splits)
    for k, sp in enumerate(splits):
        val = set(sp.val.tolist())
        fits = FITS[k * per_split:(k + 1) * per_split]
        for fit in fits:
            assert not fit["rows"] & val, f"split {sp.name}: a validation row was fitted"
            assert fit["rows"] <= set(sp.train.tolist())
        assert fits[-1]["rows"] == set(sp.train.tolist())  # the refit uses all training rows
        assert all(f["weighted"] for f in fits if f["what"] == "model")
    preds = result.predictions
    assert preds.height == sum(sp.val.size for sp in splits)
    assert set(preds["fold"]) == {sp.name for sp in splits}
    assert result.metrics.filter(pl.col("fold") == "mean").height == 1
    if task == "shape":
        assert {"shape_true", "shape_pred"} <= set(preds.columns)


def _et_run():
    """A synthetic design, a config with a small extra-trees model (two candidates), a size run."""
    cfg = _cfg({})
    cfg["models"] = {"et": {"params": {"n_estimators": 5, "log_target": True}, "grid": {"max_features": [0.5, 1.0]}}}
    return _synthetic_design(), cfg, {"name": "r", "task": "size", "model": "et", "features": "t"}


def test_real_pipeline_fits_filter_on_training_rows_only():
    design, cfg, run = _et_run()
    res = cross_validate_run(design, cfg, run, "P")
    mean = res.metrics.filter(pl.col("fold") == "mean").row(0, named=True)
    assert mean["mae_nm"] > 0 and np.isfinite(mean["r2"])
    assert (res.predictions["size_pred_nm"] > 0).all()  # exp of a log-target model
    rows = res.metrics.filter(~pl.col("fold").is_in(["mean", "std"]))
    assert rows["params"].str.contains("max_features").all()


def test_splits_in_parallel_processes_give_the_same_results():
    design, cfg, run = _et_run()
    one = cross_validate_run(design, cfg, run, "U")
    two = cross_validate_run(design, cfg, run, "U", jobs=2)
    assert one.metrics.equals(two.metrics) and one.predictions.equals(two.predictions)


def test_harness_errors_name_the_key():
    design = _synthetic_design()
    cfg = _cfg({})
    with pytest.raises(HarnessError, match="model 'nope'"):
        cross_validate_run(design, cfg, {"name": "r", "task": "size", "model": "nope", "features": "t"}, "P")
    with pytest.raises(HarnessError, match="feature set 'zz'"):
        cross_validate_run(design, cfg, {"name": "r", "task": "size", "model": "rec", "features": "zz"}, "P")
    cfg["feature_sets"]["u"] = ["uni"]
    with pytest.raises(HarnessError, match="not in the feature table"):
        cross_validate_run(design, cfg, {"name": "r", "task": "size", "model": "rec", "features": "u"}, "P")


def test_shape_classes_are_fitted_as_the_papers_codes():
    """Models see the paper's Y3 codes (class order of shapes_list.txt, whatever the
    spelling); predictions and metrics name the classes as the vocabulary spells them."""
    design = _synthetic_design()
    cfg = _cfg({})
    run = {"name": "r", "task": "shape", "model": "rec", "features": "t"}
    seen = []

    class Clf(_Clf):
        def fit(self, X, y, sample_weight=None):
            seen.append(np.asarray(y))
            return super().fit(X, y, sample_weight)

    res = cross_validate_run(design, cfg, run, "P", make_pipeline=lambda p, names: Pipeline(
        [("filter", RecordingFilter(names, min_count=1)), ("model", Clf("shape"))]))
    assert all(y.dtype == np.int64 for y in seen)
    assert set(np.concatenate(seen).tolist()) == {paper_code("sphere"), paper_code("cube"), paper_code("rod")}
    assert set(res.predictions["shape_true"]) == {"sphere", "cube", "rod"}
    assert set(res.predictions["shape_pred"]) <= {"sphere", "cube", "rod"}
    assert paper_code("irregular") == 0 and paper_code("triangle") == 10  # shapes_list.txt's first and last
    bad = design.with_columns(pl.when(pl.col("recipe_id") == "t:3").then(pl.lit("Irregular shape"))
                              .otherwise(pl.col("shape")).alias("shape"))
    with pytest.raises(HarnessError, match=r"column shape: \['Irregular shape'\] not shape classes"):
        cross_validate_run(bad, cfg, run, "P")


# --- models and comparison --------------------------------------------------------------


def test_candidates_and_weights():
    c = models.candidates({"params": {"n_estimators": 5}, "grid": {"a": [1, 2], "b": [3]}})
    assert c == [{"n_estimators": 5, "a": 1, "b": 3}, {"n_estimators": 5, "a": 2, "b": 3}]
    assert models.candidates({"params": {"x": 1}}) == [{"x": 1}]
    w = models.family_weights(["a", "a", "a", "a", "b"], 1.0)
    assert w[0] * 4 == pytest.approx(w[4]) and w.mean() == pytest.approx(1)
    assert models.fit_params({"family_weight_power": 0}, ["a"]) == {}


def test_vote_builds_members():
    cfgs = {"et": {"params": {"n_estimators": 3}}, "rf": {"params": {"n_estimators": 4}},
            "vote": {"params": {"members": ["et", "rf"], "rf__max_depth": 2}}}
    pipe = models.build_pipeline("vote", "size", cfgs["vote"]["params"], ["a__x"], models=cfgs)
    members = dict(pipe.named_steps["model"].estimators)
    assert members["et"].n_estimators == 3 and members["rf"].max_depth == 2
    with pytest.raises(models.ModelConfigError, match="member"):
        models.build_pipeline("vote", "size", {"members": ["zz"]}, ["a__x"], models=cfgs)


def test_default_vote_log_fits_lightgbm_to_the_median():
    """config.yaml's vote_log (the best G run): its LightGBM member minimises the absolute
    error (L1 loss), its random forest keeps its own parameters."""
    cfgs = load_config(REPO / "config.yaml")["synthesis"]["models"]
    pipe = models.build_pipeline("vote", "size", cfgs["vote_log"]["params"], ["a__x"], models=cfgs)
    members = dict(pipe.named_steps["model"].regressor.estimators)
    assert members["lgbm"].objective == "l1"
    assert members["rf"].n_estimators == cfgs["rf"]["params"]["n_estimators"]
    assert cfgs["lgbm"]["params"].get("objective") is None  # size_lgbm_chem keeps its loss


def test_default_recipe_run_is_vote_log_on_the_recipe_level_blocks():
    """config.yaml's size_vote_recipe is vote_log with its grid's recipe-level choice made
    outright: the same members and parameters, one candidate, and the feature set that the
    grid offers besides every block."""
    cfg = load_config(REPO / "config.yaml")["synthesis"]
    vote_log, vote_recipe = cfg["models"]["vote_log"], cfg["models"]["vote_recipe"]
    assert vote_recipe["kind"] == vote_log["kind"] == "vote"
    assert vote_recipe["params"] == vote_log["params"]
    assert models.candidates(vote_recipe) == [vote_log["params"]]
    assert vote_log["grid"]["feature_blocks"] == [None, cfg["feature_sets"]["recipe"]]
    run = next(r for r in cfg["runs"] if r["name"] == "size_vote_recipe")
    assert (run["task"], run["model"], run["features"]) == ("size", "vote_recipe", "recipe")
    assert "G" in run["protocols"]


class _SizeRec(BaseEstimator, RegressorMixin):
    """Records the rows and targets it is fitted on; predicts ln(size) = column 1 of X."""

    def fit(self, X, y):
        FITS.append({"what": "size", "rows": set(np.asarray(X)[:, 0].astype(int)), "y": np.asarray(y)})
        return self

    def predict(self, X):
        return np.asarray(X)[:, 1]


class _ClfRec(BaseEstimator, ClassifierMixin):
    def fit(self, X, y):
        FITS.append({"what": "clf", "rows": set(np.asarray(X)[:, 0].astype(int)), "X": np.asarray(X)})
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        FITS.append({"what": "predict", "X": np.asarray(X)})
        return np.full(len(X), self.classes_[0], dtype=object)


def test_stack_sees_predicted_size_never_the_measured_one():
    design = _synthetic_design()
    # column 1 of X is a noisy ln(size): what the recording size model "predicts"
    rng = np.random.default_rng(1)
    design = design.with_columns(pl.Series("test__x", np.log(design["size_nm"].to_numpy()) + rng.normal(0, 0.3, design.height)))
    cfg = _cfg({})
    cfg["models"] = {"st": {"kind": "stack", "params": {"size_model": "s", "classifier": "c", "cv": 3}},
                     "s": {"params": {}}, "c": {"params": {}}}
    run = {"name": "r", "task": "shape", "model": "st", "features": "t"}

    def make(params, names):
        est = models.SizeStackedClassifier(_SizeRec(), _ClfRec(), cv=3)
        return Pipeline([("filter", FeatureFilter(names, min_count=1)), ("model", est)])

    FITS.clear()
    cross_validate_run(design, cfg, run, "P", make_pipeline=make)
    sizes = design["size_nm"].to_numpy()
    splits = make_splits(design, "P", ProtocolSettings.from_config(cfg, "shape"))
    per_split = 3 + 1 + 1 + 1  # 3 out-of-fold size fits, the size refit, the classifier, predict
    assert len(FITS) == per_split * len(splits)
    for k, sp in enumerate(splits):
        fits = FITS[k * per_split:(k + 1) * per_split]
        size_fits = [f for f in fits if f["what"] == "size"]
        for f in size_fits:  # trained on training rows and their ln(size) only
            assert f["rows"] <= set(sp.train.tolist())
            assert np.allclose(np.sort(f["y"]), np.sort(np.log(sizes[sorted(f["rows"])])))
        clf = next(f for f in fits if f["what"] == "clf")
        # the classifier's extra column is the (out-of-fold) prediction, not the measured size
        assert np.allclose(clf["X"][:, -1], clf["X"][:, 1])
        pred = next(f for f in fits if f["what"] == "predict")
        assert pred["X"].shape[0] == sp.val.size
        assert np.allclose(pred["X"][:, -1], pred["X"][:, 1])
        assert not np.allclose(pred["X"][:, -1], np.log(sizes[np.sort(sp.val)]))
    with pytest.raises(ValueError, match="measured sizes"):
        models.SizeStackedClassifier(_SizeRec(), _ClfRec()).fit(np.zeros((6, 2)), ["a"] * 6)


def test_stack_builds_from_the_config():
    cfgs = {"et": {"params": {"n_estimators": 3, "log_target": True}}, "etc": {"kind": "et", "params": {"n_estimators": 4}},
            "st": {"kind": "stack", "params": {"size_model": "et", "classifier": "etc"}}}
    pipe = models.build_pipeline("stack", "shape", cfgs["st"]["params"], ["a__x"], models=cfgs)
    st = pipe.named_steps["model"]
    assert st.size_estimator.n_estimators == 3 and st.classifier.n_estimators == 4 and st.cv == 3
    with pytest.raises(models.ModelConfigError, match="shape runs"):
        models.build_pipeline("stack", "size", cfgs["st"]["params"], ["a__x"], models=cfgs)
    with pytest.raises(models.ModelConfigError, match="params.classifier"):
        models.build_pipeline("stack", "shape", {"size_model": "et"}, ["a__x"], models=cfgs)
    with pytest.raises(models.ModelConfigError, match="'zz' is not a plain model"):
        models.build_pipeline("stack", "shape", {"size_model": "zz", "classifier": "etc"}, ["a__x"], models=cfgs)
    fp = models.fit_params({}, ["a", "b"], [2.0, 3.0], "stack")
    assert list(fp) == ["model__size"] and fp["model__size"].tolist() == [2.0, 3.0]


def test_comparison_table_lists_runs_and_anchors():
    size = metrics.summarize(pl.DataFrame({"fold": ["0", "1"], "mae_nm": [1.4, 1.5], "mse_nm2": [4.0, 4.0],
                                           "rmse_nm": [2.0, 2.0], "mape_pct": [20.0, 20.0], "r2": [0.7, 0.72]}), "size")
    size = size.with_columns(pl.lit("P").alias("protocol"), pl.lit("size_et").alias("run"), pl.lit("size").alias("task"),
                             pl.lit("et").alias("model"), pl.lit("chem").alias("features"), pl.lit(False).alias("with_size"))
    table = compare.comparison_table([size])
    ours = table.filter(pl.col("source") == "this workflow").row(0, named=True)
    assert ours["mae_nm"] == pytest.approx(1.45) and ours["n_splits"] == 2
    assert table.filter(pl.col("entry") == "paper random forest")["mae_nm"][0] == 1.631
    text = compare.format_text(table)
    assert "size_et (et on chem)" in text and "paper transformer" in text


def test_candidates_may_train_on_another_size_range():
    design = _synthetic_design()
    sizes = design["size_nm"].to_numpy()
    cfg = _cfg({"train_max_size_nm": [10, None]})
    run = {"name": "r", "task": "size", "model": "rec", "features": "t"}

    def make(params, names):
        return Pipeline([("filter", RecordingFilter(names, min_count=1)), ("model", _Reg("size", **params))])

    FITS.clear()
    cross_validate_run(design, cfg, run, "P", make_pipeline=make)
    splits = make_splits(design, "P", ProtocolSettings.from_config({**cfg, "train_max_size_nm": {"size": None}}, "size"))
    assert len(FITS) == 6 * len(splits)
    for k, sp in enumerate(splits):
        fits = FITS[6 * k:6 * (k + 1)]
        assert max(sizes[list(fits[1]["rows"])]) <= 10  # candidate 10 nm
        assert max(sizes[list(fits[3]["rows"])]) > 20  # candidate without a limit: every size
        for fit in fits:
            assert not fit["rows"] & set(sp.val.tolist())


def test_repeated_inner_splits_average_the_scores():
    design = _synthetic_design()
    sizes = design["size_nm"].to_numpy()
    cfg = _cfg({"a": [1, 2]})
    cfg["inner"]["repeats"] = 3
    run = {"name": "r", "task": "size", "model": "rec", "features": "t"}

    def make(params, names):
        return Pipeline([("filter", RecordingFilter(names, min_count=1)), ("model", _Reg("size", **params))])

    FITS.clear()
    res = cross_validate_run(design, cfg, run, "G", seed=5, make_pipeline=make)
    settings = ProtocolSettings.from_config(cfg, "size")
    splits = make_splits(design, "G", settings)
    per_split = 2 * (2 * 3 + 1)  # filter + model, 2 candidates on each of 3 inner splits, 1 refit
    assert len(FITS) == per_split * len(splits)
    rows = res.metrics.filter(~pl.col("fold").is_in(["mean", "std"]))
    for k, sp in enumerate(splits):
        fits = FITS[k * per_split:(k + 1) * per_split]
        expected = []
        for r in range(3):  # repeat r draws its inner split with seed + k + 1000 r
            itr, iva = inner_split(design, sp.train, "G", settings, 0.2, seed=5 + k + 1000 * r)
            itr = itr[sizes[itr] <= 20]
            assert fits[4 * r]["rows"] == set(itr.tolist())
            expected.append(np.mean(np.abs(sizes[iva] - sizes[itr].mean())))
        assert len({frozenset(fits[4 * r]["rows"]) for r in range(3)}) == 3  # three different draws
        assert rows["inner_score"][k] == pytest.approx(np.mean(expected))


def test_inner_split_chooses_the_feature_blocks():
    design = _synthetic_design()
    rng = np.random.default_rng(1)
    design = design.with_columns(
        # the size is a function of good__x; bad__* are noise
        pl.Series("good__x", np.log(design["size_nm"].to_numpy())),
        *(pl.Series(f"bad__{i}", rng.normal(size=design.height)) for i in range(5)),
    )
    cfg = _cfg({})
    cfg["feature_sets"]["both"] = ["good", "bad"]
    cfg["models"] = {"rf": {"params": {"n_estimators": 20, "max_features": 1.0},
                            "grid": {"feature_blocks": [["bad"], ["good"], None]}}}
    run = {"name": "r", "task": "size", "model": "rf", "features": "both"}
    res = cross_validate_run(design, cfg, run, "G")
    rows = res.metrics.filter(~pl.col("fold").is_in(["mean", "std"]))
    chosen = [json.loads(p)["feature_blocks"] for p in rows["params"]]
    assert all(c != ["bad"] for c in chosen), chosen  # noise alone never wins the inner split
    assert res.metrics.filter(pl.col("fold") == "mean")["mae_nm"][0] < 1.0
    cfg["models"]["rf"]["grid"] = {"feature_blocks": [["good", "uni"]]}
    with pytest.raises(HarnessError, match=r"model rf, feature set both: feature block\(s\) \['uni'\] are not among"):
        cross_validate_run(design, cfg, run, "G")
    cfg["models"]["rf"]["grid"] = {"feature_blocks": ["good", "bad"]}  # two candidates "good" and "bad"
    with pytest.raises(HarnessError, match="must be null or a list of blocks, not 'good'"):
        cross_validate_run(design, cfg, run, "G")


def test_unimol_copy_checks_the_checksum(tmp_path, shared_data):
    from nanoforge.synthesis.stage import StageError, fetch_unimol

    dest = tmp_path / "res" / "unimol_descriptors.parquet"
    mirror = str(shared_data / "recipes")
    with pytest.raises(StageError, match="differs"):
        fetch_unimol(dest, "0" * 64, [mirror])
    assert not dest.exists()
    ok = "3d22c6d05c2e95e9a0009453bd53d0c2ffacd64c1d3a2b368a7e13a28a7a913b"
    assert fetch_unimol(dest, ok, [str(tmp_path / "none"), mirror]) == dest and dest.is_file()
    with pytest.raises(StageError, match="none of the mirror folders"):
        fetch_unimol(tmp_path / "x" / "unimol_descriptors.parquet", ok, [str(tmp_path / "none")])


def test_run_config_holds_what_a_run_uses():
    cfg = _cfg({})
    cfg["models"] = {"et": {"params": {}}, "lgbm": {"params": {}}, "vote": {"params": {"members": ["et", "lgbm"]}},
                     "rf": {"params": {}}}
    cfg["feature_sets"]["other"] = ["cond"]
    cfg["runs"] = [{"name": "a", "task": "size", "model": "vote", "features": "t"},
                   {"name": "b", "task": "size", "model": "rf", "features": "other"}]
    from nanoforge.synthesis.harness import run_config

    sub = run_config(cfg, "a")
    assert set(sub["models"]) == {"vote", "et", "lgbm"} and set(sub["feature_sets"]) == {"t"}
    assert [r["name"] for r in sub["runs"]] == ["a"] and sub["protocols"] == cfg["protocols"]
    with pytest.raises(HarnessError, match="no run named"):
        run_config(cfg, "zz")


def test_family_breakdown_by_hand():
    pred = pl.DataFrame({"family": ["a", "a", "b", "c"], "size_true_nm": [4.0, 6.0, 5.0, 5.0],
                         "size_pred_nm": [5.0, 4.0, 5.0, 6.0]})
    out = metrics.family_breakdown(pred)
    assert out["family"].to_list() == ["a", "c", "b"]  # abs errors 3, 1, 0 of 4
    a = out.row(0, named=True)
    assert a["n"] == 2 and a["mae_nm"] == 1.5 and a["bias_nm"] == pytest.approx(0.5)
    assert a["row_share"] == 0.5 and a["error_share"] == 0.75
    assert out["error_share"].sum() == pytest.approx(1.0)
    perfect = metrics.family_breakdown(pred.with_columns(pl.col("size_true_nm").alias("size_pred_nm")))
    assert perfect["error_share"].to_list() == [0.0, 0.0, 0.0] and perfect["mae_nm"].max() == 0.0
    with pytest.raises(ValueError, match="size_pred_nm"):
        metrics.family_breakdown(pred.drop("size_pred_nm"))


def test_product_report_by_hand():
    from nanoforge.bench.synthesis import product_report

    def table(run, protocol, folds):
        rows = [{"protocol": protocol, "run": run, "fold": f, "n_val": n, "mae_nm": m} for f, n, m in folds]
        rows += [{"protocol": protocol, "run": run, "fold": k, "n_val": None, "mae_nm": 9.9} for k in ("mean", "std")]
        return pl.DataFrame(rows)

    shape = pl.DataFrame({"protocol": ["U"], "run": ["shape_x"], "fold": ["Ni"], "accuracy": [0.5]})
    lines = product_report([table("size_b", "U", [("Ni", 21, 2.5), ("Au", 7, 1.25)]),
                            table("size_a", "U", [("Ni", 21, 3.0)]),
                            table("size_a", "G", [("0", 100, 7.0)]), shape])
    assert lines[0] == "Protocol U: size MAE (nm) by held-out product"
    assert lines[1].split() == ["product", "rows", "size_a", "size_b", "paper", "transformer"]
    assert lines[2].split() == ["Ni", "21", "3.000", "2.500", "2.01"]  # the paper held Ni out
    assert lines[3].split() == ["Au", "7", "-", "1.250", "-"]  # size_a did not hold Au out; the paper neither
    assert len(lines) == 4  # G folds, means and shape runs are not products
    assert product_report([table("size_a", "G", [("0", 100, 7.0)]), shape]) == []


def test_partition_report_by_hand():
    from nanoforge.bench.synthesis import partition_report

    lines = partition_report({"size_b": {"standard": 2.6, "seed 1": 2.5, "seed 2": 2.7},
                              "shape_a": {"standard": 0.8, "seed 1": 0.9}})
    assert lines[1].split() == ["partition", "shape_a", "size_b"]
    assert lines[2].split() == ["standard", "0.800", "2.600"]
    assert lines[3].split() == ["seed", "1", "0.900", "2.500"]
    assert lines[4].split() == ["seed", "2", "-", "2.700"]
    assert lines[5].split() == ["mean", "drawn", "0.900", "2.600"]  # the standard partition is not drawn
    assert lines[6].split() == ["std", "drawn", "0.000", "0.100"]
    assert partition_report({}) == []
