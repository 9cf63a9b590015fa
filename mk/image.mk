# Image targets: build, run and inspect the container image (included by the Makefile).
# DOCKER, IMAGE, IMAGE_NAME and PORT come from the Makefile.

.PHONY: release
release: ## Build the static release binary (scripts/build-release.sh, as the Dockerfile does)
	scripts/build-release.sh

.PHONY: build
build: ## Build the image IMAGE_NAME:IMAGE_TAG (image.env) into the current docker daemon
	DOCKER_BUILDKIT=1 $(DOCKER) build --tag $(IMAGE) .

.PHONY: launch
launch: ## Run the image on http://127.0.0.1:5600 (PORT=...), read-only, no capabilities
	$(DOCKER) run --rm --read-only --cap-drop ALL --security-opt no-new-privileges \
	  -p 127.0.0.1:$(PORT):5600 $(IMAGE)

.PHONY: images
images: ## List the local hello-k8s images
	$(DOCKER) images $(IMAGE_NAME)

.PHONY: delete
delete: ## Remove the image IMAGE_NAME:IMAGE_TAG from the current docker daemon
	$(DOCKER) image rm $(IMAGE)

.PHONY: audit
audit: ## Audit Cargo.lock against the RustSec advisory DB (opt-in: needs cargo-audit + internet)
	@$(CARGO) audit --version >/dev/null 2>&1 || { echo "cargo-audit is not installed: cargo install cargo-audit --locked (it fetches the advisory database from GitHub, so it is not part of make test/CI)" >&2; exit 1; }
	$(CARGO) audit
