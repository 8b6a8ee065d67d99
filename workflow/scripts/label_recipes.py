import sys

sys.stderr = open(snakemake.log[0], "w")

import json  # noqa: E402

import _nanoforge_path  # noqa: E402,F401

from nanoforge.shapes.labels import label_recipes  # noqa: E402

summary = label_recipes(snakemake.input.recipes, snakemake.input.tem, snakemake.output[0],
                        snakemake.params.precedence)
print(json.dumps(summary, indent=1), file=sys.stderr)
