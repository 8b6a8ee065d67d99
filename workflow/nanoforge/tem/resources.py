"""TEM datasets as input folders: copied into ``resources/tem/<dataset>`` from a local mirror.

The recipe files come from ``download.mirrors`` (local folders searched before the network,
see :mod:`nanoforge.download`); the TEM datasets use the same list. A dataset's ``source``
is the name of a folder inside one of those mirrors (``emps_dev`` inside
``../shared/data/tem``); the first mirror that holds it is copied, and when the config gives
a ``sha256`` the copy is checked against it. That checksum is :func:`tree_sha256` of the
folder: the sha256 of the sorted lines ``<relative path>\\t<file sha256>``, so renaming,
adding, removing or changing any file changes it.

The public origins of the datasets (GitHub repositories, several research-use only) are in
the README; there is no single archive to download, so a dataset missing from every mirror
stops the run with an error saying where to put it.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

from nanoforge.download import sha256sum


class DatasetError(RuntimeError):
    """A dataset folder could not be found or did not match its checksum."""


def tree_sha256(folder: str | Path) -> str:
    folder = Path(folder)
    lines = []
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            lines.append(f"{p.relative_to(folder).as_posix()}\t{sha256sum(p)}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def find_in_mirrors(source: str, mirrors: list[str]) -> Path | None:
    for m in mirrors:
        cand = Path(m).expanduser() / source
        if cand.is_dir():
            return cand
    return None


def mirror_dataset(name: str, source: str, mirrors: list[str], dest: str | Path, sha256: str | None = None,
                   origin: str | None = None, log=sys.stderr) -> Path:
    """Copy dataset folder ``source`` from the first mirror holding it to ``dest``."""
    dest = Path(dest)
    found = find_in_mirrors(source, mirrors)
    if found is None:
        where = f" (public origin: {origin})" if origin else ""
        raise DatasetError(
            f"TEM dataset {name!r}: folder {source!r} not found in any of download.mirrors {mirrors}{where}. "
            f"Put the dataset folder into one of those mirrors, add a mirror that holds it, or copy it to {dest} "
            "yourself; then run the workflow again."
        )
    if sha256:
        got = tree_sha256(found)
        if got != sha256:
            raise DatasetError(
                f"TEM dataset {name!r}: checksum mismatch for {found}: got {got}, expected {sha256}. "
                "The folder differs from the one the config names (files changed, added or removed)."
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        shutil.copytree(found, tmp / "data", copy_function=shutil.copyfile)
        if dest.exists():
            shutil.rmtree(dest)
        (tmp / "data").rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"TEM dataset {name}: copied {found} -> {dest}", file=log)
    return dest
