# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_output

.PHONY: demo test lint typecheck unit kernels bootstrap browser clean

bootstrap: $(STAMP) browser

# torch comes from the CPU wheel on this machine's disk (pinned 2.13.0); pyradiomics 3.0.1 (the paper's version)
# has to be built against the already-installed numpy, hence --no-build-isolation. nnunetv2 without its declared
# dependencies: dynamic-network-architectures -> timm -> torchvision would pull a CUDA torch (see requirements.lock).
# totalsegmentator (test dependency: the TotalSegmentator pair is checked against its own Python API) likewise
# without its declared dependencies; of those, its code path needs only dicom2nifti (imported at start) beyond ours.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check pip==26.3
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip uninstall -y -q xgboost nvidia-nccl-cu12 2>/dev/null || true  # replaced by xgboost-cpu
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-build-isolation --no-deps pyradiomics==3.0.1
	$(PY) -m pip install -q --no-deps nnunetv2==2.8.1 dynamic-network-architectures==0.4.4
	$(PY) -m pip install -q --no-deps totalsegmentator==2.18.0 dicom2nifti==2.6.2
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $(STAMP)

# Headless Chromium for the report's browser tests, from Debian (chromium + chromium-driver). Installed only as root
# and only when missing; otherwise one line says the browser tests will skip (fail under CI=true). Never fails the build.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium and chromium-driver (apt-get) for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
			>/dev/null) || echo "apt-get install chromium chromium-driver failed: the browser tests will skip (fail under CI=true)"; \
	else \
		echo "chromium/chromedriver missing and not root: the browser tests will skip (fail under CI=true); install with: apt-get install chromium chromium-driver"; \
	fi

# The main job: synth cohort -> U-Net training (cpu preset) -> prediction -> lesion metrics -> radiomics ->
# phenotype and burden statistics -> the paper's Table 4 from its published features -> analyze on a real DICOM CT
# (its time, measured, is in the README).
demo: $(STAMP)
	scripts/demo.sh $(DEMO_DIR)

# Two pytest workers (pytest-xdist), each test file on one worker so its module fixtures are built once; the 25
# slowest tests are listed at the end (the suite must stay under 15 minutes). The
# overlay test reads rendered pixels back and fails after some other files in the same worker (cause not yet found):
# it runs in a process of its own.
OVERLAY_TEST := tests/foundation/test_overlay_orientation.py
unit: $(STAMP) browser
	$(VENV)/bin/pytest -q -n 2 --dist loadfile --durations=25 --ignore $(OVERLAY_TEST)
	$(VENV)/bin/pytest -q $(OVERLAY_TEST)

# The tests marked blas_kernel again under every other OpenBLAS kernel the CPU can run (OPENBLAS_CORETYPE set for
# each child run only), and the published LASSO/LR outputs compared byte for byte across kernels.
kernels: $(STAMP)
	$(PY) scripts/kernel_tests.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: unit kernels lint typecheck

clean:
	rm -rf $(VENV) $(DEMO_DIR)
