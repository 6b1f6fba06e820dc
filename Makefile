# The two commands of the README: `make run` and `make test`. Everything installs into .venv.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= default
STATE := .feedrank
RAY_PORT ?= 6380

export RAY_AUTH_MODE := disabled
export RAY_USAGE_STATS_ENABLED := 0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLCONFIGDIR := $(CURDIR)/$(STATE)/mpl
export PYTHONUNBUFFERED := 1

.PHONY: install run pipeline serve stop test lint unit integration e2e clean

$(BIN)/.installed: pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt "torch==2.13.0"
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	@touch $@

# Real reply trees (pipelines/realtrees) read the data files of delab-trees. Its dependencies
# (TensorFlow among them) are never installed and its code is never imported: --no-deps.
$(BIN)/.delab-trees: $(BIN)/.installed
	$(BIN)/pip install -q --no-deps "delab-trees==0.4.2"
	@touch $@

install: $(BIN)/.installed $(BIN)/.delab-trees

## make run: build the world, run the feed_training DAG through Airflow, promote, serve.
run: install
	$(BIN)/feedrank dag-test --config $(CONFIG)
	$(MAKE) --no-print-directory serve CONFIG=$(CONFIG)

pipeline: install
	$(BIN)/feedrank dag-test --config $(CONFIG)

## Serving runs on a detached local Ray head, so it stays up after make returns (`make stop`).
serve: install
	-$(BIN)/ray stop --force >/dev/null 2>&1
	mkdir -p /tmp/feedrank_ray
	PYTHONPATH=$(CURDIR) $(BIN)/ray start --head --port $(RAY_PORT) --num-cpus 2 \
		--temp-dir /tmp/feedrank_ray --dashboard-host 127.0.0.1 --disable-usage-stats >/dev/null
	RAY_ADDRESS=127.0.0.1:$(RAY_PORT) $(BIN)/feedrank serve --config $(CONFIG) --no-block
	@$(BIN)/python -m serving.example --config $(CONFIG)

stop:
	-$(BIN)/ray stop --force

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy pipelines serving
	$(BIN)/lint-imports

## make test: install, lint (ruff, mypy, import contracts), then every test tier (unit, integration, e2e).
test: install
	$(MAKE) --no-print-directory lint
	@bash scripts/with_services.sh $(BIN)/python -m pytest -q tests

unit: install
	$(BIN)/python -m pytest -q tests/unit

clean: stop
	rm -rf $(STATE)
