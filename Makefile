# mpenc: common tasks. `make test` is what CI runs (through .ci/run).

GO        ?= go
FUZZTIME  ?= 2m
BENCHTIME ?= 1s
PKGS      := ./...

.PHONY: demo test unit sim lint integration integration-prosody integration-ejabberd xmpp-measure fuzz bench tidy

## demo: an encrypted conversation with a bot on this machine: builds the
## client and the bot, starts a throw-away Prosody (installing it when
## missing; needs root), a bot in a room, and the client in that room.
## Everything is stopped and deleted when the client exits.
demo:
	GO=$(GO) ./scripts/demo.sh

## test: everything CI checks: formatting, vet, all tests, and the XMPP
## integration tests against a throw-away Prosody and ejabberd.
test: lint unit sim integration

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt: unformatted files:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## unit: the Go tests under the race detector (vectors read from testdata/;
## the simulator with its default 100 seeds each way).
unit:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## sim: the session simulator's seeded runs, 1,000 of each scenario
## (honest, hostile, server restarts, silent occupants) and its regression
## seeds, without the race detector (plain `go test` runs 100 of each).
## SIMSEEDS=N runs another number. About 20 minutes on 2 shared cores.
## Replay one seed: go test ./session -run '^TestSimulator$$' -sim.seed=N -v
SIMSEEDS ?= 1000
sim:
	$(GO) test -count=1 -timeout 45m -run '^TestSimulator' ./session/ -sim.seeds=$(SIMSEEDS)

## integration: the tests behind the `integration` build tag, against a
## throw-away Prosody and then a throw-away ejabberd on loopback, each
## started and always stopped by integration/run.sh (which installs the
## Debian package when missing; that needs root). One server only:
## make integration-prosody, make integration-ejabberd. Against another
## server: set the MPENC_XMPP_* variables of docs/XMPP.md and run the
## `go test` line yourself.
INTEGRATION_TEST = $(GO) test -tags integration -race -count=1 -timeout 15m ./integration/...
integration:
	$(GO) vet -tags integration ./integration/...
	MPENC_XMPP_SERVER=prosody ./integration/run.sh $(INTEGRATION_TEST)
	MPENC_XMPP_SERVER=ejabberd ./integration/run.sh $(INTEGRATION_TEST)

integration-prosody integration-ejabberd:
	$(GO) vet -tags integration ./integration/...
	MPENC_XMPP_SERVER=$(@:integration-%=%) ./integration/run.sh $(INTEGRATION_TEST)

## xmpp-measure: plain groupchat latency and throughput (docs/XMPP.md), the history service over XMPP (docs/PERFORMANCE.md).
xmpp-measure:
	MPENC_XMPP_MEASURE=1 ./integration/run.sh $(GO) test -tags integration -run '^TestIntegrationMeasure' -count=1 -v -timeout 30m ./integration/...

## fuzz: run every fuzz target for FUZZTIME each (default 2m).
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## bench: all benchmarks, primitives included, in one run.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

tidy:
	$(GO) mod tidy
