"""Shape stage: per-particle shape descriptors, UMAP + HDBSCAN shape clusters, names for the
clusters, and per-sample labels (size, size spread, dominant shape) merged into the recipes.

Modules:

- :mod:`nanoforge.shapes.descriptors`: rotation-, scale- and position-invariant descriptors
  of every particle mask, streamed over ``particles.parquet`` in batches.
- :mod:`nanoforge.shapes.cluster`: standardise -> UMAP -> HDBSCAN, fitted on a stratified
  sample and applied to every particle (UMAP ``transform``, HDBSCAN ``approximate_predict``).
- :mod:`nanoforge.shapes.naming`: a small classifier trained on synthetic particles of known
  shape names each cluster; the mapping is written out and can be overridden in config.
- :mod:`nanoforge.shapes.labels`: per-sample labels and their merge into the recipe table.
- :mod:`nanoforge.shapes.synthetic`: particle tables of known shape (tests, benchmark).
- :mod:`nanoforge.shapes.figures`: embedding, gallery and cluster-share figures.
"""
