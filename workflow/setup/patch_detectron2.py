"""Patch the unpacked PyPI sdist pb1-detectron2==0.6 so that it installs and runs here.

Usage: python patch_detectron2.py SDIST_DIR

The sdist is the upstream Detectron2 v0.6 Python code without its C++/CUDA sources. The
fixes (see docs/architecture.md, "Detectron2"):

  a. setup.py builds no C extension; ``detectron2/_C.py`` stands in for it and raises a
     clear error when one of the few operators that need it is used (rotated boxes,
     deformable convolution, the fast COCO evaluator). Mask R-CNN/Faster R-CNN train and
     infer without it.
  b. ``model_zoo/model_zoo.py`` no longer uses ``pkg_resources`` (gone in setuptools >= 81).
  c. ``Image.LINEAR`` -> ``Image.BILINEAR`` (removed in Pillow 10).
  d. ``np.bool/np.int/np.float/np.str/np.object`` -> the builtins (removed in numpy 1.24).
  e. The model-zoo YAML/py configs are shipped (setup.py's glob found none in the sdist).
  f. The distribution is named ``detectron2`` (as upstream and conda-forge name it), not
     ``pb1-detectron2``, so ``pip uninstall detectron2`` and environment checks find it.
  g. install_requires lists the run-time dependencies actually needed (the original pins
     black==21.4b2, iopath<0.1.10, tensorboard, hydra-core, ... for optional features).

Every edit checks that its target text is present, so a different sdist fails loudly
instead of installing half-patched. Writes ``detectron2/_nanoforge_patch.py`` with
PATCH_LEVEL, which install_detectron2.sh checks to skip a reinstall.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PATCH_LEVEL = 2

C_STUB = '''"""Stand-in for Detectron2's compiled extension (nanoforge install, see
workflow/setup/install_detectron2.sh). This build has no C++/CUDA operators: rotated boxes,
deformable convolution and the fast COCO evaluator are unavailable. Mask R-CNN and Faster
R-CNN with axis-aligned boxes do not need them; evaluate with pycocotools
(COCOEvaluator(use_fast_impl=False))."""

_MESSAGE = (
    "detectron2 was installed without its C++/CUDA extension (the PyPI sdist "
    "pb1-detectron2==0.6 ships no C++ sources), so detectron2._C.{name} is unavailable. "
    "Rotated boxes, deformable convolution and the fast COCO evaluator need it: use "
    "axis-aligned boxes and COCOEvaluator(use_fast_impl=False), or install upstream "
    "detectron2 from its repository with a compiler."
)


class ExtensionUnavailableError(RuntimeError):
    pass


def get_compiler_version():
    return "not built (pure-Python install)"


def get_cuda_version():
    return "not built (pure-Python install)"


def has_cuda():
    return False


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise ExtensionUnavailableError(_MESSAGE.format(name=name))
'''

INSTALL_REQUIRES = """[
        "Pillow>=7.1",
        "matplotlib",
        "pycocotools>=2.0.2",
        "termcolor>=1.1",
        "yacs>=0.1.8",
        "tabulate",
        "cloudpickle",
        "tqdm>4.29.0",
        "fvcore>=0.1.5,<0.1.6",
        "iopath>=0.1.7",
        "omegaconf>=2.1",
    ]"""

NP_ALIAS = re.compile(r"\bnp\.(bool|int|float|str|object)\b(?![_\d])")


class PatchError(RuntimeError):
    pass


def _replace(path: Path, old: str, new: str, count: int | None = None) -> None:
    text = path.read_text()
    found = text.count(old)
    if found == 0:
        raise PatchError(f"{path}: expected text not found (is this pb1-detectron2 0.6?): {old[:80]!r}")
    if count is not None and found != count:
        raise PatchError(f"{path}: expected {count} occurrence(s) of {old[:80]!r}, found {found}")
    path.write_text(text.replace(old, new))


def _replace_regex(path: Path, pattern: str, new: str, flags: int = 0) -> None:
    text = path.read_text()
    result, n = re.subn(pattern, new, text, flags=flags)
    if n == 0:
        raise PatchError(f"{path}: pattern not found (is this pb1-detectron2 0.6?): {pattern[:80]!r}")
    path.write_text(result)


def patch(root: Path) -> None:
    root = Path(root)
    pkg = root / "detectron2"
    setup_py = root / "setup.py"
    if not setup_py.is_file() or not (pkg / "__init__.py").is_file():
        raise PatchError(f"{root} does not look like the unpacked pb1-detectron2 sdist")
    if 'version_line = ' not in setup_py.read_text() or '__version__ = "0.6"' not in (pkg / "__init__.py").read_text():
        raise PatchError(f"{root}: not detectron2 version 0.6")

    # (a) no C extension; a stand-in module with clear errors.
    _replace(setup_py, "    ext_modules=get_extensions(),\n", "", count=1)
    _replace(setup_py, '    cmdclass={"build_ext": torch.utils.cpp_extension.BuildExtension},\n', "", count=1)
    (pkg / "_C.py").write_text(C_STUB)

    # (e) ship the model-zoo configs, which the sdist holds in detectron2/model_zoo/configs.
    if not list((pkg / "model_zoo" / "configs").rglob("*.yaml")):
        raise PatchError(f"{pkg / 'model_zoo' / 'configs'}: no model-zoo YAML configs in the sdist")
    _replace(
        setup_py,
        'package_data={"detectron2.model_zoo": get_model_zoo_configs()},',
        'package_data={"detectron2.model_zoo": ["configs/*.yaml", "configs/**/*.yaml", "configs/**/*.py"]},',
        count=1,
    )
    # (f) the upstream distribution name.
    _replace(setup_py, 'name="pb1-detectron2",', 'name="detectron2",', count=1)
    # (g) run-time dependencies that exist for this Python/numpy/Pillow.
    _replace_regex(setup_py, r"install_requires=\[.*?\n    \],", "install_requires=" + INSTALL_REQUIRES + ",", flags=re.S)

    # (b) pkg_resources -> path next to the module.
    mz = pkg / "model_zoo" / "model_zoo.py"
    _replace(mz, "import pkg_resources\n", "", count=1)
    _replace_regex(
        mz,
        r"cfg_file = pkg_resources\.resource_filename\(\s*\"detectron2\.model_zoo\", os\.path\.join\(\"configs\", config_path\)\s*\)",
        'cfg_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", config_path)',
    )

    # (c) Pillow >= 10.
    _replace(pkg / "data" / "transforms" / "transform.py", "Image.LINEAR", "Image.BILINEAR")

    # (d) numpy >= 1.24: the deprecated aliases were the builtins.
    changed = 0
    for py in sorted(pkg.rglob("*.py")):
        text = py.read_text()
        new = NP_ALIAS.sub(lambda m: m.group(1), text)
        if new != text:
            py.write_text(new)
            changed += 1
    if changed == 0:
        raise PatchError(f"{pkg}: no numpy aliases found (is this pb1-detectron2 0.6?)")
    for py in sorted(pkg.rglob("*.py")):
        if "pkg_resources" in py.read_text() or "Image.LINEAR" in py.read_text():
            raise PatchError(f"{py}: still uses pkg_resources or Image.LINEAR after patching")

    (pkg / "_nanoforge_patch.py").write_text(
        '"""Marker written by nanoforge workflow/setup/patch_detectron2.py."""\n'
        f"PATCH_LEVEL = {PATCH_LEVEL}\n"
        'SDIST = "pb1-detectron2-0.6.tar.gz"\n'
    )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: patch_detectron2.py SDIST_DIR", file=sys.stderr)
        return 2
    try:
        patch(Path(argv[0]))
    except PatchError as exc:
        print(f"error: patching detectron2 failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
