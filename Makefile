# Two entry points on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install browser demo test test-fast lint bench clean

$(BIN)/scalinglab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/scalinglab

demo: install
	$(BIN)/scalinglab demo

# The report's browser test needs Debian's chromium and chromedriver; installed here when missing.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1)) || \
	  echo "warning: could not install chromium; the browser test will be skipped"

# Two pytest workers (one per core of a 2-core machine); each test module stays on one worker (its fixtures are
# built once) and the tests that start Ray share one worker (tests/conftest.py).
test: install browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# The quick subset (under a minute): everything but the tests marked slow. `make test` runs them all.
test-fast: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python benchmarks/bench_fit.py

clean:
	rm -rf $(VENV) scalinglab-demo .pytest_cache .ruff_cache
