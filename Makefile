# Searchlight: two commands.
#   make lab    create/refresh .venv, install, register the kernel, open JupyterLab on tutorials/
#   make test   same environment, then unit tests + nbval over every tutorial; then, on another floating-point path
#               (ALT_NUMERICS), the unit tests again and Run All of every notebook in JupyterLab + Chromium
#
# torch: the CPU build is installed first, so nothing later pulls a multi-GB CUDA wheel.
#   TORCH_VERSION=2.13.0 (default)   TORCH_INDEX=<pip index url> to choose a build yourself, e.g.
#   make lab TORCH_INDEX=https://download.pytorch.org/whl/cu126   (GPU build; see README "GPU")

PYTHON        ?= $(shell command -v python3.11 || command -v python3)
VENV          ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_INDEX   ?=
PORT          ?= 8888
KERNEL        ?= searchlight
PYTEST_ARGS   ?=
BIN           := $(VENV)/bin
STAMP         := $(VENV)/.searchlight-installed

NOTEBOOKS := $(sort $(wildcard tutorials/solutions/*.ipynb))
NBVAL     := --nbval-lax --nbval-current-env --nbval-cell-timeout=300 -p no:cacheprovider

# Another floating-point path on the same machine: torch's portable kernels and MKL limited to AVX2 change trained
# weights the way another CPU does. Findings are claims with tolerances, so both passes must hold;
# scripts/numeric_fingerprint.py --both prints the proof that the paths differ here.
ALT_NUMERICS ?= ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=AVX2

.PHONY: lab test unit notebooks browser lint install browser-deps clean-venv

install: $(STAMP)

# Re-runs only when the files that decide what is installed change.
$(STAMP): pyproject.toml scripts/install_torch.sh Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	@TORCH_VERSION=$(TORCH_VERSION) TORCH_INDEX=$(TORCH_INDEX) bash scripts/install_torch.sh $(BIN)/python
	@$(BIN)/python -m pip install --quiet -e ".[test]"
	@$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (searchlight)" >/dev/null
	@touch $(STAMP)
	@echo "searchlight: environment ready in $(VENV)"

# Containers often run as root, which Jupyter refuses without --allow-root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: install
	$(BIN)/jupyter lab --notebook-dir=tutorials --port=$(PORT) --no-browser $(ALLOW_ROOT) \
	    --ServerApp.ip=127.0.0.1 --config=scripts/jupyter_server_config.py

# Chromium for the browser tests comes from the system package manager (never `playwright install`).
browser-deps:
	@bash scripts/install_chromium.sh

# Pass 1 (native kernels): unit tests + nbval over every notebook. Pass 2 (ALT_NUMERICS): unit tests again, then the
# browser tests, which Run All every notebook in JupyterLab + Chromium and compare the checked cells as nbval does.
test: install browser-deps
	@$(BIN)/python scripts/numeric_fingerprint.py --both
	$(BIN)/python -m pytest tests $(NOTEBOOKS) $(NBVAL) -m "not browser" $(PYTEST_ARGS)
	@echo "searchlight: second pass on another floating-point path ($(ALT_NUMERICS)), notebooks in the browser"
	env $(ALT_NUMERICS) $(BIN)/python -m pytest tests $(PYTEST_ARGS)

unit: install
	$(BIN)/python -m pytest tests -m "not browser" $(PYTEST_ARGS)

notebooks: install
	$(BIN)/python -m pytest $(NOTEBOOKS) $(NBVAL) $(PYTEST_ARGS)

browser: install browser-deps
	$(BIN)/python -m pytest tests -m browser $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
