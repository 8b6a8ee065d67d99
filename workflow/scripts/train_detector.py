import sys

sys.stderr = open(snakemake.log[0], "w")
sys.stdout = sys.stderr  # Detectron2 logs to stdout

import _nanoforge_path  # noqa: E402,F401
import json  # noqa: E402
import logging  # noqa: E402
from pathlib import Path  # noqa: E402

from nanoforge.tem.detector import TrainSet, train_detector  # noqa: E402

logging.basicConfig(stream=sys.stderr, level=logging.INFO)
p = snakemake.params
sets = [
    TrainSet(f"synthetic_{split}", path, Path(path).parent / "images")
    for split, path in zip(p.synthetic_splits, snakemake.input.synthetic)
]
sets += [
    TrainSet(name, path, p.images_root, repeat=p.labelled_repeat)
    for name, path in zip(p.labelled, snakemake.input.labelled)
]
summary = train_detector(
    sets,
    Path(snakemake.output.model).parent,
    config_file=snakemake.input.config,
    overrides=dict(p.overrides),
    device=p.device,
    seed=p.seed,
    threads=snakemake.threads,
)
Path(snakemake.output.summary).write_text(json.dumps(summary, indent=2))
print(json.dumps(summary), file=sys.stderr)
