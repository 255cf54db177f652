# Two commands for a newcomer: `make run` (demo on an embedded SQLite file) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install catalogs browser messages run test lint typecheck pytest bench migrations clean

CHROMIUM := /usr/bin/chromium
BROWSER_SETUP := tests/browser
AXE := $(BROWSER_SETUP)/node_modules/axe-core/axe.min.js

CATALOGS := $(patsubst %.po,%.mo,$(wildcard templates/locale/*/LC_MESSAGES/messages.po))

install: $(STAMP) catalogs

catalogs: $(CATALOGS)

templates/locale/%/LC_MESSAGES/messages.mo: templates/locale/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel compile --statistics -i $< -o $@

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tracker needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The browser tests drive Debian's Chromium (Playwright cannot download its own here) and inject axe-core.
browser: $(CHROMIUM) $(AXE)

$(CHROMIUM):
	@echo "installing Debian's chromium for the browser tests"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null

$(AXE): $(BROWSER_SETUP)/package.json $(BROWSER_SETUP)/package-lock.json
	cd $(BROWSER_SETUP) && npm ci --no-audit --no-fund --silent
	touch $@

run: install
	$(BIN)/tracker migrate
	$(BIN)/tracker demo --if-empty
	$(BIN)/tracker serve

lint: install
	$(BIN)/ruff check tracker notifications tests
	$(BIN)/ruff format --check tracker notifications tests
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy tracker notifications tests

# One worker per core, each with its own databases; a worker that is free takes the next test, so
# the few long ones (the API contract, the crash tests) do not queue behind each other.
pytest: install browser
	$(BIN)/python -m pytest --numprocesses auto --dist worksteal

test: lint typecheck pytest

bench: install
	$(BIN)/python -m tracker.bench

# After changing customer-facing text: extract it and update every catalog, then translate what is new.
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg --no-location --omit-header -k _ -k gettext -k ngettext:1,2 -o templates/locale/messages.pot .
	$(BIN)/pybabel update -D messages -i templates/locale/messages.pot -d templates/locale --no-fuzzy-matching

# Regenerate migrations after a model change (commit the result).
migrations: install
	$(BIN)/tortoise makemigrations

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts $(BROWSER_SETUP)/node_modules
