import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
import polars as pl  # noqa: E402

from nanoforge.tem.scalebar import report_figure  # noqa: E402

cfg = {k: v for k, v in snakemake.params.scale_bar.items() if k != "read"}
cfg["plausible_nm_per_px"] = list(snakemake.params.plausible)
shown = report_figure(snakemake.output[0], pl.read_parquet(snakemake.input.images), cfg, seed=snakemake.params.seed)
print("shown: " + "; ".join(shown), file=sys.stderr)
