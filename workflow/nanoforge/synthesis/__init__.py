"""Synthesis models and their evaluation harness.

- ``protocols``: protocols P (the paper's folds), G (recipe families held out) and U (one
  product held out), and the inner split used for model selection;
- ``models``: the baselines (random forest, extra trees, LightGBM, their mean) built from
  config, each a pipeline whose column filter is fitted on training rows only;
- ``harness``: one run cross-validated under one protocol -> out-of-fold predictions and
  per-split metrics (:func:`~nanoforge.synthesis.harness.cross_validate_run`);
- ``metrics``, ``plots``, ``compare``: metrics as the paper reports them, parity plot and
  confusion matrix, the comparison table with the published numbers;
- ``runs``, ``stage``: the config's runs and the file-to-file steps the rules call.
"""
