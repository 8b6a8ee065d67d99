import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
from nanoforge.predict import predict_file, summary  # noqa: E402

pred = predict_file(snakemake.input.models, snakemake.input.recipes, snakemake.output[0], data=snakemake.input.data)
print(summary(pred), file=sys.stderr)
