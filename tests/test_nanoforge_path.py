"""Scripts, the Snakefile and the tests import this checkout's library, never another copy of
`nanoforge` that PYTHONPATH, an editable install of another checkout or an earlier import
put first (workflow/scripts/_nanoforge_path.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIB = REPO / "workflow"
SCRIPTS = LIB / "scripts"
WHICH = "import _nanoforge_path\nimport nanoforge.config\nprint(nanoforge.config.__file__)"


@pytest.fixture
def fake_checkout(tmp_path) -> Path:
    """Another checkout's library folder: a `nanoforge` package that says where it is."""
    lib = tmp_path / "other_checkout" / "workflow"
    (lib / "nanoforge").mkdir(parents=True)
    (lib / "nanoforge" / "__init__.py").write_text("WHERE = 'other checkout'\n")
    (lib / "nanoforge" / "config.py").write_text("WHERE = 'other checkout'\n")
    return lib


def run_python(code: str, pythonpath: list[Path], site_dir: Path | None = None) -> str:
    """Run ``code`` in a fresh interpreter as a Snakemake script runs: the script folder is
    appended to sys.path (the preamble's sys.path.extend), optionally after a site folder
    whose .pth file adds another checkout, as `pip install -e` does."""
    prelude = ["import sys, site"]
    if site_dir is not None:
        prelude.append(f"site.addsitedir({str(site_dir)!r})")
    prelude.append(f"sys.path.extend([{str(SCRIPTS)!r}])")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join(map(str, pythonpath))
    proc = subprocess.run([sys.executable, "-c", "\n".join(prelude) + "\n" + code],
                          capture_output=True, text=True, env=env, timeout=60, cwd=REPO.parent)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_checkout_wins_over_an_earlier_path_entry(fake_checkout):
    # The other checkout comes first and this one is on sys.path too, further down: the old
    # helper saw this checkout on sys.path and left the order alone.
    out = run_python(WHICH, [fake_checkout, LIB])
    assert Path(out) == LIB / "nanoforge" / "config.py"


def test_checkout_wins_over_an_editable_install(fake_checkout, tmp_path):
    site_dir = tmp_path / "site-packages"
    site_dir.mkdir()
    (site_dir / "__editable__.nanoforge-0.1.0.pth").write_text(f"{fake_checkout}\n")
    # The .pth file of the other checkout's editable install puts it on sys.path before this
    # checkout's folder, which comes later (here appended; PYTHONPATH is empty).
    out = run_python(f"import sys\nsys.path.append({str(LIB)!r})\n" + WHICH, [], site_dir)
    assert Path(out) == LIB / "nanoforge" / "config.py"


def test_a_library_imported_before_is_replaced(fake_checkout):
    code = "import nanoforge\nassert nanoforge.WHERE == 'other checkout'\n" + WHICH
    out = run_python(code, [fake_checkout])
    assert Path(out) == LIB / "nanoforge" / "config.py"


def test_the_tests_import_this_checkout():
    # tests/conftest.py runs the same helper before any test module imports nanoforge.
    import nanoforge

    assert Path(nanoforge.__file__).resolve().parent == LIB / "nanoforge"
