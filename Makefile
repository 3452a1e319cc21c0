# One entry point for every task. `make demo` and `make test` are the two a new user needs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
TOOLS_VENV := .venv-tools
CHECKOV_VENV := .venv-checkov
LITSERVE_VENV := .venv-litserve
CONVERT_VENV := .venv-convert
BIN := $(VENV)/bin
# Every build output (the Python tools take it from training/paths.py and local/paths.py).
BUILD := build
PORT ?= 8080
HOST ?= 127.0.0.1

.PHONY: help venv converter tools lint typecheck pytest test templates models demo up bench clean
.PHONY: workflows preflight deploy publish-site logs destroy logs-local
.PHONY: bench-serving bench-variants
.PHONY: bench-stats
.PHONY: bench-retrain
.PHONY: bench-rounds
.PHONY: bench-api
.PHONY: bench-classifier-seeds
.PHONY: bench-frameworks
.PHONY: checkov reliability
.PHONY: sam-local

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml requirements/offline.txt
	@echo "==> creating $(VENV) and installing pinned dependencies"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --progress-bar on --upgrade pip==26.3
	$(BIN)/pip install --progress-bar on -e '.[dev]'
	$(BIN)/pip install --progress-bar on --no-deps -r requirements/offline.txt
	touch $@

$(CONVERT_VENV)/.installed: requirements/converter.txt
	@echo "==> creating $(CONVERT_VENV) for ONNX Runtime GenAI's model builder (it wants transformers 5)"
	$(PYTHON) -m venv $(CONVERT_VENV)
	$(CONVERT_VENV)/bin/pip install --progress-bar on -r requirements/converter.txt
	touch $@

converter: $(CONVERT_VENV)/.installed ## create or update the model converter's virtualenv (packaging a generator needs it)

venv: $(VENV)/.installed converter ## create or update the project virtualenv (and the model converter's)

$(TOOLS_VENV)/.installed: requirements/tools.txt
	@echo "==> creating $(TOOLS_VENV) for aws-sam-cli and cfn-lint"
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --progress-bar on -r requirements/tools.txt
	touch $@

tools: $(TOOLS_VENV)/.installed ## create or update the template-tools virtualenv

$(CHECKOV_VENV)/.installed: requirements/checkov.txt
	@echo "==> creating $(CHECKOV_VENV) for checkov (its pins clash with aws-sam-cli's)"
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --progress-bar on -r requirements/checkov.txt
	touch $@

checkov: $(CHECKOV_VENV)/.installed ## create or update the checkov virtualenv (template security scan)

lint: venv ## ruff check + ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

workflows: tools ## lint the GitHub workflows (zizmor, offline)
	$(TOOLS_VENV)/bin/zizmor --offline .github/

typecheck: venv ## mypy on the non-ML packages
	$(BIN)/mypy

pytest: venv checkov ## the pytest suite alone
	$(BIN)/pytest

test: lint typecheck workflows templates pytest ## everything CI checks

# ---- template checks: lint, validate, build, and import each built function against its layer
TEMPLATES := template-root.yaml $(wildcard apps/*/template.yaml)
SAM_BUILD_DIR := $(BUILD)/templates/sam
export SAM_CLI_TELEMETRY := 0

templates: venv tools ## cfn-lint (+ project rules), sam validate --lint, sam build, import smoke test
	@echo "==> cfn-lint on every template (.cfnlintrc; project rules in .cfnlint/rules)"
	$(TOOLS_VENV)/bin/cfn-lint
	@echo "==> the project rule E9101 rejects a serverless endpoint config with two variants"
	$(TOOLS_VENV)/bin/cfn-lint .cfnlint/fixtures/serverless-two-variants.yaml | grep E9101 >/dev/null
	@echo "==> the project rule E9102 rejects data capture on a serverless endpoint config"
	$(TOOLS_VENV)/bin/cfn-lint .cfnlint/fixtures/serverless-data-capture.yaml | grep E9102 >/dev/null
	@echo "==> sam validate --lint"
	for template in $(TEMPLATES); do $(TOOLS_VENV)/bin/sam validate --lint -t $$template || exit 1; done
	@echo "==> sam build (into $(SAM_BUILD_DIR))"
	$(TOOLS_VENV)/bin/sam build -t template-root.yaml --build-dir $(SAM_BUILD_DIR) \
		--cache-dir $(BUILD)/templates/sam-cache --cached
	@echo "==> each built function imports against only its layer (fresh python3.11 -I -S)"
	$(BIN)/python -m local.ops.build_checks $(SAM_BUILD_DIR)

models: venv ## train, evaluate and package all three models (full profile; skips what is up to date)
	$(BIN)/pressroom build-all --profile full

demo: models ## everything: virtualenv, models, and the local stack on http://$(HOST):$(PORT)
	$(BIN)/pressroom up --host $(HOST) --port $(PORT)

up: venv ## the local stack (emulator, API, site) on http://$(HOST):$(PORT); builds missing models
	$(BIN)/pressroom up --host $(HOST) --port $(PORT)

logs-local: venv ## follow the local stack's log file (functions, metrics, access log), like `sam logs --tail`
	$(BIN)/pressroom logs --follow $(LOGS_FLAGS)

# `bench` runs every benchmark; each area adds its own `bench: bench-<area>` prerequisite.
bench: bench-serving ## run the benchmarks and update BENCHMARKS.md

bench-serving: venv ## classifier: serving overhead, ONNX int8 vs PyTorch (full artifacts if built)
	$(BIN)/python -m benchmarks.serving

$(LITSERVE_VENV)/.installed: requirements/litserve.txt
	@echo "==> creating $(LITSERVE_VENV): LitServe for the framework benchmark only"
	$(PYTHON) -m venv $(LITSERVE_VENV)
	$(LITSERVE_VENV)/bin/pip install --progress-bar on -r requirements/litserve.txt
	touch $@

bench: bench-frameworks
bench-frameworks: venv $(LITSERVE_VENV)/.installed ## generator throughput: Pressroom's emulator vs LitServe, 1 and 8 clients
	$(BIN)/python -m benchmarks.frameworks

bench: bench-variants
bench-variants: venv ## variant A and challenger B side by side: bits/char, reading quality, speed
	$(BIN)/python -m benchmarks.variants

bench: bench-retrain
bench-retrain: venv ## the feedback loop on the full models for two hidden tastes (round one, retrain, round two, round decide), and the objective against its alternatives
	$(BIN)/python -m benchmarks.retrain

bench: bench-rounds
bench-rounds: venv ## readers until a round is decided: +0.08 lift, no lift, a worse challenger; the rules before and now (no models)
	$(BIN)/python -m benchmarks.rounds

bench: bench-stats
bench-stats: venv ## /api/stats on SQLite and PostgreSQL, 1M votes over 500k generations (goal p50 < 100 ms on both)
	$(BIN)/python -m benchmarks.stats

bench: bench-classifier-seeds
bench-classifier-seeds: venv ## the classifier recipe beside the BBC-only one it replaced, five seeds (SEEDS=3: three): how much of each macro-F1 is the seed
	$(BIN)/python -m benchmarks.classifier_seeds $(if $(SEEDS),--seeds $(SEEDS))

bench: bench-api
bench-api: venv ## end-to-end latency through the local stack beside the raw model call
	$(BIN)/python -m benchmarks.api

clean: ## remove build outputs (keeps the virtualenvs)
	rm -rf $(BUILD) .aws-sam

# ---- AWS operations (need AWS credentials; see infra/README.md). ENV is a samconfig.toml environment.
ENV ?= dev
SAM := $(TOOLS_VENV)/bin/sam

# An experiment round: CHALLENGER=<version> (in pressroom-headline-challengers) serves it on
# variant B at CHALLENGER_SHARE of the traffic; a deploy without it keeps the round the stack
# serves, and END_ROUND=1 ends it (variant B serves headline-lite again).
CHALLENGER ?=
CHALLENGER_SHARE ?= 0.1
END_ROUND ?=

preflight: venv ## read-only: do this AWS account's quotas hold ENV=dev|prod? (before a first deploy)
	$(BIN)/pressroom preflight --env $(ENV)

deploy: venv tools ## sam build + sam deploy ENV=dev|prod, with the models the registry lets ENV serve
	$(SAM) build --config-env $(ENV)
	overrides="$$($(BIN)/pressroom release-parameters --env $(ENV) \
		$(if $(CHALLENGER),--challenger $(CHALLENGER) --share $(CHALLENGER_SHARE)) \
		$(if $(END_ROUND),--end-round))" && \
		$(SAM) deploy --config-env $(ENV) $(SAM_DEPLOY_FLAGS) --parameter-overrides "$$overrides"

publish-site: venv ## upload apps/frontend/site to ENV's bucket and invalidate its CloudFront cache
	$(BIN)/pressroom publish-site --env $(ENV)

logs: venv tools ## follow the Lambda logs of one app in ENV: make logs APP=inference-api ENV=dev
	names="$$($(BIN)/pressroom log-names $(APP))" && $(SAM) logs --config-env $(ENV) --tail $$names

destroy: tools ## delete ENV's stack (sam delete asks for confirmation)
	$(SAM) delete --config-env $(ENV)

# ---- the same functions in Lambda containers (needs Docker): `sam local start-api` on port
# SAM_LOCAL_PORT, against the emulator (`.venv/bin/pressroom sagemaker --host 0.0.0.0 --port
# EMULATOR_PORT`, started first) and the PostgreSQL store DATABASE_URL, migrated first.
EMULATOR_PORT ?= 8081
SAM_LOCAL_PORT ?= 3000
HOSTING_MODE ?= realtime
sam-local: venv tools ## sam local start-api in Docker: make sam-local DATABASE_URL=postgresql+psycopg://user@127.0.0.1:5432/db
	$(BIN)/python -m local.ops.sam_local --database-url "$(DATABASE_URL)" \
		--emulator-port $(EMULATOR_PORT) --hosting-mode $(HOSTING_MODE) --port $(SAM_LOCAL_PORT)

reliability: venv checkov ## load, faults, hostile input, fuzzing, security scans on a fresh local stack → RELIABILITY.md
	$(BIN)/python -m qa.reliability
