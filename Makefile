# nanoforge: `make run` builds everything on the default config; `make test` runs the tests.
# Both create .venv (Python 3.11) and install the pinned requirements first.

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= all
# Optional: build only these targets, e.g. make run TARGETS=results/recipes/recipes.parquet
TARGETS ?=
# Optional: a configuration overlay merged into config.yaml, e.g. make run OVERLAY=config.paper.yaml
OVERLAY ?=
SNAKEMAKE_CONFIG := $(if $(OVERLAY),--configfile $(OVERLAY))
# When this make started: the time table after `make run` lists the jobs that ran since.
RUN_START := $(shell date +%s)
STAMP  := $(VENV)/.installed

.PHONY: setup run test lint report dag clean-venv slurm-up slurm-down

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml workflow/setup/install_detectron2.sh workflow/setup/install_tesseract.sh
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=..." >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	bash workflow/setup/install_detectron2.sh $(BIN)/python
	bash workflow/setup/install_tesseract.sh
	touch $@

run: setup
	$(BIN)/snakemake --cores $(CORES) --profile workflow/profiles/local $(SNAKEMAKE_CONFIG) $(TARGETS)
	$(BIN)/snakemake --cores $(CORES) --report results/report.html $(SNAKEMAKE_CONFIG) $(TARGETS)
	-@PYTHONPATH=workflow $(BIN)/python -m nanoforge.bench times results/benchmarks --since $(RUN_START)

test: setup
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then bash tests/slurm/start.sh; fi
	$(BIN)/python -m pytest -q tests

# `make test` runs the same checks (tests/test_conventions.py).
lint: setup
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

report: setup
	$(BIN)/snakemake --cores $(CORES) --report results/report.html $(SNAKEMAKE_CONFIG)

dag: setup
	$(BIN)/snakemake --dag | dot -Tsvg > results/dag.svg

slurm-up:
	bash tests/slurm/start.sh

slurm-down:
	bash tests/slurm/stop.sh

clean-venv:
	rm -rf $(VENV)
