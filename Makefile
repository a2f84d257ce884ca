# squall — build, test, run and benchmark. `make help` lists the targets.
GO        ?= go
BIN       := bin
PKGS      := ./...
TEST_TIMEOUT ?= 14m
export TESTCONTAINERS_RYUK_DISABLED := true

.PHONY: help build test run bench lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/refserver and bin/loadgen (static)
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -o $(BIN)/refserver ./refserver/cmd/refserver
	@if [ -d loadgen/cmd/loadgen ] && ls loadgen/cmd/loadgen/*.go >/dev/null 2>&1; then \
		CGO_ENABLED=0 $(GO) build -o $(BIN)/loadgen ./loadgen/cmd/loadgen; fi

test: ## run every test with the race detector
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

run: build ## start the reference gateway in dev mode on 127.0.0.1:8080
	@echo "squall refserver (dev mode): ws://127.0.0.1:8080/ws?token=<JWT signed with 'squall-dev'>"
	@echo "metrics: http://127.0.0.1:8080/metrics   stop with Ctrl-C"
	$(BIN)/refserver --dev --addr 127.0.0.1:8080

bench: ## run the benchmarks (memory per connection, ramp rate)
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./refserver/... ./loadgen/...

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean: ## remove build output
	rm -rf $(BIN)
