"""Evaluation protocols: which recipes validate and which train, per split.

The *design* is the feature table of ``nanoforge.features.recipe`` (one row per recipe of the
training source, with ``paper_id``, ``source_row``, ``product``, ``family``, ``size_nm``,
``shape``, ``n_counted``). Validation rows of protocols P and G are the paper's "solid"
rows: ``n_counted >= validation.min_counted`` (300) and ``size_nm <= validation.max_size_nm``
(20). Training rows of a split are all other rows of the table with
``size_nm <= train_max_size_nm`` (20 for size, as in the paper's fine-tuning; no limit for
shape, as in its classifier), whatever their count, minus what the protocol excludes:

``P``  the paper's 5 folds: scikit-learn ``KFold(5, shuffle=True, random_state=0)`` over the
       solid rows in file order (``source_row``), or a given fold table (``paper_id``,
       ``fold``); train = every other row.
``G``  ``GroupKFold(n_splits)`` over the solid rows with groups = recipe family (product +
       sorted reactant names); training rows of a validation family are dropped. With
       ``protocols.G.partition_seed`` another partition of the families is drawn
       (``family_partition``): the same protocol, to measure how much the figure depends on
       which families happen to share a fold.
``U``  leave one product out: validation = all rows of the product with
       ``size_nm <= validation.max_size_nm`` (any count); train = the rows of other products.

Model selection uses an *inner* split of the training rows that mirrors the protocol
(``inner_split``): random solid rows for P, whole families for G, whole products for U; the
validation rows of the outer split are never part of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from sklearn.model_selection import GroupKFold, KFold

PROTOCOLS = ("P", "G", "U")


class ProtocolError(ValueError):
    """A protocol cannot be set up on this data (a missing product, too few rows...)."""


@dataclass
class Split:
    """One validation split: row positions into the design table."""

    name: str
    train: np.ndarray
    val: np.ndarray
    notes: list[str] = field(default_factory=list)


@dataclass
class ProtocolSettings:
    min_counted: int = 300
    max_size_nm: float = 20.0
    train_max_size_nm: float | None = 20.0
    n_splits: int = 5
    paper_seed: int = 0
    partition_seed: int | None = None  # G: None = GroupKFold, else family_partition(seed)
    products: tuple[str, ...] = ("PbSe", "Ag2S", "Ni", "Cs2NaBiCl6")
    fold_table: dict[int, int] | None = None  # paper_id -> fold (-1 = training only)

    @classmethod
    def from_config(cls, cfg: dict, task: str, fold_table=None) -> "ProtocolSettings":
        v = cfg["validation"]
        return cls(
            min_counted=int(v["min_counted"]),
            max_size_nm=float(v["max_size_nm"]),
            train_max_size_nm=cfg["train_max_size_nm"][task],
            n_splits=int(cfg["protocols"]["G"]["n_splits"]),
            paper_seed=int(cfg["protocols"]["P"]["kfold_seed"]),
            partition_seed=cfg["protocols"]["G"].get("partition_seed"),
            products=tuple(cfg["protocols"]["U"]["products"]),
            fold_table=fold_table,
        )


def solid_mask(design: pl.DataFrame, s: ProtocolSettings) -> np.ndarray:
    counted = design["n_counted"].fill_null(-1).to_numpy()
    size = design["size_nm"].to_numpy()
    return (counted >= s.min_counted) & (size <= s.max_size_nm)


def train_mask(design: pl.DataFrame, s: ProtocolSettings) -> np.ndarray:
    size = design["size_nm"].to_numpy()
    if s.train_max_size_nm is None:
        return np.ones(design.height, dtype=bool)
    return size <= s.train_max_size_nm


def paper_folds(design: pl.DataFrame, s: ProtocolSettings) -> np.ndarray:
    """Fold (0..4) of every solid row, -1 elsewhere: the fold table where one is given
    (checked against the solid rows), else KFold(5, shuffle, seed) over the solid rows in
    file order."""
    solid = solid_mask(design, s)
    if s.fold_table is not None:
        ids = design["paper_id"].to_list()
        folds = np.array([s.fold_table.get(i, -1) if i is not None else -1 for i in ids])
        val_ids = {i for i, f in s.fold_table.items() if f >= 0}
        present = {i for i in ids if i is not None}
        missing = sorted(val_ids - present)
        if missing:
            raise ProtocolError(
                f"fold table: {len(missing)} validation IDs are not in the recipe table "
                f"(e.g. {missing[:5]}); was the right source ingested?"
            )
        not_solid = [i for i, f, ok in zip(ids, folds, solid) if f >= 0 and not ok]
        if not_solid:
            raise ProtocolError(
                f"fold table: {len(not_solid)} validation rows are not solid "
                f"(n_counted >= {s.min_counted}, size <= {s.max_size_nm} nm), e.g. IDs {not_solid[:5]}"
            )
        return folds
    order = np.argsort(design["source_row"].to_numpy(), kind="stable")
    solid_rows = order[solid[order]]
    if solid_rows.size < 5:
        raise ProtocolError(f"only {solid_rows.size} solid rows: protocol P needs at least 5")
    folds = np.full(design.height, -1)
    kf = KFold(5, shuffle=True, random_state=s.paper_seed)
    for k, (_, val) in enumerate(kf.split(solid_rows)):
        folds[solid_rows[val]] = k
    return folds


def family_partition(groups, n_splits: int, seed: int) -> np.ndarray:
    """Fold (0..n_splits-1) of every element of ``groups``: the groups are taken in a random
    order (``seed``) and each goes whole to the fold that holds the fewest elements so far,
    so the folds are about as balanced as ``GroupKFold``'s (which takes the groups largest
    first, and so always gives the same partition)."""
    groups = np.asarray(groups)
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    load = np.zeros(n_splits, dtype=int)
    fold_of = np.empty(uniq.size, dtype=int)
    for g in np.random.default_rng(seed).permutation(uniq.size):
        fold_of[g] = int(np.argmin(load))
        load[fold_of[g]] += counts[g]
    return fold_of[inverse]


def _group_folds(groups, s: ProtocolSettings) -> list[np.ndarray]:
    """Validation positions (into ``groups``) of each G fold."""
    if s.partition_seed is None:
        return [v for _, v in GroupKFold(s.n_splits).split(groups, groups=groups)]
    folds = family_partition(groups, s.n_splits, s.partition_seed)
    return [np.flatnonzero(folds == k) for k in range(s.n_splits)]


def make_splits(design: pl.DataFrame, protocol: str, s: ProtocolSettings) -> list[Split]:
    """The validation splits of ``protocol`` on ``design``."""
    if protocol not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    eligible = train_mask(design, s)
    splits = []
    if protocol == "P":
        folds = paper_folds(design, s)
        for k in range(5):
            val = folds == k
            splits.append(Split(str(k), np.flatnonzero(eligible & ~val), np.flatnonzero(val)))
    elif protocol == "G":
        solid = np.flatnonzero(solid_mask(design, s))
        family = design["family"].to_numpy()
        n_groups = len(set(family[solid]))
        if n_groups < s.n_splits:
            raise ProtocolError(f"protocol G: {n_groups} families among the solid rows, fewer than {s.n_splits} splits")
        for k, v in enumerate(_group_folds(family[solid], s)):
            val_rows = solid[v]
            val = np.zeros(design.height, dtype=bool)
            val[val_rows] = True
            dropped = np.isin(family, np.unique(family[val_rows])) & ~val & eligible
            train = eligible & ~val & ~dropped
            splits.append(Split(str(k), np.flatnonzero(train), val_rows,
                                [f"{int(dropped.sum())} training rows of validation families dropped"]))
    else:
        product = design["product"].to_numpy()
        size = design["size_nm"].to_numpy()
        present = set(product)
        missing = [p for p in s.products if p not in present]
        if missing:
            raise ProtocolError(
                f"protocol U: product(s) {missing} are not in the recipe table "
                f"(config synthesis.protocols.U.products)"
            )
        for p in s.products:
            val = (product == p) & (size <= s.max_size_nm)
            if not val.any():
                raise ProtocolError(f"protocol U: product {p!r} has no row with size <= {s.max_size_nm} nm")
            train = eligible & (product != p)
            splits.append(Split(p, np.flatnonzero(train), np.flatnonzero(val)))
    for sp in splits:
        if np.intersect1d(sp.train, sp.val).size:
            raise AssertionError(f"protocol {protocol} split {sp.name}: a row is in train and validation")
        if sp.train.size == 0 or sp.val.size == 0:
            raise ProtocolError(f"protocol {protocol} split {sp.name}: empty training or validation set")
    return splits


def inner_split(design: pl.DataFrame, train: np.ndarray, protocol: str, s: ProtocolSettings,
                fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the training rows ``train`` into (inner_train, inner_val) the way ``protocol``
    splits the data: inner_val holds about ``fraction`` of the training rows that could be
    validation rows (solid rows for P and G, rows with size <= max for U), drawn as whole
    groups (rows for P, families for G, products for U); inner_train is every training row
    outside the drawn groups. Falls back to random rows when there are too few groups."""
    rng = np.random.default_rng(seed)
    if protocol == "U":
        candidates = design["size_nm"].to_numpy()[train] <= s.max_size_nm
        groups = design["product"].to_numpy()[train]
    else:
        candidates = solid_mask(design, s)[train]
        groups = (design["family"].to_numpy()[train] if protocol == "G"
                  else np.array([str(i) for i in train], dtype=object))
    if candidates.sum() < 10:
        candidates = np.ones(train.size, dtype=bool)
    target = max(1, int(round(fraction * candidates.sum())))
    cand_groups = np.unique(groups[candidates])
    if cand_groups.size < 3:
        groups = np.array([str(i) for i in train], dtype=object)
        cand_groups = np.unique(groups[candidates])
    chosen: set = set()
    n_val = 0
    for g in rng.permutation(cand_groups):
        if n_val >= target:
            break
        chosen.add(g)
        n_val += int((candidates & (groups == g)).sum())
    in_chosen = np.isin(groups, list(chosen))
    inner_val = train[in_chosen & candidates]
    inner_train = train[~in_chosen]
    if inner_train.size == 0 or inner_val.size == 0:
        raise ProtocolError("inner split: too few training rows to hold some out for model selection")
    return inner_train, inner_val
