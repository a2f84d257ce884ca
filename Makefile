# squall — build, test, run and benchmark. `make help` lists the targets.
GO        ?= go
BIN       := bin
PKGS      := ./...
TEST_TIMEOUT ?= 14m
FUZZTIME  ?= 60s
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
LDFLAGS   := -X github.com/squall-dev/squall/internal/version.Version=$(VERSION) \
             -X github.com/squall-dev/squall/internal/version.commit=$(COMMIT)
export TESTCONTAINERS_RYUK_DISABLED := true
# The end-to-end tests on containers (e2e/) run without the race detector: their subject is the
# containers and the network between them, the code they drive is race-tested in its own packages,
# and the detector slows the controller in the test process three- to four-fold (merging three
# agents' streams), which make test's time budget cannot afford on two loaded cores.
E2E_PKGS  := ./e2e/...
RACE_PKGS  = $(filter-out %/e2e,$(shell $(GO) list $(PKGS)))
# The packages whose tests are computation alone: no load, no child processes or containers, no
# bound on how long anything takes (rendering, parsing, grading, statistics). `make test` runs them
# beside the end-to-end tests, which spend most of their time waiting on containers; every other
# package runs alone, one after the other (their load tests must not overlap). A new package runs
# alone until it is named here.
CALM_PKGS := ./reports ./scenarios ./loadgen/stats ./loadgen/telemetry ./ci/k8s ./internal/scalebench ./internal/wsframe ./refserver/protocol
CALM_IMPORTS = $(shell $(GO) list $(CALM_PKGS))
LOAD_PKGS  = $(filter-out $(CALM_IMPORTS),$(RACE_PKGS))
# Where make test builds the race-enabled test binaries (ci/race-tests.sh).
RACE_BIN  := $(BIN)/race-tests
# The interop tests' servers (harness/interop_test.go) are fetched or built once into this cache.
INTEROP_CACHE ?= $(HOME)/.cache/squall-interop
CENTRIFUGO_VERSION := v6.9.1
export SQUALL_INTEROP_CACHE := $(INTEROP_CACHE)

.PHONY: help build deps interop-deps test fuzz run bench bench-scale lint clean images ci ci-baselines

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/refserver, bin/loadgen and bin/loadgen-worker (static)
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/refserver ./cmd/refserver
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/loadgen ./cmd/loadgen
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/loadgen-worker ./cmd/loadgen-worker

IMAGE_PREFIX ?= squall
IMAGE_TAG    ?= $(VERSION)

images: build deps ## build the container images (FROM scratch, no registry) tagged $(IMAGE_TAG) and check each answers --version
	ci/docker/build-images.sh $(IMAGE_TAG) $(IMAGE_PREFIX)
	ci/docker/check-images.sh $(IMAGE_TAG) $(IMAGE_PREFIX)

DEPS_PKGS := redis-server nginx haproxy chromium

deps: ## install redis-server (cluster tests), nginx and haproxy (proxy tests), chromium (report.html in a browser) from Debian's packages when missing; never fails
	@missing=; for p in $(DEPS_PKGS); do command -v $$p >/dev/null 2>&1 || [ -x /usr/sbin/$$p ] || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "deps:$$missing missing and apt-get unavailable: the tests needing them will skip"; exit 0; fi; \
	SUDO=; if [ "$$(id -u)" != 0 ]; then \
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else \
		echo "deps:$$missing missing and no root to install them: the tests needing them will skip"; exit 0; fi; fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	for p in $$missing; do \
		if ! apt-cache show $$p >/dev/null 2>&1; then $$SUDO apt-get update -qq >/dev/null 2>&1 || true; fi; \
		if $$SUDO apt-get install -y -qq --no-install-recommends $$p >/dev/null 2>&1; then \
			echo "deps: installed $$p from Debian's packages"; else \
			echo "deps: could not install $$p: the tests needing it will skip"; fi; \
	done; exit 0

interop-deps: ## build the interop tests' servers once into $(INTEROP_CACHE) (gorilla chat example, a Socket.IO v4 server, Centrifugo $(CENTRIFUGO_VERSION): ~6 min the first time) and install node-ws; never fails
	@mkdir -p $(INTEROP_CACHE)/bin
	@if [ ! -x $(INTEROP_CACHE)/bin/gorilla-chat ]; then \
		if $(GO) build -trimpath -o $(INTEROP_CACHE)/bin/gorilla-chat github.com/gorilla/websocket/examples/chat; then \
			echo "interop-deps: built gorilla/websocket's chat example"; else \
			echo "interop-deps: could not build gorilla/websocket's chat example: its test builds it or skips"; fi; fi
	@if [ ! -x $(INTEROP_CACHE)/bin/socketio-server ]; then \
		if (cd harness/testdata/interop/socketio && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(INTEROP_CACHE)/bin/socketio-server .); then \
			echo "interop-deps: built the Socket.IO v4 test server (github.com/zishang520/socket.io)"; else \
			echo "interop-deps: could not build the Socket.IO test server: its interop test will skip"; fi; fi
	@if [ "$$(cat $(INTEROP_CACHE)/bin/centrifugo.version 2>/dev/null)" != "$(CENTRIFUGO_VERSION)" ]; then \
		echo "interop-deps: building Centrifugo $(CENTRIFUGO_VERSION) (once; a few minutes)"; \
		if GOBIN=$(INTEROP_CACHE)/bin CGO_ENABLED=0 $(GO) install -trimpath -ldflags '-s -w' \
			github.com/centrifugal/centrifugo/v6@$(CENTRIFUGO_VERSION); then \
			echo "$(CENTRIFUGO_VERSION)" > $(INTEROP_CACHE)/bin/centrifugo.version; else \
			rm -f $(INTEROP_CACHE)/bin/centrifugo; echo "interop-deps: could not build Centrifugo: its interop test will skip"; fi; fi
	@if [ -f /usr/share/nodejs/ws/package.json ] || ! command -v node >/dev/null 2>&1; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then echo "interop-deps: node-ws missing: its interop tests will skip"; exit 0; fi; \
	SUDO=; if [ "$$(id -u)" != 0 ]; then \
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else \
		echo "interop-deps: node-ws missing and no root to install it: its interop tests will skip"; exit 0; fi; fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	if $$SUDO apt-get install -y -qq --no-install-recommends node-ws >/dev/null 2>&1; then \
		echo "interop-deps: installed node-ws from Debian's packages"; else \
		echo "interop-deps: could not install node-ws: its interop tests will skip"; fi; exit 0

test: ## run every test with the race detector (the load tests one package at a time), then the end-to-end tests beside the calm packages
	@# The Debian packages and the interop servers (deps, interop-deps: downloads, apt, builds of
	@# their own) install in the background while every race-enabled test binary is built into
	@# $(RACE_BIN), two packages at a time (building is safe to overlap; the load tests are not),
	@# so that the runs below spend their time on tests and link nothing. Their output is shown
	@# once both are done.
	@mkdir -p $(BIN); echo "building the test binaries (-race, two packages at a time, into $(RACE_BIN); the end-to-end tests without it) while deps and interop-deps install"; \
	$(MAKE) --no-print-directory deps interop-deps >$(BIN)/test-deps.log 2>&1 & deps=$$!; \
	{ GO=$(GO) ci/race-tests.sh build $(RACE_BIN) $(RACE_PKGS) && $(GO) test -count=1 -run '^$$' $(E2E_PKGS); } >$(BIN)/test-compile.log 2>&1; compiled=$$?; \
	wait $$deps; cat $(BIN)/test-deps.log; \
	if [ $$compiled -ne 0 ]; then cat $(BIN)/test-compile.log; exit 1; fi
	@# The load tests, one package at a time (ci/race-tests.sh run: go test -race -p 1's run with
	@# the binaries built above). Then the end-to-end tests (their log is shown when they end)
	@# beside the calm packages; every package runs even when one fails.
	@echo "ci/race-tests.sh run $(RACE_BIN) $(TEST_TIMEOUT) [every package but e2e and CALM_PKGS]"; \
	GO=$(GO) ci/race-tests.sh run $(RACE_BIN) $(TEST_TIMEOUT) $(LOAD_PKGS); load=$$?; \
	echo "$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(E2E_PKGS) >$(BIN)/test-e2e.log, beside:"; \
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(E2E_PKGS) >$(BIN)/test-e2e.log 2>&1 & e2e=$$!; \
	echo "ci/race-tests.sh run $(RACE_BIN) $(TEST_TIMEOUT) $(CALM_PKGS)"; \
	GO=$(GO) ci/race-tests.sh run $(RACE_BIN) $(TEST_TIMEOUT) $(CALM_IMPORTS); calm=$$?; \
	wait $$e2e; e2e_status=$$?; echo "end-to-end tests ($(BIN)/test-e2e.log):"; cat $(BIN)/test-e2e.log; \
	[ $$load -eq 0 ] && [ $$calm -eq 0 ] && [ $$e2e_status -eq 0 ]

fuzz: ## run every fuzz target of every package for FUZZTIME each (default 60s); their seed corpora also run in `make test`
	@pkgs=$$(grep -l '^func Fuzz' $$(git ls-files --cached --others --exclude-standard '*_test.go') | xargs -n1 dirname | sort -u); \
	n=0; for dir in $$pkgs; do \
		for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | cut -d' ' -f2); do \
			echo "fuzz: ./$$dir $$t for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./$$dir || exit 1; n=$$((n+1)); \
		done; \
	done; echo "fuzz: $$n targets passed, $(FUZZTIME) each"

run: build ## run the smoke scenario against the embedded gateway (live progress, verdict table, out/smoke/result.json)
	$(BIN)/loadgen run scenarios/smoke.yaml --out out/smoke

# The CI scenario set, NAME:TIME_SCALE each: what ci/github/squall.yml and ci/gitlab/.gitlab-ci.yml run
# and gate against ci/baselines/NAME.json (a test checks the three agree). Behaviours whose SLOs hold
# on a busy runner (delivery, heartbeats, reconnection, presence); latencies are gated as headline
# figures against the baseline, with ci/gate.yaml's tolerances.
CI_SCENARIOS ?= heartbeat-mismatch:0.1 out-of-order-frames:0.1 reconnect-storm:0.1 tab-close-ghosts:0.1
CI_OUT       ?= out/ci

ci: build ## run the CI scenario set and gate each result against ci/baselines/ (as the example pipelines do); fails on a regression
	@failed=; for sc in $(CI_SCENARIOS); do name=$${sc%%:*}; scale=$${sc#*:}; \
		$(BIN)/loadgen run scenarios/$$name.yaml --time-scale $$scale --out $(CI_OUT)/$$name --progress plain; \
		code=$$?; if [ $$code -ne 0 ] && [ $$code -ne 99 ]; then echo "ci: $$name: loadgen run exited $$code"; exit $$code; fi; \
		$(BIN)/loadgen gate $(CI_OUT)/$$name/result.json --baseline ci/baselines/$$name.json --config ci/gate.yaml || failed="$$failed $$name"; \
		$(BIN)/loadgen report $(CI_OUT)/$$name/result.json --baseline ci/baselines/$$name.json --config ci/gate.yaml >/dev/null || exit 1; \
	done; if [ -n "$$failed" ]; then echo "ci: gates failed:$$failed (reports in $(CI_OUT)/NAME/report.html)"; exit 99; fi; \
	echo "ci: every gate passed (reports in $(CI_OUT)/NAME/report.html)"

ci-baselines: build ## run the CI scenario set and keep each result as its baseline in ci/baselines/ (a run that breaches an SLO is refused)
	@mkdir -p ci/baselines $(CI_OUT); for sc in $(CI_SCENARIOS); do name=$${sc%%:*}; scale=$${sc#*:}; \
		$(BIN)/loadgen run scenarios/$$name.yaml --time-scale $$scale --out $(CI_OUT)/$$name --progress plain >$(CI_OUT)/$$name.log 2>&1 || \
			{ code=$$?; tail -n 30 $(CI_OUT)/$$name.log; echo "ci-baselines: $$name exited $$code: not a baseline (run it again on a quiet machine)"; exit 1; }; \
		cp $(CI_OUT)/$$name/result.json ci/baselines/$$name.json; echo "ci-baselines: ci/baselines/$$name.json"; \
	done; echo "ci-baselines: review with git diff --stat ci/baselines and commit"

serve: build ## start the reference gateway in dev mode on 127.0.0.1:8080
	@echo "squall refserver (dev mode): ws://127.0.0.1:8080/ws?token=<JWT signed with 'squall-dev'>"
	@echo "metrics: http://127.0.0.1:8080/metrics   stop with Ctrl-C"
	$(BIN)/refserver --dev --addr 127.0.0.1:8080

bench: ## run the benchmarks (memory per connection, ramp rate)
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./refserver/... ./loadgen/...

SCALE_PLAN  ?= scenarios/scale-100k.yaml
SCALE_LABEL ?=
# The gateway's nodes run from bin/refserver, as a deployed gateway does (not from loadgen's node
# mode), and the generator's workers from bin/loadgen-worker (not from loadgen's agent mode).
SCALE_ARGS  ?= --node-binary $(BIN)/refserver --worker-binary $(BIN)/loadgen-worker
SCALE_FLAGS ?=
bench-scale: build ## scale bench: SCALE_PLAN (default the 100 000-client plan) beside a lean gorilla pair, into docs/bench.md
	CGO_ENABLED=0 $(GO) build -o $(BIN)/bench-scale ./internal/scalebench/cmd/bench-scale
	$(BIN)/bench-scale --scenario $(SCALE_PLAN) --loadgen $(BIN)/loadgen --label '$(SCALE_LABEL)' --run-args '$(SCALE_ARGS)' --doc docs/bench.md $(SCALE_FLAGS)

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean: ## remove build output
	rm -rf $(BIN)
