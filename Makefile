# One entry point for every task. `make demo` and `make test` are the two a new user needs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
TOOLS_VENV := .venv-tools
BIN := $(VENV)/bin
PORT ?= 8080
HOST ?= 127.0.0.1

.PHONY: help venv tools lint typecheck pytest test templates models demo up bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml requirements/offline.txt
	@echo "==> creating $(VENV) and installing pinned dependencies"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --progress-bar on --upgrade pip==26.3
	$(BIN)/pip install --progress-bar on -e '.[dev]'
	$(BIN)/pip install --progress-bar on --no-deps -r requirements/offline.txt
	touch $@

venv: $(VENV)/.installed ## create or update the project virtualenv

$(TOOLS_VENV)/.installed: requirements/tools.txt
	@echo "==> creating $(TOOLS_VENV) for aws-sam-cli and cfn-lint"
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --progress-bar on -r requirements/tools.txt
	touch $@

tools: $(TOOLS_VENV)/.installed ## create or update the template-tools virtualenv

lint: venv ## ruff check + ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv ## mypy on the non-ML packages
	$(BIN)/mypy

pytest: venv ## the pytest suite alone
	$(BIN)/pytest

test: lint typecheck pytest ## everything CI checks

models: venv ## train, evaluate and package all three models (full profile; skips what is up to date)
	$(BIN)/pressroom build-all --profile full

demo: models ## everything: virtualenv, models, and the local stack on http://$(HOST):$(PORT)
	$(BIN)/pressroom up --host $(HOST) --port $(PORT)

clean: ## remove build outputs (keeps the virtualenvs)
	rm -rf build .aws-sam
