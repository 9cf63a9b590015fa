# The real three-node cluster and the end-to-end suites that run on it (included by the
# Makefile). docs/cluster.md tells the whole story: what is built, what comes from Debian, the
# addresses, the facts of this machine and how they are handled.

CLUSTER_SCRIPTS := scripts/cluster
# The env file make cluster writes: the variables a deploy needs (KUBECONFIG, KUBE_CONTEXT, ...).
CLUSTER_ENV     ?= /var/lib/kco-cluster/env
E2E_CLUSTER_ARGS ?=
E2E_CLUSTER_OUT := target/e2e-cluster
# The Kubernetes minor make cluster and make e2e-cluster start (KUBE_MINOR=1.37): the default and
# the supported ones are scripts/cluster/common.sh's (k8s-openapi's feature; cluster/kube/*).
KUBE_MINOR ?= $(shell bash -c 'source $(CLUSTER_SCRIPTS)/common.sh && printf %s "$$KUBE_MINOR"')

.PHONY: cluster-install
cluster-install: ## Install what make cluster takes from Debian when missing (containerd, runc, CNI plugins, nftables, iptables, ipset, podman, busybox-static, wrk; root)
	$(CLUSTER_SCRIPTS)/install.sh

.PHONY: cluster-build
cluster-build: cluster-install ## Build Kubernetes, etcd, metrics-server, kube-router and the pause and client images from cluster/ (cached outside the clone; minutes once, then seconds)
	$(CLUSTER_SCRIPTS)/build.sh >/dev/null

.PHONY: cluster
cluster: cluster-install ## Start a real Kubernetes of NODES nodes (default 3; upstream, built here; KUBE_MINOR=1.34 or 1.37), each in network and mount namespaces of its own (Linux, root)
	$(CLUSTER_SCRIPTS)/up.sh

.PHONY: cluster-down
cluster-down: ## Stop the cluster and remove what it made and marked as its own (processes, shims, mounts, namespaces, cgroups, state)
	$(CLUSTER_SCRIPTS)/down.sh

.PHONY: cluster-env
cluster-env: ## Print the deploy variables of the running cluster (source it: eval "$$(make -s cluster-env)")
	@cat $(CLUSTER_ENV)

# make e2e-cluster: starts the cluster (KUBE_MINOR), runs every suite on it (or those
# E2E_CLUSTER_ARGS names: --suite NAME), and always takes it down again (its logs are kept in
# target/e2e-cluster/logs/<minor>). The harness is built beside the cluster's
# start: the debug build is make test's own (CARGO_TEST_ARGS: the same packages and features, so
# nothing is built twice after make test; `cargo build -p e2e` would resolve other features and
# rebuild a third of the workspace), the load client optimised (profile e2e). Timings of the
# build, the start and each suite are printed at the end, with the minor.
E2E_BIN  = $(abspath $(or $(CARGO_TARGET_DIR),target))/debug/e2e
E2E_LOAD = $(abspath $(or $(CARGO_TARGET_DIR),target))/e2e/e2e-load
.PHONY: e2e-cluster
e2e-cluster: cluster-install ## Start the cluster (KUBE_MINOR), deploy and test the project on it (all e2e suites), take it down
	@mkdir -p $(E2E_CLUSTER_OUT)
	status=0; t0=$$SECONDS; export KUBE_MINOR="$(KUBE_MINOR)"; \
	trap 'CLUSTER_KEEP_LOGS=$(CURDIR)/$(E2E_CLUSTER_OUT)/logs/$(KUBE_MINOR) $(CLUSTER_SCRIPTS)/down.sh >/dev/null || true' EXIT; \
	$(CLUSTER_SCRIPTS)/build.sh >/dev/null || exit $$?; t1=$$SECONDS; \
	{ $(CARGO) test --quiet $(CARGO_TEST_ARGS) --no-run >/dev/null && \
	  $(CARGO) build --quiet --profile e2e -p e2e-load; } >$(E2E_CLUSTER_OUT)/build.log 2>&1 & builds=$$!; \
	$(CLUSTER_SCRIPTS)/up.sh || exit $$?; t2=$$SECONDS; \
	wait $$builds || { cat $(E2E_CLUSTER_OUT)/build.log >&2; exit 1; }; t3=$$SECONDS; \
	$(E2E_BIN) --cluster-env $(CLUSTER_ENV) --manifest-gen $(TEST_MANIFEST_GEN) \
	  --load $(E2E_LOAD) --work $(E2E_CLUSTER_OUT) $(E2E_CLUSTER_ARGS) || status=$$?; t4=$$SECONDS; \
	echo "e2e-cluster timings, Kubernetes $(KUBE_MINOR): cluster build $$((t1 - t0)) s, cluster start $$((t2 - t1)) s (the harness built beside it, $$((t3 - t1)) s), suites $$((t4 - t3)) s, total $$((t4 - t0)) s"; \
	exit $$status
