# The README's two commands: `make run` and `make test`. Each creates .venv and installs into
# it on a fresh machine, and is quick when already installed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test test-fast test-quick lint bench clean assets screenshots

install: $(STAMP)

$(STAMP): pyproject.toml package.json
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# axe-core (package.json's pinned version) for the browser tests' accessibility checks;
	@# the app itself needs no Node. Without npm those tests skip (and fail in CI, which
	@# promises them).
	@if command -v npm >/dev/null 2>&1; then npm install --silent --no-save >/dev/null \
		|| { echo "npm install failed: the accessibility tests need axe-core"; exit 1; }; \
	else echo "npm not found: the browser tests' accessibility checks (axe-core) will skip"; fi
	@touch $(STAMP)

# The whole product on the embedded default (SQLite under ./var, mail to files in ./var/mail):
# the demo council and its alerts, then the web app and the flows on their schedules until
# Ctrl-C. Point a browser at http://127.0.0.1:8000/ and sign in as a demo user.
HOST ?= 127.0.0.1
PORT ?= 8000
run: install
	DRP_BASE_URL=$${DRP_BASE_URL:-http://$(HOST):$(PORT)} $(BIN)/drp demo
	@echo
	$(BIN)/drp alert list --as irom.khan
	@echo
	DRP_BASE_URL=$${DRP_BASE_URL:-http://$(HOST):$(PORT)} $(BIN)/drp serve --host $(HOST) --port $(PORT)

# GOV.UK Frontend's compiled CSS and JS, vendored into drp/web/static/govuk (committed: the app
# needs no Node). For maintainers, when the pinned version changes (drp/web/assets/build.sh,
# matched to govuk-frontend-jinja in pyproject.toml); needs npm.
assets:
	bash drp/web/assets/build.sh

# The README's screenshots, renewed from the demo council in Debian's Chromium.
screenshots: install
	$(BIN)/python docs/screenshots/take.py

lint: install
	$(BIN)/ruff check drp notifications flows tests
	$(BIN)/mypy

# Everything. Tests needing PostgreSQL (DRP_TEST_POSTGRES_URL), Chromium or Graphviz skip where
# those are missing and the summary says why; with DRP_TEST_STRICT=1 (.ci/run) they fail instead.
# Each file (or, in the files that allow it, each test) goes whole to one of three workers,
# longest first (tests/conftest.py SPLIT and LONGEST_FIRST; --no-loadscope-reorder keeps that
# order instead of xdist's "most tests first"). Three on two cores: a third worker uses the time
# the others spend waiting on Prefect, Chromium and the commands they run (7:04 where two took
# 8:14 on the same host; a fourth, 6:56). Lint and type checks run beside the tests (their
# output after the tests'): either failing fails `make test`.
# The run ends naming its 15 slowest tests (the suite's time is a bound: bench/README.md).
WORKERS ?= 3
XDIST := -n $(WORKERS) --dist loadgroup --no-loadscope-reorder
test: install
	@mkdir -p var; $(MAKE) --no-print-directory lint > var/lint.log 2>&1 & lint=$$!; \
	$(BIN)/pytest -q $(XDIST) --durations=15; tests=$$?; \
	wait $$lint; linted=$$?; echo "== make lint"; cat var/lint.log; \
	if [ $$linted -ne 0 ]; then echo "make test: lint or type checks failed (above)"; fi; \
	[ $$tests -eq 0 ] && [ $$linted -eq 0 ]

# The inner loop: no lint, no tests marked slow (see pyproject.toml), stop at the first
# failure; narrow it with T, e.g. `make test-fast T=tests/test_alerts.py` (one process: a
# worker's start-up costs more than it saves on a file). Not for CI.
T ?=
test-fast: install
	$(BIN)/pytest -q $(if $(T),,$(XDIST)) -m "not slow" -x $(T)

# The same after lint and type checks.
test-quick: lint test-fast

# Benchmarks print their figures and ratios and write bench/results.json (BENCH_SCALE=small:
# a quick run, into bench/results-small.json). PostgreSQL is measured too where
# DRP_BENCH_POSTGRES_URL answers (by default the local server CI uses). Every benchmark runs
# even when one misses a bound; each prints the bound it missed, and the run then exits 1
# naming the benchmarks that missed.
BENCH_PG ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
BENCHES := timescales peer_spiff commands web digest themes delivery report
bench: install
	@cd bench && export DRP_BENCH_POSTGRES_URL=$${DRP_BENCH_POSTGRES_URL-$(BENCH_PG)}; \
	missed=""; for b in $(BENCHES); do echo "== bench/$$b.py"; \
		../$(BIN)/python $$b.py || missed="$$missed $$b"; done; \
	if [ -n "$$missed" ]; then echo "make bench: bounds missed by:$$missed (each says which above)"; \
		exit 1; fi; echo "make bench: every bound met"

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
