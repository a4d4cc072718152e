# Two-command set-up:  `make demo`  and  `make test`.
# Both create .venv with python3 when it is missing and install the project into it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Pinned and installed first, on its own: any other torch requirement lets pip
# resolve to a multi-GB CUDA build.
TORCH  := torch==2.13.0
# The CPU build of TensorFlow (the `tf` extra names `tensorflow`, which users on GPUs want);
# installed explicitly here so development and CI get the CPU wheel.
TF     := tensorflow-cpu==2.21.*
# The version torch 2.13's CUDA build pins; on CPU its kernels run in the interpreter
# (TRITON_INTERPRET=1), which is how tests/test_triton.py checks them without a GPU.
TRITON := triton==3.7.1
# The API pages import the adapters: TensorFlow's C++ log down to errors (a start-up line or two
# still prints), and mkdocs-material's end-of-life notice off.
MKDOCS := TF_CPP_MIN_LOG_LEVEL=2 NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs

.DEFAULT_GOAL := help
.PHONY: help venv test lint format docs demo figure clean distclean

help:
	@echo "make demo       create .venv if missing, run the digits label-noise benchmark (CPU, minutes)"
	@echo "make figure     create .venv if missing, draw figure1.png (weight curves of CCE/MAE/GCE/GR)"
	@echo "make test       create .venv if missing, run ruff, ruff format --check, mypy, mkdocs build --strict and pytest"
	@echo "make docs       create .venv if missing, build the documentation site into site/ (mkdocs build --strict)"
	@echo "make venv       create .venv: torch 2.13.0 and tensorflow-cpu, then emphasis[torch,keras,jax,plot,benchmark,test,docs,recipes] (editable)"
	@echo "make lint       ruff check, ruff format --check, mypy"
	@echo "make format     ruff format and import sorting (rewrites files)"
	@echo "make clean      remove caches and build outputs (keeps .venv)"
	@echo "make distclean  clean, and remove .venv"

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstalls only when pyproject.toml changes (or the stamp is missing).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "$(TORCH)" "$(TF)" "$(TRITON)"
	$(BIN)/python -m pip install -e ".[torch,keras,jax,plot,benchmark,test,docs,recipes]"
	touch $(STAMP)

test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy emphasis emphasis_torch/_namespace.py emphasis_tf/_namespace.py
	$(MKDOCS) build --strict --quiet --site-dir site
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy emphasis emphasis_torch/_namespace.py emphasis_tf/_namespace.py

format: venv
	$(BIN)/ruff check --select I --fix .
	$(BIN)/ruff format .

# The documentation site (mkdocs.yml, docs/): warnings are errors.
docs: venv
	$(MKDOCS) build --strict --site-dir site

# The main job: CCE, MAE, GCE and GR on scikit-learn's digits with 0-60% label noise; writes
# results.csv, curves.csv, summary.md and curves.png to reference_training/runs/digits.
demo: venv
	$(BIN)/python reference_training/digits_benchmark.py

figure: venv
	$(BIN)/python reference_training/figure1.py --out figure1.png

clean:
	rm -rf build dist site *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -print0 | xargs -0 rm -rf

distclean: clean
	rm -rf $(VENV)
