# hookwatch: make run | make test | make demo
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check -c requirements.lock

.PHONY: run test demo lint bench install install-test install-demo lock clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip

$(VENV)/.installed: pyproject.toml requirements.lock | $(PY)
	$(PIP) -e .
	touch $@

# The test tools and the Cog server; then torch for the test model's tensor tests (they skip
# without it). torch==2.13.0 is a CPU build on this project's CI disk; elsewhere pick your build:
#   make test TORCH="torch --index-url https://download.pytorch.org/whl/cpu"   (CPU, ~200 MB)
#   make test TORCH=                                                          (no torch)
TORCH ?= torch==2.13.0
$(VENV)/.installed-test: pyproject.toml requirements.lock | $(PY)
	$(PIP) -e '.[test,demo]'
	$(if $(strip $(TORCH)),$(PIP) $(TORCH))
	touch $@ $(VENV)/.installed

# The demo needs the service and the Cog server only: no test tools, no torch.
$(VENV)/.installed-demo: pyproject.toml requirements.lock | $(PY)
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

# requirements.lock pins the service's dependencies for the Docker image (and constrains the
# venvs above, so tests run against the pinned versions). Run after changing dependencies.
lock:
	rm -rf .lock-venv && python3 -m venv .lock-venv
	.lock-venv/bin/pip install -q --disable-pip-version-check .
	{ sed -n '1,3p' requirements.lock; .lock-venv/bin/pip freeze --exclude hookwatch; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lock-venv

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
