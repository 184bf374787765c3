# Every target here is what CI runs (.ci/run calls `make lint`, `make test` and `make demo`).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-slow lint bench demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(PY) -m ruff check log_collector tests scripts
	$(PY) -m ruff format --check log_collector tests scripts
	$(VENV)/bin/lint-imports --no-cache

bench: $(STAMP)
	$(PY) scripts/bench_client.py
	$(PY) scripts/bench_server.py

demo: $(STAMP)
	$(PY) scripts/demo.py

clean:
	rm -rf $(VENV) dist build .pytest_cache .hypothesis
