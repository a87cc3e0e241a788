# Two entry points a new user needs: `make repro` and `make test`.
# Both create .venv/ on first use (Python 3.11), installing torch first and
# pinned so pip takes the CPU wheel rather than a multi-GB CUDA build.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export MLFLOW_DISABLE_TELEMETRY := true

$(BIN)/superionic: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: venv repro test params md-validation
venv: $(BIN)/superionic

params: venv
	$(BIN)/superionic compose-params

repro: venv
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro

test: venv
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest

# The barrier-resolving MLIP protocol (conf/md/validation.yaml), outside
# `dvc repro`: hours on 2 CPU cores, so the default pipeline stays short. Its
# AIMD analysis, MLIP runs and comparison go to reports/md-validation/ with
# the params.yaml they ran from (trajectories to data/md-validation/).
# Part of it: make md-validation MD_VALIDATION='md.mlip.runs_only=[mp-532413]'
MD_VALIDATION ?=
md-validation: venv
	$(eval MD_VALIDATION_DIR := $(shell $(BIN)/python -c "import yaml; print(yaml.safe_load(open('params.yaml'))['md']['validation_dir'])"))
	mkdir -p $(MD_VALIDATION_DIR)
	$(BIN)/superionic compose-params md=validation md.report_dir=$(MD_VALIDATION_DIR) \
		md.report=$(MD_VALIDATION_DIR)/README.md md.out_dir=data/md-validation $(MD_VALIDATION) \
		--output $(MD_VALIDATION_DIR)/params.yaml
	for stage in aimd mlip-md md-report; do \
		$(BIN)/superionic $$stage --params $(MD_VALIDATION_DIR)/params.yaml || exit 1; done
