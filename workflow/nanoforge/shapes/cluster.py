"""Shape clusters: standardise descriptors -> UMAP -> HDBSCAN, fitted on a stratified sample
and applied to every particle.

Fitting UMAP and HDBSCAN on a million particles does not fit one machine's time and memory,
and does not need to: the clusters are found on a sample (``n_fit`` particles, stratified
so that every image or sample contributes) and every other particle is placed with UMAP's
``transform`` and labelled with HDBSCAN's ``approximate_predict`` (the model is built with
``prediction_data=True``), in batches of ``batch_size`` rows. Particles of the sample keep
the labels of the fit itself.

Labels: ``cluster_id`` >= 0 is a cluster; -1 is noise (kept, named 'noise'): HDBSCAN's
noise, and every particle of a group that UMAP's neighbour graph leaves unconnected to the
rest when that group is smaller than ``min_cluster_size`` (see :func:`small_components`);
-2 marks particles that were not clustered because their descriptors could not be measured
(descriptor ``status`` other than 'ok': too small, empty or malformed mask).
``cluster_probability`` is HDBSCAN's membership strength (0 for noise and unclustered).

Everything random takes ``seed``: the sample, UMAP (``random_state``, which also makes
UMAP single-threaded and deterministic, and ``transform_seed``) and the batch order; two
runs with the same inputs and parameters give the same table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl
from numba import njit

from nanoforge.shapes.descriptors import GEOMETRIC_COLUMNS, SHAPE_COLUMNS

NOISE = -1
UNCLUSTERED = -2

DEFAULT_FEATURES = [
    *GEOMETRIC_COLUMNS,
    "fd_m1",
    "fd_m2",
    "fd_m3",
    "fd_m4",
    "fd_m5",
    "fd_m6",
    "fd_m7",
    "fd_p2",
    "fd_p3",
    "fd_p5",
    "fd_p7",
]
"""Descriptors clustered by default: the geometric ones and the Fourier descriptors that
carry the symmetry of the common shapes (log-scaled Hu invariants are kept in the
descriptor table but left out here: for symmetric shapes most of them are log10 of ~0,
i.e. pixel noise)."""

LOG_FEATURES = {"aspect_ratio"}  # clustered as log(value)


@njit(cache=True)
def _init_graph_transform(indptr, indices, data, embedding):
    n = indptr.shape[0] - 1
    result = np.zeros((n, embedding.shape[1]), dtype=np.float32)
    for i in range(n):
        s, e = indptr[i], indptr[i + 1]
        if e == s:
            result[i, :] = np.nan
            continue
        row_sum = np.float32(0.0)
        for k in range(s, e):
            row_sum += data[k]
        for k in range(s, e):
            v = data[k]
            c = indices[k]
            if v == 1:
                result[i, :] = embedding[c, :]
                break
            for j in range(embedding.shape[1]):
                result[i, j] += v / row_sum * embedding[c, j]
    return result


def fast_init_graph_transform(graph, embedding):
    """Same result as ``umap.umap_.init_graph_transform`` (each new point at the
    membership-weighted mean of its training neighbours' positions, or at a neighbour it
    coincides with), compiled instead of a Python loop over sparse rows, which took ~70 %
    of UMAP 0.5's ``transform`` time."""
    g = graph.tocsr()
    return _init_graph_transform(g.indptr, g.indices, g.data.astype(np.float32),
                                 np.ascontiguousarray(embedding, dtype=np.float32))


@contextlib.contextmanager
def _fast_umap_transform():
    import umap.umap_ as umap_module

    original = umap_module.init_graph_transform
    umap_module.init_graph_transform = fast_init_graph_transform
    try:
        yield
    finally:
        umap_module.init_graph_transform = original


class ClusterError(ValueError):
    """Clustering cannot run as configured; the message names the parameter or column."""


@dataclasses.dataclass
class ClusterParams:
    """Parameters of :func:`cluster_shapes` (config ``shapes.cluster``)."""

    features: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_FEATURES))
    n_fit: int = 30000
    min_per_stratum: int = 20
    n_neighbors: int = 30
    min_dist: float = 0.0
    n_components: int = 2
    metric: str = "euclidean"
    n_epochs: int = 200
    init: str = "pca"
    transform_epochs: int = 30
    min_cluster_size: float = 0.01
    min_samples: int = 10
    cluster_selection_method: str = "eom"
    cluster_selection_epsilon: float = 0.0
    batch_size: int = 100000
    threads: int = 1
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: dict, seed: int = 0, threads: int = 1) -> "ClusterParams":
        known = {f.name for f in dataclasses.fields(cls)} - {"seed", "threads"}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ClusterError(f"unknown clustering parameter(s): {', '.join(unknown)}")
        return cls(**{**cfg, "seed": seed, "threads": threads})

    def check(self) -> None:
        bad = [f for f in self.features if f not in SHAPE_COLUMNS]
        if bad:
            raise ClusterError(f"shapes.cluster.features: unknown descriptor(s) {bad}; known: {SHAPE_COLUMNS}")
        if not self.features:
            raise ClusterError("shapes.cluster.features: at least one descriptor is needed")
        if self.min_cluster_size <= 0:
            raise ClusterError("shapes.cluster.min_cluster_size must be positive")


def effective_min_cluster_size(value: float, n_fit: int) -> int:
    """``min_cluster_size`` below 1 is a fraction of the fitted sample, else a count; at
    least 5 and at most half the sample."""
    size = value * n_fit if value < 1 else value
    return int(max(5, min(round(size), max(5, n_fit // 2))))


def stratified_sample(strata: np.ndarray, n: int, seed: int, min_per_stratum: int = 20) -> np.ndarray:
    """Sorted row indices of a random sample of ``n`` rows in which every stratum (e.g.
    image or sample id) gets ``min_per_stratum`` rows (or all it has), lowered where that
    alone would exceed ``n`` (to ``n`` // number of strata, possibly 0), and the rest of
    ``n`` is shared in proportion to the strata's remaining rows. With ``n`` >= the number
    of rows every row is taken."""
    total = len(strata)
    if n >= total:
        return np.arange(total)
    rng = np.random.default_rng([seed, 11])
    key = rng.random(total)
    codes, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    floor = min(min_per_stratum, n // len(codes))
    base = np.minimum(counts, floor)
    rest = counts - base
    # the rest by largest remainders (ties in a seeded random order): exactly n in all
    exact = (n - base.sum()) * rest / max(rest.sum(), 1)
    extra = np.minimum(np.floor(exact).astype(np.int64), rest)
    left = int(n - base.sum() - extra.sum())
    if left > 0:
        tie = rng.random(len(codes))
        order_rem = np.lexsort((tie, -(exact - extra)))
        order_rem = order_rem[extra[order_rem] < rest[order_rem]][:left]
        extra[order_rem] += 1
    quota = base + extra
    # rank of each row within its stratum by its random key
    order = np.lexsort((key, inverse))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(total, np.int64)
    rank[order] = np.arange(total) - np.repeat(starts, counts)
    return np.flatnonzero(rank < quota[inverse])


def feature_matrix(df: pl.DataFrame, features: list[str]) -> np.ndarray:
    """Descriptor matrix (float32) with log applied to :data:`LOG_FEATURES`."""
    cols = []
    for f in features:
        v = df[f].cast(pl.Float64).to_numpy()
        if f in LOG_FEATURES:
            v = np.log(np.maximum(v, 1e-6))
        cols.append(v)
    return np.column_stack(cols).astype(np.float32) if cols else np.zeros((df.height, 0), np.float32)


@dataclasses.dataclass
class ShapeModel:
    """A fitted scaler + UMAP + HDBSCAN."""

    params: ClusterParams
    mean: np.ndarray
    scale: np.ndarray
    umap: object
    hdbscan: object
    fit_labels: np.ndarray
    fit_probabilities: np.ndarray
    fit_embedding: np.ndarray
    isolated: np.ndarray  # fitted particles in a UMAP graph component too small for a cluster

    def standardise(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale).astype(np.float32)

    def assign(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(embedding, labels, probabilities) of new particles. A particle whose nearest
        fitted particle lies in a component too small for a cluster is noise, like it."""
        import hdbscan

        if len(x) == 0:
            k = self.params.n_components
            return np.zeros((0, k), np.float32), np.zeros(0, np.int32), np.zeros(0, np.float32)
        z = self.standardise(x)
        with warnings.catch_warnings(), _fast_umap_transform():
            warnings.simplefilter("ignore")
            emb = self.umap.transform(z)
        labels, prob = hdbscan.approximate_predict(self.hdbscan, emb)
        labels, prob = labels.astype(np.int32), prob.astype(np.float32)
        if self.isolated.any():
            from sklearn.neighbors import NearestNeighbors

            fitted = self.umap._raw_data  # the standardised fit sample
            nearest = NearestNeighbors(n_neighbors=1).fit(fitted).kneighbors(z, return_distance=False)[:, 0]
            lonely = self.isolated[nearest]
            labels[lonely], prob[lonely] = NOISE, 0.0
        return emb.astype(np.float32), labels, prob


def fit_model(x: np.ndarray, params: ClusterParams) -> ShapeModel:
    """Fit scaler, UMAP and HDBSCAN on the descriptor matrix of the sample."""
    import hdbscan
    import umap

    n = len(x)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = ((x - mean) / scale).astype(np.float32)
    n_neighbors = int(min(params.n_neighbors, n - 1))
    reducer = umap.UMAP(
        n_neighbors=n_neighbors,
        min_dist=params.min_dist,
        n_components=params.n_components,
        metric=params.metric,
        n_epochs=params.n_epochs,
        random_state=params.seed,
        transform_seed=params.seed,
        low_memory=True,
        # PCA start: as good here as UMAP's default spectral start and several times faster
        # (the spectral start took 100+ s of a 30k-particle fit); spectral fails on tiny samples
        init=params.init if (params.init != "spectral" or n > 4 * n_neighbors) else "pca",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", etc.
        emb = reducer.fit_transform(z)
    # UMAP.transform optimises for n_epochs // 3 epochs: set the transform's own budget
    reducer.n_epochs = 3 * params.transform_epochs
    mcs = effective_min_cluster_size(params.min_cluster_size, n)
    clusterer = hdbscan.HDBSCAN(
        min_cluster_size=mcs,
        min_samples=int(min(params.min_samples, mcs)),
        cluster_selection_method=params.cluster_selection_method,
        cluster_selection_epsilon=params.cluster_selection_epsilon,
        prediction_data=True,
        core_dist_n_jobs=max(1, params.threads),
    ).fit(emb)
    labels = clusterer.labels_.astype(np.int32)
    probabilities = clusterer.probabilities_.astype(np.float32)
    isolated = small_components(reducer.graph_, params.n_epochs, mcs)
    labels[isolated], probabilities[isolated] = NOISE, 0.0
    return ShapeModel(params, mean, scale, reducer, clusterer, labels, probabilities,
                      emb.astype(np.float32), isolated)


def small_components(graph, n_epochs: int, min_cluster_size: int) -> np.ndarray:
    """Mask of the points in a connected component of UMAP's fuzzy neighbour graph that has
    fewer than ``min_cluster_size`` points, counting only the edges UMAP's layout optimises
    (weight >= max / ``n_epochs``, as ``umap.umap_.simplicial_set_embedding`` prunes).

    Such a group shares no edge with the rest, so its place in the embedding is not set by
    any similarity: it stays about where the initial layout (PCA) put it, and HDBSCAN may
    then count it into whichever cluster lies next to it. Being smaller than a cluster, it
    is noise."""
    from scipy.sparse.csgraph import connected_components

    g = graph.tocsr(copy=True)
    if n_epochs <= 10:  # UMAP prunes by its default epoch count then
        n_epochs = 500 if g.shape[0] <= 10000 else 200
    g.data[g.data < g.data.max() / float(n_epochs)] = 0.0
    g.eliminate_zeros()
    _, comp = connected_components(g, directed=False)
    return np.bincount(comp)[comp] < min_cluster_size


def _emb_columns(k: int) -> list[str]:
    return [f"umap_{i + 1}" for i in range(k)]


def cluster_table(
    descriptors: pl.DataFrame,
    params: ClusterParams,
    strata: np.ndarray | None = None,
    timings: dict | None = None,
) -> tuple[pl.DataFrame, dict]:
    """Cluster every particle of a descriptor table (rows in the order given).

    ``strata`` (one value per row, e.g. the sample id) stratifies the fitted sample; by
    default the image id. Returns the cluster table (``image_id``, ``particle_id``,
    ``cluster_id``, ``cluster_probability``, ``in_fit_sample``, ``umap_1`` ...) and a
    summary.
    """
    params.check()
    timings = timings if timings is not None else {}
    missing = [c for c in ["image_id", "particle_id", "status", *params.features] if c not in descriptors.columns]
    if missing:
        raise ClusterError(f"descriptor table lacks column(s) {missing}")
    n = descriptors.height
    k = params.n_components
    cluster_id = np.full(n, UNCLUSTERED, np.int32)
    prob = np.zeros(n, np.float32)
    emb = np.full((n, k), np.nan, np.float32)
    in_fit = np.zeros(n, bool)
    ok_mask = (descriptors["status"] == "ok").to_numpy()
    x_all = feature_matrix(descriptors, params.features)
    ok_mask &= np.isfinite(x_all).all(axis=1)
    ok = np.flatnonzero(ok_mask)
    summary = {"particles": n, "clustered": int(ok.size), "unclustered": int(n - ok.size)}
    min_fit = max(params.min_samples + 2, 10)
    if ok.size < min_fit:
        # too few measurable particles for UMAP/HDBSCAN: all of them are noise
        cluster_id[ok] = NOISE
        summary.update({"fitted": 0, "clusters": 0, "noise": int(ok.size),
                        "note": f"only {ok.size} measurable particles (< {min_fit}): not clustered"})
    else:
        if strata is None:
            strata = descriptors["image_id"].to_numpy()
        strata = np.asarray(strata)
        t0 = time.perf_counter()
        pick = stratified_sample(strata[ok], params.n_fit, params.seed, params.min_per_stratum)
        fit_rows = ok[pick]
        model = fit_model(x_all[fit_rows], params)
        timings["fit_s"] = time.perf_counter() - t0
        in_fit[fit_rows] = True
        cluster_id[fit_rows] = model.fit_labels
        prob[fit_rows] = model.fit_probabilities
        emb[fit_rows] = model.fit_embedding
        rest = np.flatnonzero(ok_mask & ~in_fit)
        t0 = time.perf_counter()
        for start in range(0, rest.size, params.batch_size):
            rows = rest[start : start + params.batch_size]
            e, lab, p = model.assign(x_all[rows])
            emb[rows], cluster_id[rows], prob[rows] = e, lab, p
        timings["assign_s"] = time.perf_counter() - t0
        labels = cluster_id[ok]
        summary.update({
            "fitted": int(fit_rows.size),
            "min_cluster_size": effective_min_cluster_size(params.min_cluster_size, fit_rows.size),
            "clusters": int(labels.max() + 1) if labels.size else 0,
            "noise": int((labels == NOISE).sum()),
        })
    table = pl.DataFrame({
        "image_id": descriptors["image_id"],
        "particle_id": descriptors["particle_id"],
        "cluster_id": cluster_id,
        "cluster_probability": prob,
        "in_fit_sample": in_fit,
        **{c: emb[:, i] for i, c in enumerate(_emb_columns(k))},
    })
    return table, summary


def read_descriptors(path: str | Path, features: list[str]) -> pl.DataFrame:
    """The columns of a descriptor table that clustering needs (lazy scan, projection
    pushed down)."""
    path = Path(path)
    if not path.exists():
        raise ClusterError(f"descriptor table not found: {path}")
    schema = pl.scan_parquet(path).collect_schema()
    missing = [c for c in ["image_id", "particle_id", "status", *features] if c not in schema]
    if missing:
        raise ClusterError(f"{path}: missing column(s) {missing}")
    return pl.scan_parquet(path).select(["image_id", "particle_id", "status", *features]).collect()


def strata_for(descriptors: pl.DataFrame, images: str | Path | None, by: str) -> np.ndarray:
    """Stratum of every particle: its ``image_id`` or, with ``by='sample_id'``, its image's
    sample in the images table (images missing there form their own strata)."""
    if by == "image_id" or images is None:
        return descriptors["image_id"].to_numpy()
    if by != "sample_id":
        raise ClusterError(f"shapes.cluster stratify_by must be image_id or sample_id, not {by!r}")
    img = pl.scan_parquet(images).select("image_id", "sample_id").collect()
    joined = descriptors.select("image_id").join(img, on="image_id", how="left", maintain_order="left")
    return joined["sample_id"].fill_null(joined["image_id"]).to_numpy()


def cluster_shapes(
    descriptors_path: str | Path,
    out: str | Path,
    params: ClusterParams,
    images: str | Path | None = None,
    stratify_by: str = "sample_id",
) -> dict:
    """Cluster the particles of a descriptor table and write the cluster table to ``out``.
    Returns the summary (counts and timings)."""
    t0 = time.perf_counter()
    desc = read_descriptors(descriptors_path, params.features)
    strata = strata_for(desc, images, stratify_by)
    timings: dict = {}
    table, summary = cluster_table(desc, params, strata, timings)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    table.write_parquet(tmp)
    os.replace(tmp, out)
    summary.update({k: round(v, 2) for k, v in timings.items()})
    summary["total_s"] = round(time.perf_counter() - t0, 2)
    return summary


def cluster_counts(table: pl.DataFrame) -> pl.DataFrame:
    """Particles per cluster id (including -1 noise and -2 unclustered)."""
    return table.group_by("cluster_id").len("n_particles").sort("cluster_id")
