# llmsim — every target creates .venv on first use and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
IMAGE ?= llmsim:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: run test lint format schema bench clean image lint-image doc-blocks

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench,plot]'
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

bench: $(STAMP) ## llmsim beside the bare-ASGI floor in one table (installs wrk if missing).
	@command -v wrk >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq wrk; fi; }
	$(BIN)/python bench/run.py $(ARGS)

doc-blocks: $(STAMP) ## Run the doc blocks the doc-test cannot (image, Helm, benchmark tools) and report.
	$(BIN)/python bench/doc_blocks.py $(ARGS)

image: ## Build the container image $(IMAGE) from the Containerfile with podman, else docker.
	@engine=$$(command -v podman || command -v docker) \
		|| { echo 'make image: neither podman nor docker found' >&2; exit 1; }; \
	echo "$$engine build -f Containerfile -t $(IMAGE) ."; \
	"$$engine" build -f Containerfile -t $(IMAGE) .

lint-image: ## hadolint (from .venv) on the Containerfile.
	$(BIN)/hadolint Containerfile

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
