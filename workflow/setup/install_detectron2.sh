#!/usr/bin/env bash
# Install Detectron2 (v0.6, pure Python) into the Python environment given as $1.
#
# Detectron2 has no official PyPI release. The PyPI sdist pb1-detectron2==0.6 is upstream
# v0.6 without its C++ sources; this script downloads it (pinned by sha256), patches it
# (workflow/setup/patch_detectron2.py: no C extension, no pkg_resources, Pillow >= 10,
# numpy >= 1.24, model-zoo configs shipped) and installs it with --no-build-isolation
# --no-deps (its dependencies come from requirements.txt). See docs/architecture.md,
# "Detectron2".
#
# Idempotent: does nothing when detectron2 0.6 with the current patch level is importable.
# Environment:
#   NANOFORGE_D2_SDIST      path to a local copy of pb1-detectron2-0.6.tar.gz (offline use)
#   NANOFORGE_D2_SDIST_URL  where to download it from (default: PyPI's file host)
#   NANOFORGE_CACHE         download cache folder (default: ~/.cache/nanoforge)
#   NANOFORGE_D2_FORCE=1    reinstall even if the right version is present
set -euo pipefail

PY=${1:-python}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PATCHER="$HERE/patch_detectron2.py"
SDIST_NAME=pb1-detectron2-0.6.tar.gz
SDIST_SHA256=5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29
SDIST_URL=${NANOFORGE_D2_SDIST_URL:-https://files.pythonhosted.org/packages/60/26/48f5bbb7ee492696a21da23303daeecdfe3942c498a70d34108acf63b2bd/$SDIST_NAME}
CACHE=${NANOFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nanoforge}

die() { echo "install_detectron2: error: $*" >&2; exit 1; }
say() { echo "install_detectron2: $*" >&2; }

command -v "$PY" >/dev/null 2>&1 || [ -x "$PY" ] || die "Python interpreter '$PY' not found (usage: $0 PATH/TO/python)"
[ -f "$PATCHER" ] || die "missing $PATCHER"
PATCH_LEVEL=$(sed -n 's/^PATCH_LEVEL = \([0-9][0-9]*\)$/\1/p' "$PATCHER")
[ -n "$PATCH_LEVEL" ] || die "no PATCH_LEVEL in $PATCHER"

CHECK="import detectron2, detectron2._nanoforge_patch as p; assert detectron2.__version__ == '0.6' and p.PATCH_LEVEL == $PATCH_LEVEL"
if [ "${NANOFORGE_D2_FORCE:-0}" != 1 ] && "$PY" -c "$CHECK" >/dev/null 2>&1; then
    say "detectron2 0.6 (patch level $PATCH_LEVEL) already installed; nothing to do"
    exit 0
fi

"$PY" -c "import torch, torchvision" 2>/dev/null \
    || die "torch and torchvision must be installed first (pip install -r requirements.txt)"
"$PY" -m pip --version >/dev/null 2>&1 || die "'$PY -m pip' does not work"

sha_of() { "$PY" -c "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())" "$1"; }

# 1. The sdist: a given local copy, the cache, or a download (verified by sha256 each time).
if [ -n "${NANOFORGE_D2_SDIST:-}" ]; then
    SDIST=$NANOFORGE_D2_SDIST
    [ -f "$SDIST" ] || die "NANOFORGE_D2_SDIST=$SDIST does not exist"
else
    mkdir -p "$CACHE" || die "cannot create cache folder $CACHE (set NANOFORGE_CACHE)"
    SDIST=$CACHE/$SDIST_NAME
    if [ ! -f "$SDIST" ] || [ "$(sha_of "$SDIST")" != "$SDIST_SHA256" ]; then
        say "downloading $SDIST_URL"
        "$PY" - "$SDIST_URL" "$SDIST.part" <<'EOF' || die "download of $SDIST_URL failed (no network? set NANOFORGE_D2_SDIST to a local copy)"
import shutil, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=120) as r, open(sys.argv[2], "wb") as f:
    shutil.copyfileobj(r, f)
EOF
        mv "$SDIST.part" "$SDIST"
    fi
fi
GOT=$(sha_of "$SDIST")
[ "$GOT" = "$SDIST_SHA256" ] || die "$SDIST has sha256 $GOT, expected $SDIST_SHA256 (corrupt or wrong file; delete it and rerun)"

# 2. Unpack and patch in a temporary folder.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nanoforge-d2.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
tar -xzf "$SDIST" -C "$WORK" || die "cannot unpack $SDIST"
SRC=$WORK/pb1-detectron2-0.6
[ -d "$SRC" ] || die "$SDIST did not unpack to pb1-detectron2-0.6/"
"$PY" "$PATCHER" "$SRC" || die "patching failed (see above)"

# 3. Install; dependencies come from requirements.txt, so nothing else is downloaded.
# An earlier install under the sdist's own name would shadow this one.
if "$PY" -m pip show pb1-detectron2 >/dev/null 2>&1; then
    "$PY" -m pip uninstall -y pb1-detectron2 >/dev/null || die "cannot uninstall the earlier pb1-detectron2"
fi
say "installing patched detectron2 0.6 into $("$PY" -c 'import sys; print(sys.prefix)')"
"$PY" -m pip install --quiet --no-deps --no-build-isolation --no-cache-dir "$SRC" \
    || die "pip install of the patched sdist failed (see above)"

# 4. Check that it imports and finds its model-zoo configs.
PYTHONWARNINGS=ignore "$PY" - <<'EOF' || die "detectron2 installed but does not import; a dependency from requirements.txt is missing (see the error above)"
import detectron2
from detectron2 import model_zoo
from detectron2.config import get_cfg
from detectron2.modeling import build_model  # noqa: F401
import detectron2._nanoforge_patch  # noqa: F401
cfg = get_cfg()
cfg.merge_from_file(model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"))
EOF
say "detectron2 0.6 installed (patch level $PATCH_LEVEL)"
