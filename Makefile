# LeanOps developer entry points: `make run`, `make test`, `make bench`.
# The venv is rebuilt only when a requirements file changes (stamp files named by their hash).

PYTHON ?= python3.11
VENV   := .venv
PORT   ?= 8501
API_PORT ?= 8000
PYTEST_ARGS ?= -n auto --dist loadfile  # one process per core; a test file stays on one worker

REQ_HASH := $(shell cat requirements.txt | sha256sum | cut -c1-16)
DEV_HASH := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
REQ_STAMP := $(VENV)/.installed-$(REQ_HASH)
DEV_STAMP := $(VENV)/.installed-dev-$(DEV_HASH)

.PHONY: run test bench

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(REQ_STAMP): | $(VENV)/bin/python
	$(VENV)/bin/pip install -r requirements.txt
	touch $@

$(DEV_STAMP): | $(VENV)/bin/python
	$(VENV)/bin/pip install -r requirements-dev.txt
	touch $@ $(REQ_STAMP)

# The API (`cli.py serve`) runs in the background beside the dashboard and stops with it.
run: $(REQ_STAMP)
	$(VENV)/bin/python cli.py init --demo
	@echo "LeanOps dashboard: http://localhost:$(PORT)   API: http://127.0.0.1:$(API_PORT)/docs"
	@export LEANOPS_API_URL=http://127.0.0.1:$(API_PORT); \
	$(VENV)/bin/python cli.py serve --host 127.0.0.1 --port $(API_PORT) & api=$$!; \
	trap 'kill -TERM $$api 2>/dev/null; wait $$api 2>/dev/null' EXIT; trap 'exit 130' INT TERM; \
	$(VENV)/bin/streamlit run app.py --server.headless true --server.port $(PORT)

# mypy first (its configuration is [tool.mypy] in pyproject.toml); a type error fails the target.
test: $(DEV_STAMP)
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: $(REQ_STAMP)
	@set -e; for script in bench/*.py; do \
		[ -e "$$script" ] || { echo "no benchmarks in bench/"; break; }; \
		echo "== $$script"; \
		PYTHONPATH=$(CURDIR) $(VENV)/bin/python "$$script"; \
	done
