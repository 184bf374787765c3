# Every target here is what CI runs (.ci/run calls `make lint`, `make test` and `make demo`),
# except `make ui`, which serves the demo's store with the dashboard until stopped.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-py test-js test-slow lint bench bench-js demo ui screenshots clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The JavaScript client (clients/js): its packages from the committed lock file (better-sqlite3
# builds from source), its tests with Node's runner against a real server of .venv.
JS_DIR   := clients/js
JS_STAMP := $(JS_DIR)/node_modules/.installed

$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund
	touch $(JS_STAMP)

test: test-py test-js

test-py: $(STAMP)
	$(PY) -m pytest -q

test-js: $(STAMP) $(JS_STAMP)
	cd $(JS_DIR) && npm test

test-slow: $(STAMP) $(JS_STAMP)
	$(PY) -m pytest -q -m slow
	cd $(JS_DIR) && LOG_COLLECTOR_SLOW=1 npm test

lint: $(STAMP)
	$(PY) -m ruff check log_collector tests scripts
	$(PY) -m ruff format --check log_collector tests scripts
	$(VENV)/bin/lint-imports --no-cache

bench: $(STAMP) $(JS_STAMP)
	$(PY) scripts/bench_client.py
	$(PY) scripts/bench_server.py
	$(PY) scripts/bench_ask.py
	cd $(JS_DIR) && npm run bench

bench-js: $(STAMP) $(JS_STAMP)
	cd $(JS_DIR) && npm run bench

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
	rm -rf $(VENV) dist build .pytest_cache .hypothesis $(JS_DIR)/node_modules
