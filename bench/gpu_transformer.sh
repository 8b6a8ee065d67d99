#!/usr/bin/env bash
# The synthesis transformer at the paper's size (config.gpu.yaml: d 256, 8 layers, 4 heads,
# 5 seeds trained together, epochs chosen on the inner split of the training rows) under
# protocols P, G (standard partition, then G_PARTITIONS other partitions) and U, on one CUDA
# GPU. Sized to finish in under 8 minutes on one H200 (LIMIT caps the evaluations).
#
#   OUT=/path/to/folder bash bench/gpu_transformer.sh
#
# Needs, in the repository root: the project's Python environment (`make setup`; PYTHON
# overrides .venv/bin/python), the feature table results/features/recipe_features.parquet
# with feature block tok (`snakemake results/features/recipe_features.parquet`, or copied
# from a machine that made it) and resources/recipes/unimol_descriptors.parquet.
# Writes to $OUT: summary.txt (comparison table, U per product, G partitions, interval
# coverage, seconds per split, grouped permutation importance and CLS attention per role),
# metrics.csv, predictions.parquet, log.txt, parity_P.png, parity_G.png, parity_U.png and
# importance.png.
set -uo pipefail
: "${OUT:?set OUT to the folder for the results}"
PY=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-size_tf_chem}
LIMIT=${LIMIT:-420}  # seconds the evaluations may take, all protocols running at once
G_PARTITIONS=${G_PARTITIONS:-8}
export FEATURES=${FEATURES:-results/features/recipe_features.parquet}
export PYTHONPATH=$PWD/workflow${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$OUT"
WORK=$(mktemp -d)

"$PY" - <<'PY' || exit 1
import os, polars as pl, torch
if not torch.cuda.is_available():
    raise SystemExit("no CUDA GPU visible to torch: this benchmark is for a GPU machine")
names = pl.read_parquet_schema(os.environ["FEATURES"]).names()
if not any(n.startswith("tok__") for n in names):
    raise SystemExit(f"{os.environ['FEATURES']} has no feature block tok: rerun rule featurize_recipes")
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY

bench() {  # protocol, extra options
  local p=$1; shift
  timeout "$LIMIT" "$PY" -m nanoforge.bench synthesis --evaluate --config config.yaml config.gpu.yaml \
    --features "$FEATURES" --runs $RUNS --protocols "$p" --jobs 1 --threads 4 --families 0 \
    --save "$WORK/results" "$@" >"$WORK/$p.txt" 2>"$WORK/$p.log"
  echo "protocol $p: exit $? after $SECONDS s" >>"$WORK/status.txt"
}
SECONDS=0
bench P & bench G --g-partitions "$G_PARTITIONS" & bench U &
# what drives size: grouped permutation importance and CLS attention per role (P split 0)
timeout "$LIMIT" "$PY" -m nanoforge.bench importance --config config.yaml config.gpu.yaml --features "$FEATURES" \
  --runs size_et_chem $RUNS --threads 4 --figure "$OUT/importance.png" >"$WORK/importance.txt" 2>&1 &
wait

{
  cat "$WORK/status.txt"
  echo
  "$PY" -m nanoforge.bench synthesis --results "$WORK/results" --families 5
  for p in P G U; do echo; echo "== protocol $p (evaluation output)"; cat "$WORK/$p.txt"; done
  echo; echo "== grouped permutation importance (P split 0)"; cat "$WORK/importance.txt"
  echo
  echo "== G partitions as they finished (MAE nm, seconds)"
  grep -h " partition " "$WORK/G.log"
  echo
  echo "== seconds per split (log)"
  grep -h " split " "$WORK"/[PGU].log | sed 's/, params .*, / ... /'
} >"$OUT/summary.txt" 2>&1
cat "$WORK"/[PGU].log >"$OUT/log.txt"

"$PY" - "$WORK/results" "$OUT" <<'PY'
import sys
from pathlib import Path
import polars as pl
from nanoforge.synthesis.plots import parity_plot
root, out = Path(sys.argv[1]), Path(sys.argv[2])
metrics = [pl.read_csv(p, schema_overrides={"fold": pl.String, "params": pl.String}) for p in sorted(root.glob("*/*/metrics.csv"))]
preds = [pl.read_parquet(p) for p in sorted(root.glob("*/*/predictions.parquet"))]
if metrics:
    pl.concat(metrics, how="diagonal_relaxed").write_csv(out / "metrics.csv")
    pl.concat(preds, how="diagonal_relaxed").write_parquet(out / "predictions.parquet")
for p in sorted(root.glob("*/*/predictions.parquet")):
    protocol, run = p.parent.parent.name, p.parent.name
    parity_plot(pl.read_parquet(p), out / f"parity_{protocol}.png", title=f"{run} ({protocol}, GPU)")
PY
cat "$OUT/summary.txt"
