# Every target here is what CI runs (.ci/run calls `make lint`, `make test` and `make demo`),
# except `make ui`, which serves the demo's store with the dashboard until stopped.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-slow lint bench demo ui screenshots clean

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
	$(PY) scripts/bench_ask.py

demo: $(STAMP)
	$(PY) scripts/demo.py

# The store scripts/demo.py leaves behind, and where `make ui` serves it.
DEMO_DB := .demo/logs.db
UI_PORT ?= 8000

ui: $(STAMP)
	@test -f $(DEMO_DB) || { echo "ui: no $(DEMO_DB) yet: run 'make demo' first"; exit 1; }
	@echo "dashboard: http://127.0.0.1:$(UI_PORT)/ui/  (Ctrl-C stops the server)"
	$(PY) -m log_collector serve --db sqlite:///$(DEMO_DB) --port $(UI_PORT) --no-access-log

# The dashboard's pictures in docs/screenshots (the README shows them), taken by its browser
# tests; a plain `make test` keeps its pictures in a temporary folder.
screenshots: $(STAMP)
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q tests/ui -k screenshot

clean:
	rm -rf $(VENV) dist build .pytest_cache .hypothesis
