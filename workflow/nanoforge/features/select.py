"""The fitted part of the featurization, used as the first step of every model pipeline so
that it only ever sees training rows.

``FeatureFilter`` keeps the feature columns of a feature table that carry information in
the rows it is fitted on: a per-chemical column (``bag__*``, ``frac__*``) needs at least
``min_count`` training recipes that use the chemical, every other column a non-constant
value; optionally it standardises the kept columns (mean and standard deviation of the
training rows, NaN left as NaN), for models that need scaled inputs. Trees do not.

``blocks`` (optional) keeps only the columns of those feature blocks (``<block>__*``), so that
a model's inner split can choose between feature sets (``feature_blocks`` in the synthesis
models' grid); columns the harness adds itself (``input__*``, e.g. the measured size) are
always kept.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

PER_CHEMICAL_BLOCKS = ("bag", "frac")
HARNESS_BLOCK = "input"


def check_blocks(blocks, available) -> None:
    """``blocks`` (a chosen subset of feature blocks) must be None or a non-empty list of
    blocks among ``available``; ValueError otherwise, naming the offending value or blocks."""
    if blocks is None:
        return
    if not isinstance(blocks, (list, tuple)) or not blocks:
        raise ValueError(f"feature_blocks must be null or a list of blocks, not {blocks!r} "
                         f"(in a grid each value is one candidate: feature_blocks: [null, [cond, amt]])")
    absent = sorted(set(blocks) - set(available))
    if absent:
        raise ValueError(f"feature block(s) {absent} are not among the blocks {sorted(set(available))}")


class FeatureFilter(BaseEstimator, TransformerMixin):
    """Column filter (and optional scaler) fitted on training rows only.

    ``feature_names``: the names of the columns of X (``<block>__<name>``).
    """

    def __init__(self, feature_names=(), min_count: int = 3, scale: bool = False, blocks=None):
        self.feature_names = feature_names
        self.min_count = min_count
        self.scale = scale
        self.blocks = blocks

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float)
        names = list(self.feature_names)
        if len(names) != X.shape[1]:
            raise ValueError(f"FeatureFilter: {len(names)} feature names for {X.shape[1]} columns")
        block_of = [name.split("__", 1)[0] for name in names]
        check_blocks(self.blocks, block_of)
        chosen = None if self.blocks is None else {*self.blocks, HARNESS_BLOCK}
        keep = np.zeros(X.shape[1], dtype=bool)
        for j, name in enumerate(names):
            if chosen is not None and block_of[j] not in chosen:
                continue
            col = X[:, j]
            finite = col[np.isfinite(col)]
            if block_of[j] in PER_CHEMICAL_BLOCKS:
                keep[j] = int((np.nan_to_num(col) != 0).sum()) >= self.min_count
            else:
                keep[j] = finite.size > 0 and (finite.size < col.size or finite.min() != finite.max())
        self.keep_ = keep
        self.n_rows_fitted_ = X.shape[0]
        if self.scale:
            kept = X[:, keep]
            self.mean_ = np.nanmean(np.where(np.isfinite(kept), kept, np.nan), axis=0)
            std = np.nanstd(np.where(np.isfinite(kept), kept, np.nan), axis=0)
            self.scale_ = np.where(np.isfinite(std) & (std > 0), std, 1.0)
            self.mean_ = np.where(np.isfinite(self.mean_), self.mean_, 0.0)
        return self

    def transform(self, X):
        X = np.asarray(X, dtype=float)[:, self.keep_]
        if self.scale:
            X = (X - self.mean_) / self.scale_
        return X

    def get_feature_names_out(self, input_features=None):
        return np.asarray(list(self.feature_names), dtype=object)[self.keep_]
