# The two commands a new user needs: `make serve` and `make test`. Both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export BENTOML_DO_NOT_TRACK := true
export PYTHONUNBUFFERED := 1

.PHONY: setup test test-random test-fast serve lint bench demo-model segmenter-model clean

setup: $(STAMP)

# Reinstall only when the dependency list changes; `pip install -e` keeps the code live.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

# The whole suite in a shuffled order (pytest-randomly): every test passes alone and after any
# other. CI keeps `make test`'s order. `make test-random SEED=<n>` repeats an order.
ifndef SEED
SEED := $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
endif
test-random: setup
	@echo "tests in random order, seed $(SEED)"
	$(BIN)/python -m pytest -q -p randomly --randomly-seed=$(SEED)

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not integration"

serve: setup
	$(BIN)/ecgscreen serve

lint: setup
	$(BIN)/ruff check ecgscreen service tests bench model_repository scripts
	$(BIN)/ruff format --check ecgscreen service tests bench model_repository scripts

bench: setup
	$(BIN)/python -m bench

demo-model: setup
	$(BIN)/ecgscreen demo-model

# The page segmenter (model_repository/ecg_segment): about 1.5 h on one core, resumable.
segmenter-model: setup
	$(BIN)/ecgscreen segmenter-model

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
