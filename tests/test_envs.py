"""Every rule names a conda env file; every package a rule's script imports (directly or
through nanoforge) is in that env file; every env-file package is pinned, at the same
version, in requirements.txt (the one pip venv that runs everything here)."""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RULES = sorted((REPO / "workflow" / "rules").glob("*.smk"))
LIB = REPO / "workflow" / "nanoforge"

# conda-forge name -> pip distribution name, where they differ.
CONDA_TO_PIP = {
    "pytorch": "torch",
    "py-opencv": "opencv-python-headless",
    "opencv": "opencv-python-headless",
    "matplotlib-base": "matplotlib",
    "snakemake-minimal": "snakemake",
}
NOT_PACKAGES = {"python", "pip"}
# Installed by `make setup` through workflow/setup/install_detectron2.sh (a patched sdist,
# see docs/architecture.md, "Detectron2"), not from requirements.txt.
INSTALLED_BY_SETUP = {"detectron2"}
# Programs, not Python packages: conda-forge provides them in an env file; the pip venv
# gets them from the system (`make setup`: workflow/setup/install_tesseract.sh, apt tesseract-ocr).
SYSTEM_PROGRAMS = {"tesseract"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==([^\s;]+)", line)
        assert m, f"requirements.txt: {line!r} is not pinned with =="
        pins[norm(m.group(1))] = m.group(3)
    return pins


def env_packages(path: Path) -> dict[str, str | None]:
    spec = yaml.safe_load(path.read_text())
    out = {}
    for dep in spec.get("dependencies", []):
        if isinstance(dep, dict):
            for pip_dep in dep.get("pip", []):
                name, _, version = pip_dep.partition("==")
                out[norm(name)] = version or None
            continue
        name, _, version = dep.partition("=")
        name = norm(CONDA_TO_PIP.get(name, name))
        if name not in NOT_PACKAGES:
            out[name] = version.lstrip("=") or None
    return out


def rule_blocks():
    """(rule name, conda env path, script path) for each rule with a script."""
    for smk in RULES:
        text = smk.read_text()
        for block in re.split(r"\n(?=rule |checkpoint )", text):
            m = re.match(r"(?:rule|checkpoint) (\w+):", block.strip())
            if not m:
                continue
            conda = re.search(r"\n\s+conda:\s*\n\s+\"([^\"]+)\"", block)
            script = re.search(r"\n\s+script:\s*\n\s+\"([^\"]+)\"", block)
            yield smk, m.group(1), conda and conda.group(1), script and script.group(1)


def imported_modules(path: Path, seen: set[Path] | None = None) -> set[str]:
    """Top-level modules imported by a file, following imports of nanoforge itself."""
    seen = seen if seen is not None else set()
    if path in seen:
        return set()
    seen.add(path)
    mods = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            base = path.parent
            for _ in range(node.level - 1):
                base = base.parent
            rel = (node.module or "").split(".") if node.module else []
            names = ["nanoforge." + ".".join(base.relative_to(LIB).parts + tuple(rel) + (a.name,)).strip(".")
                     for a in node.names]
        for name in names:
            top = name.split(".")[0]
            if top == "nanoforge":
                parts = name.split(".")[1:]
                for k in range(len(parts), -1, -1):
                    cand = LIB.joinpath(*parts[:k])
                    for f in (cand.with_suffix(".py"), cand / "__init__.py"):
                        if f.is_file():
                            mods |= imported_modules(f, seen)
                            break
                    else:
                        continue
                    break
            else:
                mods.add(top)
    return mods


@functools.lru_cache(maxsize=1)
def _module_to_distributions() -> dict[str, list[str]]:
    return md.packages_distributions()


def distributions_of(module: str) -> set[str]:
    return {norm(d) for d in _module_to_distributions().get(module, [])}


LOCAL = {"_nanoforge_path", "snakemake"}


def test_every_rule_has_an_env_file_that_exists():
    blocks = list(rule_blocks())
    assert blocks, "no rules found"
    for smk, rule, conda, script in blocks:
        if script is None:
            continue
        assert conda, f"{smk.name}: rule {rule} has no conda: env file"
        env = (smk.parent / conda).resolve()
        assert env.is_file(), f"{smk.name}: rule {rule}: env file {conda} not found"


@pytest.mark.parametrize("smk,rule,conda,script", [b for b in rule_blocks() if b[3]],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_script_imports_are_in_its_env_file(smk, rule, conda, script):
    env = env_packages((smk.parent / conda).resolve())
    missing = []
    for mod in sorted(imported_modules((smk.parent / script).resolve())):
        if mod in sys.stdlib_module_names or mod in LOCAL:
            continue
        dists = distributions_of(mod)
        assert dists, f"rule {rule}: cannot tell which package provides module {mod!r}"
        if not dists & set(env):
            missing.append(f"{mod} ({'/'.join(sorted(dists))})")
    assert not missing, f"rule {rule}: {conda} lacks packages imported by {script}: {missing}"


def test_env_files_are_pinned_and_agree_with_requirements():
    pins = requirements()
    problems = []
    for env_file in sorted((REPO / "envs").glob("*.yaml")):
        for name, version in env_packages(env_file).items():
            if name in INSTALLED_BY_SETUP or name in SYSTEM_PROGRAMS and version is not None:
                continue
            if version is None:
                problems.append(f"{env_file.name}: {name} has no version pin")
            elif name not in pins:
                problems.append(f"{env_file.name}: {name} is missing from requirements.txt")
            elif pins[name] != version:
                problems.append(f"{env_file.name}: {name}={version} but requirements.txt pins {pins[name]}")
    assert not problems, "\n".join(problems)


def test_detector_of_missing_package_works(tmp_path):
    """The import check itself can fail: a script importing a package absent from its env."""
    script = tmp_path / "s.py"
    script.write_text("import polars\nimport sklearn\n")
    mods = imported_modules(script)
    assert {"polars", "sklearn"} <= mods
    assert "scikit-learn" in distributions_of("sklearn")
