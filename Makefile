# mpenc: common tasks. `make test` is what CI runs (through .ci/run).

GO        ?= go
FUZZTIME  ?= 2m
BENCHTIME ?= 1s
PKGS      := ./...

.PHONY: test unit lint fuzz bench tidy

## test: everything CI checks: formatting, vet, and all tests.
test: lint unit

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt: unformatted files:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## unit: the Go tests (race detector on; vectors read from ../shared/vectors).
unit:
	$(GO) test -race -count=1 $(PKGS)

## fuzz: run every fuzz target for FUZZTIME each (default 2m).
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## bench: all benchmarks, primitives included, in one run.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

tidy:
	$(GO) mod tidy
