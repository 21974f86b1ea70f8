# Every target works on a fresh machine with Python 3.11+: when no virtualenv is active,
# one is created in .venv and the test requirements are installed into it.

.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON_FOR_VENV ?= python3
ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := $(CURDIR)/.venv
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.drs-installed
DEMO_STAMP := $(VENV)/.drs-demo-installed

PYTEST_ARGS ?=

.PHONY: help install test coverage lint format docs dist bench demo clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON_FOR_VENV) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml requirements_test.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements_test.txt
	@touch $(STAMP) $(DEMO_STAMP)

# The demo needs less than the tests: the app, its embedded servers, the example's needs.
$(DEMO_STAMP): $(BIN)/python pyproject.toml example/requirements.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[testing]' -r example/requirements.txt
	@touch $(DEMO_STAMP)

install: $(STAMP) ## Create .venv (unless a virtualenv is active) and install the app and test tools

test: $(STAMP) ## Run the test suite (REQUIRE_SERVICES=1 turns skips for missing services into failures)
	cd $(CURDIR) && $(BIN)/python -m pytest $(PYTEST_ARGS)

COVERAGE_DATA ?= $(CURDIR)/test-artifacts/coverage/local

# COVERAGE_PROCESS_START makes every Python process of the virtualenv measure itself
# (coverage's .pth file), so the workers, daphne and manage.py the tests start count too.
coverage: $(STAMP) ## Run the test suite measuring coverage, started processes included, and report it
	rm -rf $(COVERAGE_DATA) && mkdir -p $(COVERAGE_DATA)
	cd $(CURDIR) && COVERAGE_PROCESS_START=$(CURDIR)/pyproject.toml \
		COVERAGE_FILE=$(COVERAGE_DATA)/.coverage $(BIN)/python -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage combine --quiet --data-file=$(COVERAGE_DATA)/.coverage $(COVERAGE_DATA)
	$(BIN)/coverage html --quiet --data-file=$(COVERAGE_DATA)/.coverage --directory=$(COVERAGE_DATA)/html
	$(BIN)/coverage report --data-file=$(COVERAGE_DATA)/.coverage

lint: $(STAMP) ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docs: $(STAMP) ## Build the documentation with warnings as errors
	$(BIN)/sphinx-build -W --keep-going -b html -d docs/_build/doctrees docs docs/_build/html

dist: $(STAMP) ## Build the sdist and the wheel into dist/
	rm -rf dist build
	$(BIN)/python -m build --outdir dist .

bench: $(STAMP) ## Run the benchmarks in bench/ (as root: they start a private sshd)
	@for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

DEMO_ARGS ?=

demo: $(DEMO_STAMP) ## Run the example site on embedded Redis and SSH servers (Ctrl-C stops it)
	cd $(CURDIR)/example && exec $(BIN)/python demo.py $(DEMO_ARGS)

clean: ## Remove build output and caches (keeps .venv)
	rm -rf build dist docs/_build .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
