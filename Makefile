# hookwatch: make run | make test | make demo
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: run test demo lint bench install install-test clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) -e .
	touch $@

# torch==2.13.0 is the CPU build on this machine's disk; a bare "torch" would pull CUDA wheels.
$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PIP) -e '.[test,testmodel]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(VENV)/bin/hookwatch serve

demo: install-test
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
