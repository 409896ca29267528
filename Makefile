# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_output

.PHONY: demo test lint typecheck unit bootstrap clean

bootstrap: $(STAMP)

# torch comes from the CPU wheel on this machine's disk (pinned 2.13.0); pyradiomics 3.0.1 (the paper's version)
# has to be built against the already-installed numpy, hence --no-build-isolation.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check pip==26.3
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-build-isolation --no-deps pyradiomics==3.0.1
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $(STAMP)

# The main job: synth cohort -> U-Net training (cpu preset) -> prediction -> lesion metrics -> radiomics ->
# phenotype and burden statistics -> the paper's Table 4 from its published features. About 15 minutes on 2 cores.
demo: $(STAMP)
	scripts/demo.sh $(DEMO_DIR)

unit: $(STAMP)
	$(VENV)/bin/pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: unit lint typecheck

clean:
	rm -rf $(VENV) $(DEMO_DIR)
