"""nanoforge: TEM images and synthesis recipes of colloidal nanocrystals to particle
measurements, shape clusters and synthesis models.

All logic lives in this package (no Snakemake imports), so it is tested directly; the
workflow's scripts are thin wrappers around it.
"""

__version__ = "0.1.0"
