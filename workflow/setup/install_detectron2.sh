#!/usr/bin/env bash
# Installs Detectron2 into the given Python environment (see issue "TEM ingestion ... weak
# labels" and ../shared/DESIGN.md for the facts). Placeholder until that stage lands: it
# does nothing yet.
set -euo pipefail
PY=${1:-python}
"$PY" -c "import detectron2" 2>/dev/null && exit 0
echo "detectron2: not installed yet (its install step comes with the TEM stage)" >&2
