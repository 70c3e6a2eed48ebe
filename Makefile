# llmsim — every target creates .venv on first use and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: run test lint format schema bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

run: $(STAMP) ## Serve the built-in default scenario on port 8000 (ARGS="scenarios/x.yaml --port 9000").
	$(BIN)/llmsim run $(ARGS)

test: lint ## Lint, type-check and run the whole test suite.
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP) ## ruff check, ruff format --check, mypy on llmsim/, schema drift.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy llmsim

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schema: $(STAMP) ## Regenerate the JSON Schema and the reference table from the scenario model.
	@mkdir -p schemas docs
	$(BIN)/llmsim schema > schemas/scenario.schema.json
	$(BIN)/llmsim schema --format markdown > docs/scenario-reference.md

bench: $(STAMP) ## Run the benchmarks in bench/ and print their figures.
	$(BIN)/python bench/streaming_fidelity.py $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
