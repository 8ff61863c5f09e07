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
# uv installs the same locks in the same hash-checking mode several times faster (issue 29: most of a cold
# `make run` was pip). It comes from requirements-tools.lock itself (its lines only, installed by pip with
# their hashes into .venv-tools); where it cannot be had, or fails, pip installs instead.
UV := $(TOOLS)/bin/uv
UV_LOCKED := pip install --require-hashes --no-deps --only-binary :all:
# $(call locked,VENV,LOCK): LOCK into VENV (uv, else pip), then a check that the installed set is consistent.
locked = if [ -x $(UV) ] && $(UV) $(UV_LOCKED) --quiet --python $(1)/bin/python -r $(2) && \
	$(UV) pip check --quiet --python $(1)/bin/python; then :; else \
	$(1)/bin/$(PIP_LOCKED) -r $(2) && $(1)/bin/pip check; fi

# `make lock` keeps every pin the lock files already have and adds what is new;
# `make lock UPGRADE=1` moves everything to the newest allowed versions. Either way for CPython 3.11
# on x86_64 Linux (this machine, CI and the Docker image), whatever machine runs it.
LOCK_FLAGS := --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	$(if $(UPGRADE),--upgrade)

.PHONY: run test bench audit lock

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# uv alone, from its lines of the tools lock (hash-checked by pip); a failure here only means pip installs.
$(UV):
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	awk '/^uv==/ {p = 1; print; next} p && /^ / {print; next} {p = 0}' requirements-tools.lock > $(TOOLS)/uv.lock
	-$(TOOLS)/bin/$(PIP_LOCKED) --quiet -r $(TOOLS)/uv.lock

$(REQ_STAMP): | $(VENV)/bin/python $(UV)
	@$(call locked,$(VENV),requirements.lock)
	touch $@

$(DEV_STAMP): | $(VENV)/bin/python $(UV)
	@$(call locked,$(VENV),requirements-dev.lock)
	touch $@ $(REQ_STAMP)

$(TOOLS_STAMP): | $(UV)
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	@$(call locked,$(TOOLS),requirements-tools.lock)
	touch $@

# launch.py: both ports checked first; `cli.py init`, then the API, the dashboard and the demo build in
# parallel (the first page does not wait for the demo); the login box only once the API answers ready with
# THIS workspace's id and the dashboard answers; otherwise one line saying what went wrong, exit 1. The
# login (a generated password) stays in launch.py's memory, never in a file. Ctrl-C stops everything, exit 0.
run: $(REQ_STAMP)
	@$(VENV)/bin/python launch.py --port $(PORT) --api-port $(API_PORT)

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
