# hookwatch: make run | make test | make demo
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: run test demo lint bench install install-test install-demo clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) -e .
	touch $@

# The test tools and the Cog server; then torch for the test model's tensor tests (they skip
# without it). torch==2.13.0 is a CPU build on this project's CI disk; elsewhere pick your build:
#   make test TORCH="torch --index-url https://download.pytorch.org/whl/cpu"   (CPU, ~200 MB)
#   make test TORCH=                                                          (no torch)
TORCH ?= torch==2.13.0
$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PIP) -e '.[test,demo]'
	$(if $(strip $(TORCH)),$(PIP) $(TORCH))
	touch $@ $(VENV)/.installed

# The demo needs the service and the Cog server only: no test tools, no torch.
$(VENV)/.installed-demo: pyproject.toml | $(PY)
	$(PIP) -e '.[demo]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-demo: $(VENV)/.installed-demo

run: install
	$(VENV)/bin/hookwatch serve

demo: install-demo
	$(VENV)/bin/hookwatch demo

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: install-test lint
	$(PY) -m pytest -q

bench: install-test
	bash bench/run.sh

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
