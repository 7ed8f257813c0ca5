# fieldsync developer tasks. `make test` and `make demo` set everything up themselves.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The hub's tests run against this PostgreSQL too (a fresh database per run on it).
export FIELDSYNC_TEST_POSTGRES ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: test lint typecheck bench bench-hub bench-load bench-sync demo clean chromium faketime openssl-headers

# setup.py builds crypto/_speedups.c in place (optional: without a compiler, Python alone runs)
$(STAMP): pyproject.toml setup.py crypto/_speedups.c | openssl-headers
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# crypto/_speedups.c hashes with OpenSSL's libcrypto (the one Python's hashlib uses): its headers.
openssl-headers:
	@test -f /usr/include/openssl/evp.h || dpkg -s libssl-dev >/dev/null 2>&1 || { echo "installing Debian's libssl-dev for crypto/_speedups.c"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev >/dev/null; }

# The browser tests drive Debian's Chromium through Playwright (no browser download).
CHROMIUM ?= /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The clock-fault tests (tests/resilience/test_clock_faults.py) shift the laptops' clocks with libfaketime.
faketime:
	@dpkg -s faketime >/dev/null 2>&1 || { echo "installing Debian's faketime for the clock-fault tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null; }

test: $(STAMP) chromium faketime
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/bench_core.py

# N devices against gunicorn on PostgreSQL and SQLite; BENCH_ARGS="--devices 40 --rounds 5" for more
bench-hub: $(STAMP)
	$(PY) bench/bench_hub.py $(BENCH_ARGS)

# 40 devices pushing and pulling at once on two gunicorn processes sharing one PostgreSQL; nothing may be lost
bench-load: $(STAMP)
	$(PY) bench/bench_load.py $(BENCH_ARGS)

# a laptop back online after a shift, and delta sync against a 10,000- and a 1,000,000-change hub
bench-sync: $(STAMP)
	$(PY) bench/bench_sync.py $(BENCH_ARGS)

demo: $(STAMP)
	$(PY) -m field_client.demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info .demo crypto/_speedups.*.so
