"""TEM stage: ingestion, synthetic images with ground truth, classical segmentation,
per-particle measurements and segmentation evaluation.

Layout of what this stage writes (paths relative to the working directory):

- ``results/tem/images.parquet`` / ``rejected_images.parquet``: ingested images
  (:mod:`nanoforge.tem.ingest`); the normalised 8-bit grayscale PNG of image ``<id>`` is
  ``results/tem/images/<id>.png`` (image ids are ``<dataset>/<file stem>``).
- ``results/tem/groundtruth/<dataset>.json``: ground-truth instances as COCO JSON
  (:mod:`nanoforge.tem.coco`); ``<dataset>_train.json`` / ``<dataset>_holdout.json`` hold the
  split by image given in config.
- ``results/tem/synthetic/<split>/``: synthetic images (``images/*.png``), their exact
  instances (``annotations.json``) and an ``images.parquet`` with the same contract
  (:mod:`nanoforge.tem.simulate`).
- ``results/segmentation/<method>/<image_set>.json``: instance predictions of a method on an
  image set (``tem`` = every ingested image, ``synthetic_holdout``), COCO JSON with a
  ``score`` per annotation.
- ``results/particles/<method>/particles.parquet``: one row per particle
  (:mod:`nanoforge.tem.measure`).
- ``results/segmentation/evaluation/``: metrics per method and dataset
  (:mod:`nanoforge.tem.segmentation_scores`).
"""
