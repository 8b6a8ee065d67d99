"""Put the workflow's library folder on sys.path, so `import nanoforge` works in any env
(Snakemake puts only the script's own folder on sys.path)."""

import sys
from pathlib import Path

_lib = str(Path(__file__).resolve().parents[1])
if _lib not in sys.path:
    sys.path.insert(0, _lib)
