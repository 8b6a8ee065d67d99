"""Make `import nanoforge` load this checkout's library (the folder `workflow/` beside this
scripts folder), whatever else is on sys.path.

Snakemake puts only the script's own folder on sys.path. A virtual environment may also hold
an editable install of another checkout, or PYTHONPATH may name one: importing this module
puts this checkout's `workflow/` first on sys.path (moving it there if it is already further
down) and forgets a `nanoforge` already imported from anywhere else, so that the next
`import nanoforge` reads this checkout's code. The Snakefile and the tests use it too.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

LIB = Path(__file__).resolve().parents[1]


def _resolved(entry: str) -> Path | None:
    try:
        return Path(entry or ".").resolve()
    except (OSError, RuntimeError):
        return None


def _module_dirs(module) -> list[Path]:
    """The folders a module was loaded from (a package's __path__, else its file's folder)."""
    paths = list(getattr(module, "__path__", None) or [])
    if not paths and getattr(module, "__file__", None):
        paths = [str(Path(module.__file__).parent)]
    return [Path(p).resolve() for p in paths]


def use_checkout_library(lib: Path = LIB) -> Path:
    """Put ``lib`` first on sys.path and drop a `nanoforge` imported from elsewhere; returns ``lib``."""
    lib = Path(lib).resolve()
    sys.path[:] = [p for p in sys.path if _resolved(p) != lib]
    sys.path.insert(0, str(lib))
    loaded = sys.modules.get("nanoforge")
    if loaded is not None and not any(d.is_relative_to(lib) for d in _module_dirs(loaded)):
        stale = ", ".join(str(d) for d in _module_dirs(loaded)) or "an unknown place"
        print(f"nanoforge: dropping the library already imported from {stale}; using {lib / 'nanoforge'}",
              file=sys.stderr)
        for name in [n for n in sys.modules if n == "nanoforge" or n.startswith("nanoforge.")]:
            del sys.modules[name]
    importlib.invalidate_caches()
    return lib


use_checkout_library()
