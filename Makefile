# Two entry points for a newcomer: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Every dependency is pinned, with its hashes, in two lock files made by uv from pyproject.toml:
# requirements.lock (what the server runs on; the Docker image installs it) and
# requirements-test.lock (that plus the test tools; `make run`, `make test` and CI install it).
# `make lock` remakes them (see the README); uv itself lives in $(UV_VENV), apart from the project.
LOCKS := requirements.lock requirements-test.lock
UV_VERSION := 0.13.9
UV_VENV := .venv-uv
UV := $(UV_VENV)/bin/uv
LOCK_FLAGS ?=
COMPILE = $(UV) pip compile pyproject.toml --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock" $(LOCK_FLAGS)

.PHONY: run test install lock bench clean

# A fresh virtualenv whenever pyproject.toml or a lock changes, so it holds exactly the lock.
$(STAMP): pyproject.toml $(LOCKS)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements-test.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@$(BIN)/pip check >/dev/null || { $(BIN)/pip check; \
		echo "requirements-test.lock does not satisfy pyproject.toml: run 'make lock'"; exit 1; }
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/therabridge serve --demo

test: $(STAMP)
	$(BIN)/pytest

$(UV):
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/pip install --quiet "uv==$(UV_VERSION)"

# Resolve again from pyproject.toml, keeping the pins that still fit (needs PyPI).
# LOCK_FLAGS=--upgrade moves every pin to the newest release; LOCK_FLAGS="--upgrade-package NAME" one.
lock: $(UV)
	$(COMPILE) -o requirements.lock
	$(COMPILE) --extra test --constraint requirements.lock -o requirements-test.lock

bench: $(STAMP)
	$(BIN)/python -m bench.core && $(BIN)/python -m bench.auth && $(BIN)/python -m bench.claims && $(BIN)/python -m bench.x12 && $(BIN)/python -m bench.e2e && $(BIN)/python -m bench.posting && $(BIN)/python -m bench.sweep && $(BIN)/python -m bench.measures && $(BIN)/python -m bench.generation && $(BIN)/python -m bench.worklists && $(BIN)/python -m bench.dashboard

clean:
	rm -rf $(VENV) $(UV_VENV) var/*.db
