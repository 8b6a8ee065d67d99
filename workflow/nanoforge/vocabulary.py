"""The project's vocabulary of particle shapes: one spelling per class, everywhere.

Every table, config key, figure and model of the project names a shape class by one of
:data:`SHAPE_CLASSES` (lower case, words joined by ``_``). Other spellings are accepted on
input only and translated here, in one place:

- the paper's dataset (``shapes_list.txt``, which the ``Y3`` column of its processed recipes
  indexes) writes "Irregular shape", "flower shape", "four-pointed star" and
  "six-pointed star": :data:`PAPER_SHAPES_LIST` maps its lines, in file order, to classes;
- free text in recipe sources and in the config ("spherical", "nanorods", "flower-like",
  "Six-Pointed Star", ...): :data:`SYNONYMS`, matched case-, space-, hyphen- and
  underscore-insensitively by :func:`find_shape_class` / :func:`shape_class`.

The shape clustering names each cluster with a class, or with :data:`NOISE_NAME` (HDBSCAN's
noise, cluster -1) or :data:`UNMEASURED_NAME` (particles without descriptors, cluster -2); these
two are :data:`CLUSTER_NAMES` beyond the classes, never shape classes.

The order of :data:`SHAPE_CLASSES` is the order of the ``share_<class>`` columns of the
sample labels, of figure legends and of the synthetic-particle generators. Models of the
synthesis stage fit classes by :func:`paper_code` (the ``Y3`` code) so that their class
order is the paper's.
"""

from __future__ import annotations

import re
import unicodedata

SHAPE_CLASSES: tuple[str, ...] = (
    "sphere",
    "cube",
    "rod",
    "triangle",
    "hexagon",
    "rhombus",
    "rectangle",
    "four_pointed_star",
    "six_pointed_star",
    "flower",
    "irregular",
)

# The paper's shapes_list.txt, line by line (Y3 = the line's position) -> class.
PAPER_SHAPES_LIST: dict[str, str] = {
    "Irregular shape": "irregular",
    "cube": "cube",
    "flower shape": "flower",
    "four-pointed star": "four_pointed_star",
    "hexagon": "hexagon",
    "rectangle": "rectangle",
    "rhombus": "rhombus",
    "rod": "rod",
    "six-pointed star": "six_pointed_star",
    "sphere": "sphere",
    "triangle": "triangle",
}

# Free-text spellings that mean one class unambiguously (compared as _lookup_key writes them,
# so case, spaces, hyphens and underscores do not matter; the class names and the paper's
# spellings are accepted without being listed).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "sphere": ("spheres", "spherical", "nanosphere", "nanospheres", "dot", "dots", "quantum dot",
               "quantum dots", "round", "circle"),
    "cube": ("cubes", "cubic", "nanocube", "nanocubes", "cuboid", "square"),
    "rod": ("rods", "nanorod", "nanorods", "rodlike", "rod shape", "rod shaped"),
    "triangle": ("triangles", "triangular", "triangular plate", "triangular plates", "trianglar"),
    "hexagon": ("hexagons", "hexagonal", "hexagonal plate", "hexagonal plates", "hexagon shape"),
    "rhombus": ("rhombuses", "rhombi", "rhombic", "rhomb", "rhomb shape"),
    "rectangle": ("rectangles", "rectangular"),
    "four_pointed_star": ("four-pointed stars", "4-pointed star", "star4"),
    "six_pointed_star": ("six-pointed stars", "6-pointed star", "star6"),
    "flower": ("flowers", "flower-like", "flower shaped", "nanoflower", "nanoflowers"),
    "irregular": ("irregular shapes", "irregular shaped"),
}

NOISE_NAME = "noise"
UNMEASURED_NAME = "unmeasured"
CLUSTER_NAMES: tuple[str, ...] = (*SHAPE_CLASSES, NOISE_NAME, UNMEASURED_NAME)


class UnknownShapeError(ValueError):
    """A shape name that is no class of the vocabulary; the message lists the classes."""


def _lookup_key(text) -> str:
    text = unicodedata.normalize("NFKC", "" if text is None else str(text)).casefold()
    return re.sub(r"[\s\-_]+", "", text)


def _build_lookup() -> dict[str, str]:
    lookup: dict[str, str] = {}

    def add(word: str, cls: str) -> None:
        key = _lookup_key(word)
        if lookup.setdefault(key, cls) != cls:  # pragma: no cover - a mistake in the tables above
            raise AssertionError(f"shape spelling {word!r} means both {lookup[key]} and {cls}")

    for cls in SHAPE_CLASSES:
        add(cls, cls)
    for paper, cls in PAPER_SHAPES_LIST.items():
        add(paper, cls)
    for cls, words in SYNONYMS.items():
        for w in words:
            add(w, cls)
    return lookup


_LOOKUP = _build_lookup()


def find_shape_class(text) -> str | None:
    """The class that ``text`` names (any accepted spelling, also with a trailing "shape" or
    "shaped", e.g. "cube shape"), or None."""
    key = _lookup_key(text)
    if key in _LOOKUP:
        return _LOOKUP[key]
    stem = re.sub(r"shaped?$", "", key)
    return _LOOKUP.get(stem) if stem else None


def shape_class(text) -> str:
    """The class that ``text`` names; raises :class:`UnknownShapeError` listing the classes."""
    cls = find_shape_class(text)
    if cls is None:
        raise UnknownShapeError(f"unknown particle shape {text!r}; known shapes: {', '.join(SHAPE_CLASSES)}")
    return cls


_PAPER_CODE = {cls: i for i, cls in enumerate(PAPER_SHAPES_LIST.values())}


def paper_code(cls: str) -> int:
    """The paper's ``Y3`` code of a class (its line in ``shapes_list.txt``, from 0)."""
    try:
        return _PAPER_CODE[cls]
    except KeyError:
        raise UnknownShapeError(f"{cls!r} is not a shape class; known shapes: {', '.join(SHAPE_CLASSES)}") from None


def from_paper_code(code: int) -> str:
    return list(PAPER_SHAPES_LIST.values())[int(code)]
