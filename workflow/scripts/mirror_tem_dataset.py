import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
from nanoforge.tem.resources import mirror_dataset  # noqa: E402

spec = snakemake.params.spec
name = snakemake.wildcards.dataset
mirror_dataset(
    name,
    spec.get("source") or name,
    snakemake.params.mirrors,
    snakemake.output[0],
    sha256=spec.get("sha256"),
    origin=spec.get("origin"),
)
