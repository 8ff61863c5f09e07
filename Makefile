# LeanOps developer entry points: `make run`, `make test`, `make bench`, `make audit`, `make lock`.
# Installs come only from the hashed lock files (requirements*.lock, written by `make lock` from
# requirements*.txt); the venv is rebuilt only when a lock file changes (stamp files named by its hash).

PYTHON ?= python3.11
VENV   := .venv
TOOLS  := .venv-tools
PORT   ?= 8501
API_PORT ?= 8000
PYTEST_ARGS ?= -n auto --dist loadfile  # one process per core; a test file stays on one worker

REQ_HASH := $(shell cat requirements.lock | sha256sum | cut -c1-16)
DEV_HASH := $(shell cat requirements.lock requirements-dev.lock | sha256sum | cut -c1-16)
TOOLS_HASH := $(shell cat requirements-tools.lock | sha256sum | cut -c1-16)
REQ_STAMP := $(VENV)/.installed-$(REQ_HASH)
DEV_STAMP := $(VENV)/.installed-dev-$(DEV_HASH)
TOOLS_STAMP := $(TOOLS)/.installed-$(TOOLS_HASH)

# Hash-checking mode: pip refuses any file whose sha256 the lock does not list, whichever index or
# local folder it comes from, and builds nothing from source. --no-deps because the lock already names
# every dependency (uv writes `pandas`, not the `pandas[parquet]` evidently asks for, which pip would
# otherwise resolve again); `pip check` then proves the installed set is complete and consistent.
PIP_LOCKED := pip install --require-hashes --no-deps --only-binary :all:

# `make lock` keeps every pin the lock files already have and adds what is new;
# `make lock UPGRADE=1` moves everything to the newest allowed versions. Either way for CPython 3.11
# on x86_64 Linux (this machine, CI and the Docker image), whatever machine runs it.
LOCK_FLAGS := --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	$(if $(UPGRADE),--upgrade)

.PHONY: run test bench audit lock

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(REQ_STAMP): | $(VENV)/bin/python
	$(VENV)/bin/$(PIP_LOCKED) -r requirements.lock
	$(VENV)/bin/pip check
	touch $@

$(DEV_STAMP): | $(VENV)/bin/python
	$(VENV)/bin/$(PIP_LOCKED) -r requirements-dev.lock
	$(VENV)/bin/pip check
	touch $@ $(REQ_STAMP)

$(TOOLS_STAMP):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/$(PIP_LOCKED) -r requirements-tools.lock
	$(TOOLS)/bin/pip check
	touch $@

# The API (`cli.py serve`) runs in the background beside the dashboard and stops with it.
# The login is printed last, in a box, once the dashboard answers (init's output, which holds a generated
# password, stays in a shell variable: never in a file). Ctrl-C stops both processes and ends cleanly
# (status 0 from the recipe: no "make: *** Error 130"); background children ignore SIGINT, hence the kill.
run: $(REQ_STAMP)
	@init=$$($(VENV)/bin/python cli.py init --demo) || exit $$?; printf '%s\n' "$$init"; \
	export LEANOPS_API_URL=http://127.0.0.1:$(API_PORT); \
	$(VENV)/bin/python cli.py serve --host 127.0.0.1 --port $(API_PORT) & api=$$!; ui=; \
	trap 'kill -TERM $$api $$ui 2>/dev/null; wait $$api $$ui 2>/dev/null' EXIT; \
	trap 'echo; echo "LeanOps stopped (dashboard and API)."; exit 0' INT TERM; \
	echo "waiting for the API to load and warm every champion (/health/ready)"; \
	until $(VENV)/bin/python -c 'import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=2)' \
		http://127.0.0.1:$(API_PORT)/health/ready 2>/dev/null; do \
		kill -0 $$api 2>/dev/null || { echo "the API exited before it was ready"; exit 1; }; sleep 0.5; \
	done; \
	$(VENV)/bin/streamlit run dashboard.py --server.headless true --server.port $(PORT) & ui=$$!; \
	until $(VENV)/bin/python -c 'import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=2)' \
		http://127.0.0.1:$(PORT)/_stcore/health 2>/dev/null; do \
		kill -0 $$ui 2>/dev/null || { echo "the dashboard exited before it answered"; exit 1; }; sleep 0.5; \
	done; \
	user=$$(printf '%s\n' "$$init" | sed -n 's/^admin user: \([^ ]*\).*/\1/p'); \
	pw=$$(printf '%s\n' "$$init" | sed -n 's/^admin user: [^ ]*  password: \([^ ]*\) .*/\1/p'); \
	printf '%s\n' "LeanOps is running" "" "Dashboard  http://localhost:$(PORT)" \
		"User       $${user:-admin}" \
		"Password   $${pw:-the one you set (LEANOPS_ADMIN_PASSWORD, or changed at first login)}" \
		"$${pw:+           (generated now and shown once: the first login asks for a new one)}" \
		"API        http://127.0.0.1:$(API_PORT)  (/docs need a token, or LEANOPS_API_DOCS_PUBLIC=true)" \
		"" "Stop       press Ctrl-C" | \
	$(VENV)/bin/python -c 'import sys; ls = [l for l in sys.stdin.read().split("\n")[:-1]]; w = max(map(len, ls)); \
		print("\n+" + "-" * (w + 2) + "+"); [print("| " + l.ljust(w) + " |") for l in ls]; print("+" + "-" * (w + 2) + "+")'; \
	wait $$ui

# mypy first (its configuration is [tool.mypy] in pyproject.toml); a type error fails the target.
test: $(DEV_STAMP) $(TOOLS_STAMP)
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: $(REQ_STAMP)
	@set -e; for script in bench/*.py; do \
		[ -e "$$script" ] || { echo "no benchmarks in bench/"; break; }; \
		echo "== $$script"; \
		PYTHONPATH=$(CURDIR) $(VENV)/bin/python "$$script"; \
	done

# Known vulnerabilities in the locked versions (pip-audit): fails on one that has a fixed release.
# Where no vulnerability service answers (this build network reaches package indexes only), it says
# "vulnerability audit SKIPPED" loudly instead of passing silently. AUDIT_ARGS go to .ci/audit.py.
audit: $(TOOLS_STAMP)
	$(TOOLS)/bin/python .ci/audit.py requirements.lock requirements-dev.lock requirements-tools.lock $(AUDIT_ARGS)

# Rewrites the lock files from requirements*.txt (the dev lock is held to the runtime lock's versions).
lock: $(TOOLS_STAMP)
	export UV_CUSTOM_COMPILE_COMMAND="make lock"; \
	$(TOOLS)/bin/uv pip compile $(LOCK_FLAGS) requirements.txt -o requirements.lock && \
	$(TOOLS)/bin/uv pip compile $(LOCK_FLAGS) -c requirements.lock requirements-dev.txt -o requirements-dev.lock && \
	$(TOOLS)/bin/uv pip compile $(LOCK_FLAGS) requirements-tools.txt -o requirements-tools.lock
