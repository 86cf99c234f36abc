# Bollard: an MQTT broker with durable persistent sessions, and its
# Kubernetes operator. `make help` lists the targets.

# Version stamped into both binaries.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Image the operator runs brokers with unless an MQTTBroker says otherwise.
IMG ?= ghcr.io/bollard-io/bollard:$(VERSION)

GO ?= go
GOFLAGS_TEST ?= -race -shuffle=on
# Build tags of the test tiers beyond test-fast: envtest (a kube-apiserver
# and etcd), e2e (a whole local cluster), external (programs from outside
# the module: mosquitto, its clients, python3-paho-mqtt, helm, kustomize).
# `make test`, vet and lint build with all of them.
TEST_TAGS ?= envtest e2e external
# How long `make fuzz` runs each fuzz target.
FUZZTIME ?= 20s
LDFLAGS := -s -w -X main.version=$(VERSION)

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: fmt
fmt: ## Format the Go code (gofmt -s).
	gofmt -s -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet, over every test tier's files.
	$(GO) vet -tags '$(TEST_TAGS)' ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint, including the depguard import rules of design.md.
	$(GOLANGCI_LINT) run ./...

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods for the API types.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: manifests
manifests: controller-gen ## Generate the CRD and RBAC manifests into config/.
	$(CONTROLLER_GEN) rbac:roleName=bollard-operator crd:allowDangerousTypes=false webhook \
		paths="./api/..." paths="./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: docs
docs: ## Generate docs/reference from the CRD and broker/config (hack/gendocs; a test fails when they are stale).
	$(GO) run ./hack/gendocs

.PHONY: monitoring
monitoring: ## Generate the alert rules (config/prometheus, the chart) from controllers/resources and copy the dashboard into the chart (hack/genmonitoring; a test fails when they are stale).
	$(GO) run ./hack/genmonitoring

.PHONY: verify
verify: controller-gen ## Fail if generated files (deepcopy, CRDs, RBAC, chart CRDs) or formatting are out of date.
	hack/verify.sh

.PHONY: dev
dev: testbin test-deps ## Run Bollard without a cluster: local control plane, operator, sample MQTTBroker as a local process; prints how to connect; Ctrl-C stops.
	$(GO) run ./test/e2e/cmd/dev $(ARGS)

##@ Build

.PHONY: build
build: ## Build bin/bollard and bin/bollard-operator.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/bollard ./cmd/bollard
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS) -X main.defaultImage=$(IMG)" -o bin/bollard-operator ./cmd/bollard-operator

# Where `make image` writes the image archive, and (PUSH=REF) where it
# pushes the image.
IMAGE_TAR ?= bin/bollard-image.tar
PUSH ?=

.PHONY: image
image: build ## Build the container image without Docker into $(IMAGE_TAR) (hack/image: both binaries, user 65532); PUSH=REF also pushes it.
	$(GO) run ./hack/image --bin bin --out $(IMAGE_TAR) --tag $(IMG) --version $(VERSION) \
		--revision "$$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
		--created "$$(git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)" \
		$(if $(PUSH),--push $(PUSH))

.PHONY: run
run: ## Run the broker locally: MQTT on 127.0.0.1:1883, admin on 127.0.0.1:8080, data in ./bollard-data.
	$(GO) run ./cmd/bollard $(ARGS)

##@ Test

.PHONY: test
test: test-deps testbin verify lint helm kustomize ## Run every test tier (installs what the tests need first).
	KUBEBUILDER_ASSETS="$$(hack/testbin.sh)" BOLLARD_EARLIER_BIN="$$(hack/earlier-bin.sh)" $(GO) test $(GOFLAGS_TEST) -tags '$(TEST_TAGS)' -timeout 45m ./...
	@# Race-detector builds keep Syscall for socket I/O (broker/engine/rawsys_other.go):
	@# the engine's tests without -race run the path a release build takes (RawSyscall).
	$(GO) test -shuffle=on -count=1 -timeout 15m ./broker/engine/... ./broker/host/...

.PHONY: test-fast
# Most -short packages wait (sockets, timers, fsync) more than they compute:
# four test binaries at a time keep two cores busy (-p defaults to the core
# count).
TEST_FAST_P ?= 4

test-fast: ## Run the tests that need only Go: no control plane, no external program (the quick loop; under 2 minutes).
	$(GO) test $(GOFLAGS_TEST) -short -p $(TEST_FAST_P) -timeout 10m ./...

.PHONY: test-unit
test-unit: ## Run every test tier without installing anything (tiers that need missing tools fail).
	$(GO) test $(GOFLAGS_TEST) -tags '$(TEST_TAGS)' ./...

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 20s), one at a time; new crashers land in testdata/fuzz.
	hack/fuzz.sh $(FUZZTIME)

.PHONY: test-deps
test-deps: ## Install the Debian packages the tests use (mosquitto, its clients, python3-paho-mqtt, prometheus for promtool).
	hack/install-test-deps.sh

.PHONY: testbin
testbin: ## Build kube-apiserver, kube-controller-manager, kube-scheduler and etcd into the cache.
	hack/testbin.sh

.PHONY: bench
bench: test-deps ## Run the Go benchmarks, the load scenarios against bollard and mosquitto (test/load; LOAD_SIZE=short for a quick run), then bench-cluster.
	$(GO) test -run '^$$' -bench . -benchmem ./...
	LOAD_SIZE=$${LOAD_SIZE:-full} $(GO) test -tags loadbench -run '^TestLoadBench$$' -bench '^BenchmarkClient$$' -benchtime 50000x \
		-count 1 -v -timeout 40m ./test/load
	$(MAKE) bench-cluster

.PHONY: bench-cluster
bench-cluster: ## Compare a 3-member cluster with a single sync node, rounds alternating (TestClusterBench; its LOAD_* settings apply).
	$(GO) test -tags loadbench -run '^TestClusterBench$$' -count 1 -v -timeout 40m ./test/load

##@ Tools

LOCALBIN ?= $(CURDIR)/bin
$(LOCALBIN):
	mkdir -p $(LOCALBIN)

CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)

CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
KUSTOMIZE_VERSION ?= v5.8.1
HELM_VERSION ?= v3.22.0

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into ./bin.
$(CONTROLLER_GEN): | $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint into ./bin.
$(GOLANGCI_LINT): | $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Install kustomize into ./bin.
$(KUSTOMIZE): | $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: helm
helm: $(HELM) ## Install helm into ./bin.
$(HELM): | $(LOCALBIN)
	$(call go-install-tool,$(HELM),helm.sh/helm/v3/cmd/helm,$(HELM_VERSION))

# go-install-tool installs package $(2) at version $(3) as $(1), a
# version-suffixed name, with a plain-named symlink beside it.
define go-install-tool
@[ -f "$(1)" ] || { \
	set -e; \
	echo "Installing $(2)@$(3)"; \
	rm -f "$(1)"; \
	GOBIN="$(LOCALBIN)" $(GO) install "$(2)@$(3)"; \
	mv "$(LOCALBIN)/$$(basename "$$(echo "$(1)" | sed 's/-$(3)$$//')")" "$(1)"; \
	}; \
	ln -sf "$$(realpath "$(1)")" "$$(echo "$(1)" | sed 's/-$(3)$$//')"
endef
