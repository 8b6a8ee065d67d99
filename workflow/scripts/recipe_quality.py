import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
from nanoforge.quality import write_summary  # noqa: E402

summary = write_summary(
    snakemake.input.recipes,
    snakemake.input.rejected,
    snakemake.output.table,
    snakemake.output.figure,
)
for source, category, value, count in summary.filter(summary["category"] == "rows").iter_rows():
    print(f"{source}: {count} rows {value}", file=sys.stderr)
