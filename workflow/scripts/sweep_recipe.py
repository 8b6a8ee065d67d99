import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
from nanoforge.predict import sweep_file, summary  # noqa: E402

pred = sweep_file(snakemake.input.models, snakemake.input.sweep, snakemake.output.table,
                  figure=snakemake.output.figure, data=snakemake.input.data)
print(summary(pred), file=sys.stderr)
