# The two quick-start commands (README): `make run` and `make test`.
# Everything installs into .venv; nothing needs to be installed by hand first except
# Python >= 3.11 (and, for `make test`, root for apt-get and npm for Azurite).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := $(CURDIR)/.demo-store

.PHONY: run test install install-test servers check lint typecheck codegen bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The library alone: no cloud SDKs needed for the local fs store.
install: $(BIN)/python
	$(BIN)/python -m pip install -q -e . --config-settings editable_mode=strict

# Pinned by .ci/constraints.txt for reproducible runs: the set last checked together. The
# extras resolve at once without it too (tests/packaging/test_install_resolves.py).
install-test: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]" -c .ci/constraints.txt \
		--config-settings editable_mode=strict

servers:
	bash .ci/install-servers

# A real job with the CLI on a local fs store: copy a tree in, list it, read it back,
# check it byte for byte, and clean up.
run: install
	rm -rf "$(DEMO)"
	$(BIN)/storager cp -r docs/ "fs://$(DEMO)/docs/"
	$(BIN)/storager ls -l -r "fs://$(DEMO)/"
	$(BIN)/storager stat "fs://$(DEMO)/docs/capabilities.md"
	$(BIN)/storager cat "fs://$(DEMO)/docs/capabilities.md" | cmp - docs/capabilities.md
	$(BIN)/storager rm -r "fs://$(DEMO)/docs/"
	rm -rf "$(DEMO)"
	@echo "make run: ok (copied, listed, verified and removed docs/ on a local fs store)"

# Every test, every server: the command CI runs.
test: install-test servers
	$(BIN)/python -m pytest

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-test
	$(BIN)/mypy --strict storager

codegen: install-test
	$(BIN)/python -m codegen --check

check: codegen lint typecheck

bench: install-test
	$(BIN)/python -m pytest benchmarks --benchmark-only

clean:
	rm -rf $(VENV) build *.egg-info .demo-store
