# backfill: make demo, make test. See README.md.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.Version=$(VERSION) -X main.Commit=$(COMMIT)
BIN     := bin/backfill

.PHONY: all build demo test test-short sdkcheck lint tidy bench bench-shapes bench-skew emulator storage-servers clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/backfill

# The first command of the README: the real pipeline on the bundled fixtures
# against an in-process emulator. No API key, no network.
demo: build
	./$(BIN) demo

# Every test, with the race detector, plus the SDK conformance module. The
# storage end-to-end suite (internal/storagee2e) runs against the servers
# storage-servers installs; the ones that could not be installed are named
# and skipped.
test: storage-servers
	$(GO) vet ./...
	BACKFILL_STORAGE_TOOLS=$(TOOLS) $(GO) test -race -timeout 15m ./...
	cd sdkcheck && $(GO) test -race -timeout 5m ./...

test-short:
	$(GO) test -short ./...

sdkcheck:
	cd sdkcheck && $(GO) test -race ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)
	$(GO) vet ./...

tidy:
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

# Benchmarks (bench/ is a separate module, never part of `make test`).
# Datasets are generated once into .bench/ (git-ignored); the tables of
# BENCHMARKS.md are rewritten between their markers. Knobs:
#   BENCH_SIZES=1000000            quick mode (default: 1000000,5000000)
#   BENCH_FORMATS=jsonl,parquet    subset of jsonl,jsonl.gz,csv,parquet
#   BENCH_ARGS='-sdk=false'        extra flags of `bench throughput` / `bench skew`
#   BENCH_SKEW_ARGS='-top 4200 -zipf 1.2 -eps 50 -sdk-cap 3m'
#   BENCH=quick                    1M events only, smaller bucket shapes, SDK on two shapes
#   BENCH_SHAPE_ARGS='-only objects' extra flags of `bench shapes`
ifeq ($(BENCH),quick)
BENCH_SIZES   ?= 1000000
BENCH_SHAPE_ARGS ?= -quick
endif
BENCH_SIZES   ?= 1000000,5000000
BENCH_SHAPE_ARGS ?=
BENCH_FORMATS ?= jsonl,jsonl.gz,csv,parquet
BENCH_ARGS    ?=
BENCH_SKEW_ARGS ?=

bench: build
	cd bench && $(GO) build -o ../bin/bench ./cmd/bench && ../bin/bench throughput -sizes $(BENCH_SIZES) -formats $(BENCH_FORMATS) $(BENCH_ARGS) \
		&& ../bin/bench shapes $(BENCH_SHAPE_ARGS) $(BENCH_ARGS)

# Only the bucket shapes of issue 17 (many objects, gzip mix, derived ids, event sizes).
bench-shapes: build
	cd bench && $(GO) build -o ../bin/bench ./cmd/bench && ../bin/bench shapes $(BENCH_SHAPE_ARGS) $(BENCH_ARGS)

bench-skew: build
	cd bench && $(GO) build -o ../bin/bench ./cmd/bench && ../bin/bench skew $(BENCH_SKEW_ARGS) $(BENCH_ARGS)

emulator: build
	./$(BIN) emulator --addr 127.0.0.1:8080

# MinIO, fake-gcs-server and Azurite, pinned, from the Go module proxy and
# npm into the git-ignored $(TOOLS) (kept between runs).
TOOLS ?= $(CURDIR)/.tools
storage-servers:
	@BACKFILL_STORAGE_TOOLS=$(TOOLS) GO=$(GO) bash scripts/storage-servers.sh

clean:
	rm -rf bin backfill-demo
