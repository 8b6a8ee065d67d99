"""One vocabulary of shape classes: every spelling maps to one class, every module and table
uses the classes as the vocabulary spells them."""

from __future__ import annotations

import pytest

from nanoforge import tables, vocabulary
from nanoforge.vocabulary import (
    CLUSTER_NAMES,
    PAPER_SHAPES_LIST,
    SHAPE_CLASSES,
    SYNONYMS,
    UnknownShapeError,
    find_shape_class,
    from_paper_code,
    paper_code,
    shape_class,
)


def test_papers_shapes_list_is_the_mapping(shared_data):
    lines = [s.strip() for s in (shared_data / "recipes" / "shapes_list.txt").read_text().splitlines() if s.strip()]
    assert lines == list(PAPER_SHAPES_LIST)  # same names, same order (Y3 codes)
    assert sorted(PAPER_SHAPES_LIST.values()) == sorted(SHAPE_CLASSES)
    assert [paper_code(shape_class(n)) for n in lines] == list(range(11))
    assert [from_paper_code(i) for i in range(11)] == [PAPER_SHAPES_LIST[n] for n in lines]


@pytest.mark.parametrize("text,expected", [
    ("sphere", "sphere"), (" Spherical ", "sphere"), ("CUBE", "cube"), ("nanorods", "rod"),
    ("four pointed star", "four_pointed_star"), ("Six-Pointed  Star", "six_pointed_star"),
    ("irregular", "irregular"), ("Irregular shape", "irregular"), ("hexagonal", "hexagon"),
    ("flower-like", "flower"), ("Flower shape", "flower"), ("cube shape", "cube"), ("rod-shaped", "rod"),
    ("four_pointed_star", "four_pointed_star"), ("quantum dots", "sphere"), ("ＣＵＢＥ", "cube"),
    ("star", None), ("blob", None), ("", None), ("shape", None), (None, None),
])
def test_spellings(text, expected):
    assert find_shape_class(text) == expected


def test_every_class_spells_itself_and_no_spelling_means_two_classes():
    assert [shape_class(c) for c in SHAPE_CLASSES] == list(SHAPE_CLASSES)
    assert set(SYNONYMS) == set(SHAPE_CLASSES)
    meaning = {}
    for cls, words in SYNONYMS.items():
        for w in words:
            assert find_shape_class(w) == cls, w
            meaning.setdefault(vocabulary._lookup_key(w), set()).add(cls)
    assert all(len(v) == 1 for v in meaning.values())
    assert set(CLUSTER_NAMES) - set(SHAPE_CLASSES) == {vocabulary.NOISE_NAME, vocabulary.UNMEASURED_NAME}


def test_unknown_shape_is_named():
    with pytest.raises(UnknownShapeError, match="unknown particle shape 'pentagon'; known shapes: sphere, cube"):
        shape_class("pentagon")
    with pytest.raises(UnknownShapeError, match="'Irregular shape' is not a shape class"):
        paper_code("Irregular shape")  # codes are for classes, not for spellings


def test_table_contracts_use_the_vocabulary():
    """The schemas list the classes themselves (readable without the code): they must agree."""
    recipes = tables.load_table_schema("recipes")
    assert recipes["properties"]["shape"]["enum"] == list(SHAPE_CLASSES)
    from nanoforge.shapes import labels

    assert labels.sample_labels_schema()["properties"]["shape"]["enum"] == [*SHAPE_CLASSES, None]
    assert labels.recipes_labelled_schema()["properties"]["tem_shape"]["enum"] == [*SHAPE_CLASSES, None]
    assert labels.SHARE_COLUMNS == [f"share_{c}" for c in SHAPE_CLASSES]


def test_no_other_module_keeps_a_translation_table():
    """The paper's spellings live in the vocabulary only (and in input files)."""
    from pathlib import Path

    root = Path(vocabulary.__file__).resolve().parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name != "vocabulary.py" and ("Irregular shape" in p.read_text() or
                                                   "four-pointed star" in p.read_text())]
    assert offenders == []
