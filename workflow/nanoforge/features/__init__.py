"""Featurizers shared by the synthesis models: per-chemical descriptor vectors
(``chemical``: RDKit descriptors and Morgan bits from SMILES, composition statistics from
formulas, the optional Uni-Mol vectors) and recipe-level feature tables (``recipe``), plus
the fitted column filter used inside model pipelines (``select``)."""
