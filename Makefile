# nanoforge: `make run` builds everything on the default config; `make test` runs the tests.
# Both create .venv (Python 3.11) and install the pinned requirements first.

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= all
# Optional: build only these targets, e.g. make run TARGETS=results/recipes/recipes.parquet
TARGETS ?=
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
	$(BIN)/snakemake --cores $(CORES) --profile workflow/profiles/local $(TARGETS)
	$(BIN)/snakemake --cores $(CORES) --report results/report.html $(TARGETS)

test: setup
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then bash tests/slurm/start.sh; fi
	$(BIN)/python -m pytest -q tests

lint: setup
	$(BIN)/snakemake --lint

report: setup
	$(BIN)/snakemake --cores $(CORES) --report results/report.html

dag: setup
	$(BIN)/snakemake --dag | dot -Tsvg > results/dag.svg

slurm-up:
	bash tests/slurm/start.sh

slurm-down:
	bash tests/slurm/stop.sh

clean-venv:
	rm -rf $(VENV)
