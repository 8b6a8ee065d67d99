import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
import json  # noqa: E402
from pathlib import Path  # noqa: E402

from nanoforge.tem.detector import plot_training  # noqa: E402

summary = json.loads(Path(snakemake.input.summary).read_text())
plot_training(snakemake.input.metrics, snakemake.output[0], summary)
