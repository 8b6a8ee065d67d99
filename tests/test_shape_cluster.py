"""Shape clustering: stratified sample, determinism with a seed, noise and unmeasured
particles kept and labelled, fit-on-sample + assign, and cluster naming on synthetic
particles of known shape."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from nanoforge.shapes import cluster as C
from nanoforge.shapes import naming as N
from nanoforge.shapes.descriptors import describe_masks
from nanoforge.shapes.synthetic import particle_specs, render_specs
from nanoforge.vocabulary import NOISE_NAME, UNMEASURED_NAME

CLASSES = ["sphere", "cube", "rod", "triangle", "hexagon"]


@pytest.fixture(scope="module")
def particles():
    """Descriptors of 900 synthetic particles of five shapes (plus their true shapes)."""
    rng = np.random.default_rng(7)
    specs = particle_specs(900, rng, CLASSES, size_px=(20, 44))
    desc = describe_masks(render_specs(specs, rng))
    n = desc.height
    keys = pl.DataFrame({"image_id": [f"img{i % 9}" for i in range(n)], "particle_id": list(range(n))})
    return pl.concat([keys, desc], how="horizontal"), np.array([s["shape"] for s in specs])


@pytest.fixture(scope="module")
def classifier():
    return N.train_classifier(n_per_class=60, seed=0, n_estimators=100)


def small_params(**kw):
    base = dict(n_fit=600, n_neighbors=30, n_epochs=80, min_cluster_size=0.04, min_samples=5, seed=0)
    base.update(kw)
    return C.ClusterParams(**base)


def test_stratified_sample_covers_every_stratum():
    strata = np.array(["a"] * 1000 + ["b"] * 100 + ["c"] * 5)
    idx = C.stratified_sample(strata, 200, seed=1, min_per_stratum=20)
    got = {s: int((strata[idx] == s).sum()) for s in "abc"}
    assert got == {"a": 163, "b": 32, "c": 5}  # at least 20 (or all), the rest by largest remainder
    assert np.all(np.diff(idx) > 0)
    assert np.array_equal(idx, C.stratified_sample(strata, 200, seed=1, min_per_stratum=20))
    assert not np.array_equal(idx, C.stratified_sample(strata, 200, seed=2, min_per_stratum=20))
    assert np.array_equal(C.stratified_sample(strata, 5000, seed=1), np.arange(1105))
    # many small strata: the floor gives way, the total stays n
    many = np.repeat(np.arange(1000), 10)
    idx = C.stratified_sample(many, 500, seed=0, min_per_stratum=20)
    assert len(idx) == 500 and np.bincount(many[idx]).max() == 1
    idx = C.stratified_sample(many, 3000, seed=0, min_per_stratum=20)
    assert len(idx) == 3000 and set(np.bincount(many[idx], minlength=1000)) == {3}


def test_fast_init_graph_transform_matches_umap():
    import scipy.sparse as sp
    from umap.umap_ import init_graph_transform

    rng = np.random.default_rng(0)
    g = sp.random(300, 80, density=0.1, random_state=1, format="csr", dtype=np.float32)
    g = g.tolil()
    g[5, :] = 0  # a point without neighbours -> nan
    g[7, 3] = 1.0  # a point coinciding with a training point
    g = g.tocsr()
    g.eliminate_zeros()
    emb = rng.normal(size=(80, 2)).astype(np.float32)
    ref = init_graph_transform(g, emb)
    got = C.fast_init_graph_transform(g, emb)
    assert np.isnan(got[5]).all() and np.array_equal(got[7], emb[3])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_clustering_is_deterministic_and_assigns_every_particle(particles):
    desc, truth = particles
    t1, s1 = C.cluster_table(desc, small_params())
    t2, s2 = C.cluster_table(desc, small_params())
    assert t1.equals(t2) and s1 == s2
    assert t1.height == desc.height and t1["in_fit_sample"].sum() < desc.height  # some assigned, not fitted
    assert s1["clusters"] >= 3
    assert adjusted_rand_score(truth, t1["cluster_id"].to_numpy()) > 0.5
    assert t1.filter(pl.col("cluster_id") >= 0)["cluster_probability"].min() > 0
    # assigned particles land in the clusters of their kind, like the fitted ones
    fitted = t1["in_fit_sample"].to_numpy()
    ari_fit = adjusted_rand_score(truth[fitted], t1["cluster_id"].to_numpy()[fitted])
    ari_new = adjusted_rand_score(truth[~fitted], t1["cluster_id"].to_numpy()[~fitted])
    assert ari_new > ari_fit - 0.15
    t3, _ = C.cluster_table(desc, small_params(seed=1))
    assert not t3.equals(t1)


def test_noise_and_unmeasured_particles_are_kept(particles, classifier):
    desc, truth = particles
    # 20 six-pointed stars: a group too small for a cluster (min_cluster_size 37) -> noise.
    # UMAP's graph links them to no other shape, so where they land in the embedding (and
    # which HDBSCAN cluster they would be counted into) is an accident of the initial layout.
    rng = np.random.default_rng(3)
    stars = describe_masks(render_specs(particle_specs(20, rng, ["six_pointed_star"], size_px=(20, 44)), rng))
    stars = pl.concat([pl.DataFrame({"image_id": ["img0"] * 20, "particle_id": list(range(10_000, 10_020))}), stars],
                      how="horizontal")
    broken = desc.head(2).with_columns(pl.Series("particle_id", [20_000, 20_001]),
                                       pl.Series("status", ["too_small", "bad_rle"]))
    data = pl.concat([desc, stars, broken])
    table, summary = C.cluster_table(data, small_params(n_fit=2000))
    assert table.height == data.height
    assert table.tail(2)["cluster_id"].to_list() == [C.UNCLUSTERED] * 2
    assert table.tail(2)["umap_1"].is_nan().all()
    assert summary["unclustered"] == 2
    noise = table["cluster_id"] == C.NOISE
    assert summary["noise"] == int(noise.sum())
    assert noise.slice(desc.height, 20).sum() >= 15
    # another seed (not one lucky layout), and the same stars assigned to the fitted model
    x = C.feature_matrix(data.head(desc.height + 20), small_params().features)
    model = C.fit_model(x, small_params(seed=1))
    assert model.isolated[-20:].sum() >= 15 and not model.isolated[:desc.height].any()
    assert (model.fit_labels[model.isolated] == C.NOISE).all()
    _, labels, prob = model.assign(x[-20:])
    assert (labels[model.isolated[-20:]] == C.NOISE).all() and (prob[labels == C.NOISE] == 0).all()
    _, labels, _ = model.assign(x[:100])
    assert (labels >= 0).mean() > 0.9
    assert (table.filter(noise)["cluster_probability"] == 0).all()
    mapping = N.name_clusters(table, data, classifier)
    shapes = N.particle_shapes(table, mapping)
    assert (shapes.filter(noise)["shape"] == NOISE_NAME).all()
    assert shapes.tail(2)["shape"].to_list() == [UNMEASURED_NAME] * 2


def test_small_components_of_the_umap_graph():
    import scipy.sparse as sp

    # points 0-5 linked, 6-8 linked, 9 alone; the edge 5-6 is below max / n_epochs
    rows, cols, w = [0, 1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8], [1, 0.9, 0.8, 1, 0.7, 0.001, 1, 0.5]
    g = sp.coo_matrix((w, (rows, cols)), shape=(10, 10))
    g = (g + g.T).tocsr()
    got = C.small_components(g, n_epochs=100, min_cluster_size=4)
    assert got.tolist() == [False] * 6 + [True] * 4
    assert C.small_components(g, n_epochs=2000, min_cluster_size=4).tolist() == [False] * 9 + [True]


def test_too_few_particles_are_all_noise(particles):
    desc, _ = particles
    table, summary = C.cluster_table(desc.head(5), small_params())
    assert (table["cluster_id"] == C.NOISE).all() and summary["clusters"] == 0 and "note" in summary


def test_unknown_feature_and_parameter_are_named():
    with pytest.raises(C.ClusterError, match="bogus"):
        C.ClusterParams(features=["circularity", "bogus"]).check()
    with pytest.raises(C.ClusterError, match="n_fitt"):
        C.ClusterParams.from_config({"n_fitt": 3})


def test_naming_accuracy_on_known_shapes(particles, classifier):
    desc, truth = particles
    table, _ = C.cluster_table(desc, small_params())
    mapping = N.name_clusters(table, desc, classifier)
    shapes = N.particle_shapes(table, mapping)
    acc = N.naming_accuracy(truth, shapes["shape"].to_numpy(), CLASSES)
    assert all(a >= 0.9 for a in acc.values()), acc
    assert mapping.filter(pl.col("cluster_id") == C.NOISE)["shape"].to_list() == [NOISE_NAME]
    named = mapping.filter(pl.col("cluster_id") >= 0)
    assert (named["source"] == "classifier").all() and (named["n_votes"] > 0).all()
    assert named["share"].min() > 0.5


def test_overrides_replace_names(particles, classifier):
    desc, _ = particles
    table, _ = C.cluster_table(desc, small_params())
    mapping = N.name_clusters(table, desc, classifier, {"0": "flower shape", "99": "cube"})
    row0 = mapping.filter(pl.col("cluster_id") == 0).row(0, named=True)
    assert row0["shape"] == "flower" and row0["source"] == "config"
    assert mapping.filter(pl.col("cluster_id") == 99)["source"].to_list() == ["config (no such cluster)"]
    shapes = N.particle_shapes(table, mapping)
    assert (shapes.filter(pl.col("cluster_id") == 0)["shape"] == "flower").all()
    with pytest.raises(N.NamingError, match="cluster_names.1"):
        N.check_overrides({"1": "banana"})
    with pytest.raises(N.NamingError, match="not a cluster id"):
        N.check_overrides({"one": "cube"})
