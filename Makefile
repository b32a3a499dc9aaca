# ibu: fleet-scale image-based upgrades. `make demo` and `make test` are the
# two set-up commands of the README; keep both working on a fresh machine.

GO      ?= go
BIN     ?= $(CURDIR)/bin
# Every module of the workspace, as ./dir/... patterns.
MODULES  = $(shell $(GO) list -f '{{.Dir}}/...' -m)
SHARED   = ./shared/...
OTHERS   = $(filter-out $(CURDIR)/shared/...,$(MODULES))
TESTFLAGS ?=

.PHONY: all build test test-shared test-others lint fmt vet bench fuzz demo tidy clean

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

test-shared:
	$(GO) test -race -count=1 -timeout 20m $(TESTFLAGS) $(SHARED)

test-others:
	$(GO) test -count=1 -timeout 20m $(TESTFLAGS) $(OTHERS)

## lint: gofmt and go vet over the whole workspace
lint: fmt vet

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(MODULES)

## bench: performance figures and ratios (never timed unit tests)
bench:
	$(GO) test -run '^$$' -bench BenchmarkValidate -benchmem -count 1 ./shared/events/
	$(GO) test -run '^$$' -bench BenchmarkThroughput -benchtime 20000x -count 1 ./shared/bus/
	$(GO) test -run '^$$' -bench BenchmarkPrepRealOstree -benchtime 3x -count 1 ./node-agent/bench/
	IBU_BENCH_AGENTS=$${IBU_BENCH_AGENTS:-1000} $(GO) test -run '^$$' -bench BenchmarkFleetSim -benchtime 1x -count 1 -timeout 20m ./node-agent/bench/
	$(GO) run ./test/cmd/fleetbench --clusters $${IBU_FLEET_SIZES:-100,1000}
	$(GO) test -run '^$$' -bench 'BenchmarkSeedBuild|BenchmarkArtifactHop' -benchtime 1x -count 1 -timeout 20m ./services/seed-builder/builder/

## fuzz: run the decoders' fuzzers for a while (their seed corpora run in `make test`)
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeStructured$$' -fuzztime $(FUZZTIME) ./shared/events/
	$(GO) test -run '^$$' -fuzz '^FuzzFromMsg$$' -fuzztime $(FUZZTIME) ./shared/bus/

## demo: the main job on an embedded NATS, in one process
demo:
	$(GO) run ./cli/cmd/ibuctl demo

## tidy: go mod tidy in every module (tidy ignores go.work; each module has a replace for shared)
tidy:
	@for m in $$($(GO) list -f '{{.Dir}}' -m); do (cd $$m && GOWORK=off $(GO) mod tidy) || exit 1; done

clean:
	rm -rf $(BIN)
