#!/usr/bin/env bash
# Install the Tesseract OCR program (Debian package tesseract-ocr, with its English model),
# which nanoforge.tem.scalebar calls through pytesseract to read scale-bar labels.
# Idempotent: does nothing when `tesseract` is on PATH. Needs root and apt-get otherwise
# (apt-get update only when apt does not know the package or the install fails).
set -euo pipefail

log() { echo "[install_tesseract] $*"; }

if command -v tesseract >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "[install_tesseract] error: the tesseract program is missing; install it as root with" \
         "'apt-get install -y tesseract-ocr' (Debian/Ubuntu) or your system's package manager" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
candidate=$(apt-cache policy tesseract-ocr 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
    log "apt does not know tesseract-ocr yet: apt-get update"
    apt-get update -q
fi
log "installing tesseract-ocr with apt-get"
if ! apt-get install -y -q --no-install-recommends tesseract-ocr tesseract-ocr-eng; then
    log "install failed; retrying after apt-get update"
    apt-get update -q
    apt-get install -y -q --no-install-recommends tesseract-ocr tesseract-ocr-eng
fi
command -v tesseract >/dev/null 2>&1 || { echo "[install_tesseract] error: tesseract still missing" >&2; exit 1; }
log "$(tesseract --version 2>&1 | head -1)"
