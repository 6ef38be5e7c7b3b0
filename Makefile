# Searchlight: two commands.
#   make lab    create/refresh .venv, install, register the kernel, open JupyterLab on tutorials/
#   make test   same environment, then unit tests + nbval over every tutorial + browser tests
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

NOTEBOOKS := tutorials/00_welcome.ipynb $(sort $(wildcard tutorials/solutions/*.ipynb))

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

test: install browser-deps
	$(BIN)/python -m pytest tests $(NOTEBOOKS) --nbval-lax --nbval-current-env \
	    --nbval-cell-timeout=300 -p no:cacheprovider $(PYTEST_ARGS)

unit: install
	$(BIN)/python -m pytest tests -m "not browser" $(PYTEST_ARGS)

notebooks: install
	$(BIN)/python -m pytest $(NOTEBOOKS) --nbval-lax --nbval-current-env --nbval-cell-timeout=300 $(PYTEST_ARGS)

browser: install browser-deps
	$(BIN)/python -m pytest tests -m browser $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
