# nanoforge: TEM images and synthesis recipes of colloidal nanocrystals ->
# particle measurements, shape clusters and synthesis models.
# This file only sets the configuration, validates it and includes the stages.

import sys
from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))
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
