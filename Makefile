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

.PHONY: venv repro test params
venv: $(BIN)/superionic

params: venv
	$(BIN)/superionic compose-params

repro: venv
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro

test: venv
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest
