"""Fetch public input files: from a local mirror folder if one has them, else over HTTP(S).

Every file is checked against its sha256 from the configuration; a mismatch or a failed
download leaves nothing behind at the destination and raises DownloadError with what to do.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path


class DownloadError(RuntimeError):
    """The file could not be fetched or did not match its checksum."""


def sha256sum(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _manual_hint(dest: Path, url: str, sha256: str) -> str:
    return (
        f"Download it by hand from {url} and save it as {dest} "
        f"(expected sha256 {sha256}), or add a folder holding it to download.mirrors "
        f"in the config; then run the workflow again."
    )


def _from_mirror(name: str, mirrors: list[str], log=sys.stderr) -> Path | None:
    for folder in mirrors:
        candidate = Path(folder).expanduser() / name
        if candidate.is_file():
            print(f"found {name} in mirror {folder}", file=log)
            return candidate
    return None


def _http_get(url: str, out: Path, timeout: float, log=sys.stderr) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "nanoforge"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(out, "wb") as fh:
        total = int(resp.headers.get("Content-Length") or 0)
        done = 0
        next_report = 0.0
        while block := resp.read(1 << 16):
            fh.write(block)
            done += len(block)
            if total and done / total >= next_report:
                print(f"  {done / 1e6:.1f} / {total / 1e6:.1f} MB", file=log)
                next_report += 0.25


def fetch(
    name: str,
    url: str,
    sha256: str,
    dest: str | Path,
    mirrors: list[str] | None = None,
    timeout: float = 60,
    log=sys.stderr,
) -> Path:
    """Place file ``name`` at ``dest``, verified against ``sha256``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        mirror = _from_mirror(name, mirrors or [], log=log)
        if mirror is not None:
            shutil.copyfile(mirror, tmp)
            origin = str(mirror)
        else:
            print(f"downloading {url}", file=log)
            try:
                _http_get(url, tmp, timeout, log=log)
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                raise DownloadError(
                    f"could not download {name} from {url}: {exc}. " + _manual_hint(dest, url, sha256)
                ) from exc
            origin = url
        got = sha256sum(tmp)
        if got != sha256:
            raise DownloadError(
                f"checksum mismatch for {name} from {origin}: got sha256 {got}, expected {sha256}. "
                "The file may be truncated or the source may have changed. "
                + _manual_hint(dest, url, sha256)
            )
        os.replace(tmp, dest)
        print(f"{name}: sha256 ok ({origin})", file=log)
        return dest
    finally:
        if tmp.exists():
            tmp.unlink()
