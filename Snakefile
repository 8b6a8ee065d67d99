# nanoforge: TEM images and synthesis recipes of colloidal nanocrystals ->
# particle measurements, shape clusters and synthesis models.
# This file only sets the configuration, validates it and includes the stages.

import importlib.util

from snakemake.utils import min_version

min_version("9.0")

# The folder of this Snakefile: the workflow's own files (Detectron2 config, chemicals table)
# are found relative to it, also when another project uses this workflow as a module (there
# workflow.basedir is the other project's folder). Paths in the config are relative to the
# working directory.
NANOFORGE_DIR = Path(workflow.current_basedir.get_path_or_uri(secret_free=False))

# This checkout's library first on sys.path, whatever else the environment offers.
_spec = importlib.util.spec_from_file_location(
    "_nanoforge_path", NANOFORGE_DIR / "workflow" / "scripts" / "_nanoforge_path.py"
)
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))

from nanoforge.config import (  # noqa: E402
    detector_training_overrides,
    simulation_settings,
    split_weak_label_config,
    validate_config,
)


configfile: "config.yaml"


config.update(validate_config(config))


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/recipes.smk"
include: "workflow/rules/synthesis.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/tem.smk"
include: "workflow/rules/segmentation.smk"
include: "workflow/rules/shapes.smk"
include: "workflow/rules/detector.smk"


rule all:
    default_target: True
    input:
        TARGETS,
