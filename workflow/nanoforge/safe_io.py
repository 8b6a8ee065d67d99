"""Reading files that may come from elsewhere without ever running code from them.

A trained model (its config and its checkpoints) is something people copy between machines
and labs, so every loader of the project reads such files through this module:

- :func:`load_yaml_safely`: plain YAML data only (mappings, lists, strings, numbers,
  booleans, null). A Python tag such as ``!!python/object/apply:os.system`` is refused
  before anything is built from it (PyYAML's safe loader constructs no objects), with an
  :class:`UnsafeFileError` naming the file, the tag and its line.
- :func:`nanoforge.safe_torch.load_torch_state` (a module of its own, so that reading YAML
  does not need torch): a PyTorch checkpoint read with ``torch.load(...,
  weights_only=True)``: tensors and plain containers only. A pickle that would import or
  call anything else is refused (:class:`UnsafeFileError`); a truncated or damaged file
  raises :class:`UnreadableFileError`. Both name the file.

Never use ``yaml.load``/``yaml.unsafe_load``, ``pickle``, ``joblib`` or ``torch.load``
without ``weights_only=True`` on a file; write models as tensors + plain data (YAML, JSON,
``torch.save`` of a dict of tensors) so that these loaders can read them back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

__all__ = ["SafeLoadError", "UnsafeFileError", "UnreadableFileError", "load_yaml_safely"]


class SafeLoadError(ValueError):
    """A file cannot be read safely; the message names the file and the reason."""


class UnsafeFileError(SafeLoadError):
    """The file holds content that only running code could rebuild (a Python YAML tag, a
    pickled object other than tensors and plain containers): it was refused, nothing ran."""


class UnreadableFileError(SafeLoadError):
    """The file is damaged (e.g. truncated) or not in the expected format."""


_YAML_TAG = re.compile(r"'(tag:yaml\.org,2002:)?([^']+)'")


def load_yaml_safely(path: str | Path) -> Any:
    """The data of a YAML file, parsed with ``yaml.safe_load``. Raises FileNotFoundError,
    :class:`UnsafeFileError` for a tag that would build a Python object (tag and line in the
    message) and :class:`UnreadableFileError` for text that is not valid YAML."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"{path}: not UTF-8 text ({exc})") from exc
    try:
        return yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        problem = exc.problem or ""
        where = f", line {exc.problem_mark.line + 1}" if exc.problem_mark is not None else ""
        found = _YAML_TAG.search(problem) if "constructor for the tag" in problem else None
        if found is None:  # e.g. an unhashable key: a malformed file, not an unsafe one
            raise UnreadableFileError(f"{path}{where}: not valid YAML data: {problem}") from exc
        tag = ("!!" if found.group(1) else "") + found.group(2)
        raise UnsafeFileError(
            f"{path}{where}: refused the YAML tag {tag}: only plain YAML data (mappings, lists, "
            "strings, numbers, booleans) is read, never Python objects; nothing was executed"
        ) from None
    except yaml.YAMLError as exc:
        raise UnreadableFileError(f"{path}: not valid YAML: {exc}") from exc
