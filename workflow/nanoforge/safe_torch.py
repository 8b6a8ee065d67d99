"""Reading PyTorch checkpoints without running code from them (the torch half of
:mod:`nanoforge.safe_io`, kept apart so that the rules that only read YAML need no torch)."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

from nanoforge.safe_io import UnreadableFileError, UnsafeFileError

__all__ = ["load_torch_state"]


def load_torch_state(path: str | Path, map_location: Any = "cpu") -> dict:
    """A checkpoint written by ``torch.save`` of a dict (tensors, numbers, strings, nested
    lists/dicts), read with ``weights_only=True``. Raises FileNotFoundError,
    :class:`UnsafeFileError` when the file holds any other Python object (nothing is
    imported or called) and :class:`UnreadableFileError` when it is damaged or not a dict."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        if "Weights only load failed" not in msg:
            raise UnreadableFileError(f"{path}: not a readable PyTorch checkpoint ({msg.strip()[:200]})") from exc
        called = re.search(r"GLOBAL ([\w.]+)", msg)
        what = f"it would import {called.group(1)}" if called else "it holds objects other than tensors and plain data"
        raise UnsafeFileError(
            f"{path}: refused to load: {what}; a checkpoint must hold tensors and plain data only "
            "(read with torch.load(weights_only=True)); nothing was executed"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnreadableFileError(
            f"{path}: not a readable PyTorch checkpoint (truncated or damaged?): {first[:200]}"
        ) from exc
    if not isinstance(state, dict):
        raise UnreadableFileError(f"{path}: expected a dict of tensors and plain data, found {type(state).__name__}")
    return state
