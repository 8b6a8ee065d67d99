"""Names for shape clusters: which of the dataset's shape classes each cluster is.

A small classifier (a random forest on the descriptors) is trained on synthetic particles
of known shape (:func:`nanoforge.shapes.synthetic.training_masks`: every class of
:data:`nanoforge.vocabulary.SHAPE_CLASSES`, random size, elongation, rotation, corner rounding
and roughness). It votes on the members of each cluster that were in the fitted sample; the
cluster takes the class with most votes. The mapping table lists, per cluster, the votes'
winner and its share, the runner-up, and the cluster's median descriptors, so that a reader
can check each name; ``shapes.cluster_names`` in the config overrides any of them (source
'config'). Noise (-1) is named 'noise' and unclustered particles (-2) 'unmeasured'.

Cluster ids depend on the data and the parameters: an override is meant for one fitted
configuration (look at the gallery and the mapping table, then pin the names).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl

from nanoforge.shapes.cluster import NOISE, UNCLUSTERED
from nanoforge.shapes.descriptors import SHAPE_COLUMNS, describe_masks
from nanoforge.shapes.synthetic import DEFAULT_SIZE_PX, training_masks
from nanoforge.vocabulary import NOISE_NAME, SHAPE_CLASSES, UNMEASURED_NAME, shape_class

CLASSIFIER_FEATURES = [c for c in SHAPE_COLUMNS if c not in ("hu_3", "hu_4", "hu_5", "hu_6", "hu_7")]
SUMMARY_FEATURES = ["circularity", "solidity", "aspect_ratio", "rectangularity", "corner_count", "concave_count"]


class NamingError(ValueError):
    """Bad naming configuration; the message names the key."""


@dataclasses.dataclass
class ShapeClassifier:
    """Random forest on descriptors; ``classes_`` are shape classes of the vocabulary."""

    model: object
    features: list[str]

    @property
    def classes_(self) -> list[str]:
        return list(self.model.classes_)

    def _matrix(self, df: pl.DataFrame) -> np.ndarray:
        x = np.column_stack([df[f].cast(pl.Float64).to_numpy() for f in self.features])
        return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)

    def predict(self, df: pl.DataFrame) -> np.ndarray:
        if df.height == 0:
            return np.zeros(0, dtype=object)
        return self.model.predict(self._matrix(df))

    def predict_proba(self, df: pl.DataFrame) -> np.ndarray:
        return self.model.predict_proba(self._matrix(df))


def train_classifier(
    n_per_class: int = 300,
    seed: int = 0,
    size_px: tuple[float, float] = DEFAULT_SIZE_PX,
    shapes=SHAPE_CLASSES,
    features: list[str] = CLASSIFIER_FEATURES,
    n_estimators: int = 200,
) -> ShapeClassifier:
    """Train the naming classifier on ``n_per_class`` synthetic particles of every shape."""
    from sklearn.ensemble import RandomForestClassifier

    masks, y = training_masks(n_per_class, seed, shapes, size_px)
    desc = describe_masks(masks, min_area_px=0)
    keep = (desc["status"] == "ok").to_numpy()
    clf = ShapeClassifier(
        RandomForestClassifier(n_estimators=n_estimators, min_samples_leaf=2, random_state=seed, n_jobs=1),
        list(features),
    )
    clf.model.fit(clf._matrix(desc.filter(pl.Series(keep))), np.asarray(y)[keep])
    return clf


def check_overrides(overrides: dict | None) -> dict[int, str]:
    """Config ``shapes.cluster_names`` ({cluster id: shape}) -> {int: shape key}."""
    out = {}
    for key, name in (overrides or {}).items():
        try:
            cid = int(key)
        except (TypeError, ValueError):
            raise NamingError(f"shapes.cluster_names: key {key!r} is not a cluster id (an integer)") from None
        if name == NOISE_NAME:
            out[cid] = NOISE_NAME
            continue
        try:
            out[cid] = shape_class(str(name))
        except ValueError as exc:
            raise NamingError(f"shapes.cluster_names.{key}: {exc}") from None
    return out


def name_clusters(
    clusters: pl.DataFrame,
    descriptors: pl.DataFrame,
    classifier: ShapeClassifier,
    overrides: dict | None = None,
) -> pl.DataFrame:
    """Mapping table: one row per cluster id (including noise and unclustered).

    ``clusters`` and ``descriptors`` are row-aligned (same particles, same order). Votes
    come from the members of the fitted sample (all members where a cluster has none).
    """
    if clusters.height != descriptors.height:
        raise ValueError("clusters and descriptors must have the same rows")
    overrides = check_overrides(overrides)
    cid = clusters["cluster_id"].to_numpy()
    in_fit = clusters["in_fit_sample"].to_numpy()
    rows = []
    ids = sorted(set(cid.tolist()) | {NOISE})
    for c in ids:
        members = cid == c
        n = int(members.sum())
        med = {f"median_{f}": (float(np.nanmedian(descriptors[f].filter(pl.Series(members)).cast(pl.Float64).to_numpy()))
                               if n and c != UNCLUSTERED else None) for f in SUMMARY_FEATURES}
        row = {"cluster_id": int(c), "n_particles": n, "n_votes": 0, "predicted_shape": None, "share": None,
               "runner_up": None, "runner_up_share": None, **med}
        if c == NOISE:
            row.update(shape=NOISE_NAME, source="fixed")
        elif c == UNCLUSTERED:
            row.update(shape=UNMEASURED_NAME, source="fixed")
        else:
            voters = members & in_fit
            if not voters.any():
                voters = members
            pred = classifier.predict(descriptors.filter(pl.Series(voters)))
            names, counts = np.unique(pred, return_counts=True)
            order = np.lexsort((names, -counts))  # most votes, ties alphabetical
            names, counts = names[order], counts[order]
            total = counts.sum()
            row.update(n_votes=int(total), predicted_shape=str(names[0]), share=float(counts[0] / total),
                       shape=str(names[0]), source="classifier")
            if len(names) > 1:
                row.update(runner_up=str(names[1]), runner_up_share=float(counts[1] / total))
        if c in overrides:
            row.update(shape=overrides[c], source="config")
        rows.append(row)
    unknown = sorted(set(overrides) - set(ids))
    schema = {"cluster_id": pl.Int32, "n_particles": pl.Int64, "n_votes": pl.Int64, "predicted_shape": pl.String,
              "share": pl.Float64, "runner_up": pl.String, "runner_up_share": pl.Float64,
              **{f"median_{f}": pl.Float64 for f in SUMMARY_FEATURES}, "shape": pl.String, "source": pl.String}
    table = pl.DataFrame(rows, schema=schema)
    if unknown:
        # an override for a cluster that does not exist (any more): keep it visible
        extra = pl.DataFrame([{"cluster_id": u, "n_particles": 0, "n_votes": 0, "shape": overrides[u],
                               "source": "config (no such cluster)"} for u in unknown], schema=schema)
        table = pl.concat([table, extra])
    return table.sort("cluster_id")


def particle_shapes(clusters: pl.DataFrame, mapping: pl.DataFrame) -> pl.DataFrame:
    """Per-particle shape: the cluster table joined with the mapping (``shape`` column)."""
    names = mapping.filter(pl.col("n_particles") > 0).select("cluster_id", "shape")
    return clusters.select("image_id", "particle_id", "cluster_id", "cluster_probability").join(
        names, on="cluster_id", how="left", maintain_order="left"
    ).with_columns(pl.col("shape").fill_null(UNMEASURED_NAME))


def naming_accuracy(true_shape, named_shape, classes=None) -> dict[str, float]:
    """Per-class accuracy (recall) of named shapes against true shapes (noise counts as
    wrong)."""
    true_shape = np.asarray(true_shape)
    named_shape = np.asarray(named_shape)
    classes = classes or sorted(set(true_shape.tolist()))
    return {c: float(np.mean(named_shape[true_shape == c] == c)) for c in classes if (true_shape == c).any()}


def name_clusters_from_files(
    clusters: str,
    descriptors: str,
    naming: dict | None = None,
    overrides: dict | None = None,
    seed: int = 0,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(mapping table, per-particle shapes) from the cluster and descriptor tables; the
    classifier is trained with config ``shapes.naming`` (n_per_class, size_px)."""
    naming = naming or {}
    cl = pl.read_parquet(clusters)
    feats = list(dict.fromkeys(CLASSIFIER_FEATURES + SUMMARY_FEATURES))
    desc = pl.scan_parquet(descriptors).select(["image_id", "particle_id", *feats]).collect()
    desc = cl.select("image_id", "particle_id").join(desc, on=["image_id", "particle_id"], how="left",
                                                      maintain_order="left")
    clf = train_classifier(int(naming.get("n_per_class", 300)), seed, tuple(naming.get("size_px", DEFAULT_SIZE_PX)))
    mapping = name_clusters(cl, desc, clf, overrides)
    return mapping, particle_shapes(cl, mapping)
