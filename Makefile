# ibu: fleet-scale image-based upgrades. `make demo` and `make test` are the
# two set-up commands of the README; keep both working on a fresh machine.

GO      ?= go
BIN     ?= $(CURDIR)/bin
# Every module of the workspace, as ./dir/... patterns.
MODULES  = $(shell $(GO) list -f '{{.Dir}}/...' -m)
SHARED   = ./shared/...
OTHERS   = $(filter-out $(CURDIR)/shared/...,$(MODULES))
TESTFLAGS ?=

.PHONY: all build test test-shared test-others lint fmt vet bench fuzz demo tidy clean kube-bins images chart

all: lint build test

## build: every binary (each module's cmd/*) into bin/
build:
	@mkdir -p $(BIN)
	@for d in $$(find . -path ./bin -prune -o -type d -path '*/cmd/*' -print | sort); do \
		echo "go build $$d -> $(BIN)/$$(basename $$d)"; \
		$(GO) build -o $(BIN)/$$(basename $$d) $$d || exit 1; \
	done

## test: every module's tests; shared (the concurrent plumbing) under -race
test: test-shared test-others

## kube-bins: kube-apiserver and etcd for the tests that need a real API
## server (shared/testkit/kubetest), built from test/kube/bins (a module outside
## go.work) into bin/kube/. Cold about 6 min on 2 cores; skipped when current.
KUBE_VERSION  = v1.35.4
KUBE_BIN     ?= $(CURDIR)/bin/kube
KUBE_LDFLAGS  = -s -w -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35 \
	-X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$(KUBE_VERSION)
kube-bins: $(KUBE_BIN)/kube-apiserver $(KUBE_BIN)/etcd

$(KUBE_BIN)/kube-apiserver: test/kube/bins/go.mod test/kube/bins/go.sum
	cd test/kube/bins && GOWORK=off $(GO) build -trimpath -ldflags '$(KUBE_LDFLAGS)' -o $@.tmp k8s.io/kubernetes/cmd/kube-apiserver && mv $@.tmp $@

$(KUBE_BIN)/etcd: test/kube/bins/go.mod test/kube/bins/go.sum
	cd test/kube/bins && GOWORK=off $(GO) build -trimpath -ldflags '-s -w' -o $@.tmp go.etcd.io/etcd/server/v3 && mv $@.tmp $@

test-shared: kube-bins
	$(GO) test -race -count=1 -timeout 20m $(TESTFLAGS) $(SHARED)

test-others: kube-bins
	$(GO) test -count=1 -timeout 20m $(TESTFLAGS) $(OTHERS)

## lint: gofmt and go vet over the whole workspace
lint: fmt vet

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(MODULES)

## bench: performance figures and ratios (never timed unit tests)
bench: kube-bins
	$(GO) test -run '^$$' -bench BenchmarkValidate -benchmem -count 1 ./shared/events/
	$(GO) test -run '^$$' -bench BenchmarkThroughput -benchtime 20000x -count 1 ./shared/bus/
	$(GO) test -run '^$$' -bench BenchmarkPrepRealOstree -benchtime 3x -count 1 ./node-agent/bench/
	IBU_BENCH_AGENTS=$${IBU_BENCH_AGENTS:-1000} $(GO) test -run '^$$' -bench BenchmarkFleetSim -benchtime 1x -count 1 -timeout 20m ./node-agent/bench/
	$(GO) run ./test/cmd/fleetbench --clusters $${IBU_FLEET_SIZES:-100,1000}
	$(GO) test -run '^$$' -bench BenchmarkDashboard -benchtime 1x -count 1 ./test/observability/
	$(GO) test -run '^$$' -bench BenchmarkRound -benchtime 50x -count 1 ./services/health/stability/
	$(GO) test -run '^$$' -bench 'BenchmarkPrecache(Node|Fleet)$$' -benchtime 1x -count 1 ./services/precache/pullplan/
	IBU_BENCH_SPOKES=$${IBU_BENCH_SPOKES:-2000} $(GO) test -run '^$$' -bench BenchmarkHubSpokes -benchtime 1x -count 1 -timeout 20m ./test/hubbench/
	$(GO) test -run '^$$' -bench 'BenchmarkSeedBuild|BenchmarkArtifactHop' -benchtime 1x -count 1 -timeout 20m ./services/seed-builder/seedbuild/

## fuzz: run the decoders' fuzzers for a while (their seed corpora run in `make test`)
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeStructured$$' -fuzztime $(FUZZTIME) ./shared/events/
	$(GO) test -run '^$$' -fuzz '^FuzzFromMsg$$' -fuzztime $(FUZZTIME) ./shared/bus/

## demo: the main job on an embedded NATS, in one process
demo:
	$(GO) run ./demo/cmd/ibu-demo

## images: an OCI image (linux/amd64+arm64 index) of every service and the
## agent, reproducible, into $(BIN)/images/<name> or, with REGISTRY=host/path,
## pushed there (credentials from the docker config; INSECURE=1 for HTTP)
REGISTRY ?=
images:
	$(GO) run ./deploy/cmd/ibu-images --out $(BIN)/images $(if $(REGISTRY),--registry $(REGISTRY)) $(if $(INSECURE),--insecure)

## chart: lint charts/ibu and charts/ibu-agent with the Helm SDK (templates
## and values.schema.json) and package them into $(BIN)/charts
chart:
	$(GO) run ./deploy/cmd/ibu-chart --charts charts --out $(BIN)/charts

## tidy: go mod tidy in every module (tidy ignores go.work; each module has a replace for shared)
tidy:
	@for m in $$($(GO) list -f '{{.Dir}}' -m); do (cd $$m && GOWORK=off $(GO) mod tidy) || exit 1; done

clean:
	rm -rf $(BIN)
