# mlab: build, demo, test, bench.
#   make demo   runs the baseline agent on a built-in task through MCP and prints its score
#   make test   runs every test (unit and end-to-end), the hostile suite included
#   make test-hostile  runs only the attacks (TestHostile*), contained

PYTHON ?= /usr/bin/python3
GO     ?= go
BIN    := bin/mlab
TASK   ?= tabular-classification
DEBIAN_PACKAGES := python3 python3-numpy python3-pandas python3-sklearn python3-torch python3-xgboost bubblewrap util-linux patch

.PHONY: all build demo test test-hostile bench deps image clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/mlab

# deps checks what scripts and tests need: Debian's python3 with numpy, pandas
# and scikit-learn, bubblewrap for the sandbox jail, prlimit for rlimits. As
# root on Debian it installs what is missing; otherwise it says what to install.
deps:
	@if $(PYTHON) -c 'import numpy, pandas, sklearn, torch, xgboost' >/dev/null 2>&1 && command -v bwrap >/dev/null && command -v prlimit >/dev/null && command -v patch >/dev/null; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(DEBIAN_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEBIAN_PACKAGES) >/dev/null; \
	else \
		echo "missing dependencies: need $(PYTHON) with numpy, pandas, scikit-learn, torch and xgboost, plus bwrap, prlimit and patch." >&2; \
		echo "on Debian: sudo apt-get install $(DEBIAN_PACKAGES)" >&2; \
		exit 1; \
	fi

# image builds the docker runtime image offline from Debian packages
# (debootstrap + docker import); an image with the same inputs is reused.
# VARIANT=full adds torch and xgboost.
VARIANT ?= base
image: build
	./$(BIN) image build --variant $(VARIANT)

demo: deps build
	./$(BIN) run --task $(TASK) --agent baseline --python $(PYTHON)

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 45m -skip Hostile ./...
	$(MAKE) test-hostile

# The attacks on the sandboxes and the eval run in a pids and memory cgroup
# and with TMPDIR (where local sandboxes live) on a size-capped tmpfs of
# their own, so a regression cannot take the machine down with it.
test-hostile: deps
	.ci/contain $(GO) test -count=1 -timeout 30m -run Hostile ./...

# Each benchmark runs beside its baseline in the same run; the counts are
# sized so the ratios are stable on a 2-core machine.
bench: deps
	$(GO) test -run '^$$' -bench 'ToolCall' -benchtime 500x ./server
	$(GO) test -run '^$$' -bench 'HTTPCalls|Handler' -benchtime 10000x ./server
	$(GO) test -run '^$$' -bench . -benchtime 40x ./sandbox/docker
	$(GO) test -run '^$$' -bench Exec -benchtime 300x ./sandbox/local
	$(GO) test -run '^$$' -bench Fork -benchtime 10x ./sandbox/local
	$(GO) test -run '^$$' -bench . -benchtime 200x ./runlog

clean:
	rm -rf bin
