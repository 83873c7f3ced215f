# Junction: `make run` (quick start) and `make test` (whole suite) are the two commands.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 3000
# The console of `make run`: one line per request (text), json, or none.
LOG_FORMAT ?= text

.PHONY: run test lint bench venv dev-venv clean agent-clis

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed
dev-venv: $(VENV)/.dev-installed

## Set up and run the gateway on embedded defaults (SQLite, no Redis) with config.yaml or the demo config.
run: venv
	$(PY) manage.py bootstrap
	$(PY) manage.py serve --host $(HOST) --port $(PORT) --log-format $(LOG_FORMAT)

## The real agent CLIs the matrix test runs (pinned in tests/agent_clis/package-lock.json), cached in
## .cache/agents; without node/npm the test skips with a message instead.
AGENTS_DIR ?= .cache/agents
$(AGENTS_DIR)/.installed: tests/agent_clis/package.json tests/agent_clis/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  mkdir -p $(AGENTS_DIR) && cp tests/agent_clis/package.json tests/agent_clis/package-lock.json $(AGENTS_DIR)/ \
	  && cd $(AGENTS_DIR) && npm install --no-audit --no-fund --loglevel=error && touch .installed; \
	else echo "npm not found: the agent CLI matrix test will be skipped"; fi

agent-clis: $(AGENTS_DIR)/.installed

## Set up, lint and run the whole test suite.
test: lint agent-clis
	$(PY) -m pytest -q

## Lint (ruff.toml: pycodestyle, pyflakes, lines <= 110 characters) and the codec contract
## (mypy.ini: every codec satisfies providers/codecs/base.Codec); a few seconds.
lint: dev-venv
	$(VENV)/bin/ruff check .
	$(PY) -m mypy providers/codecs/contract.py

## Gateway vs. direct upstream, same run (see tests/bench.py).
bench: dev-venv
	$(PY) -m tests.bench --seconds 5 --requests 1000 --translated --floor --workers $$(nproc) --rounds 3

clean:
	rm -rf $(VENV) data
