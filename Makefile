# Two commands on a fresh machine (Python 3.11+): `make book` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu
DATASET ?= auto
CHAPTER ?= all
FRESH ?= 0
BACKEND ?= local
WORKERS ?= auto
DRY_RUN ?= 0
BOOK_ARGS := --profile $(PROFILE) --dataset $(DATASET) --chapter $(CHAPTER) $(if $(filter 1,$(FRESH)),--fresh,)

.PHONY: book test install install-cluster clean-book gpu-check

install: $(VENV)/.installed

# The package itself, editable (pyproject.toml), with the extras that execute and test the book.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[book,test]"
	touch $@

# Optional cluster backends (Ray, SLURM via submitit) for `make book BACKEND=ray|slurm`.
install-cluster: $(VENV)/.cluster-installed

$(VENV)/.cluster-installed: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[book,test,cluster]"
	touch $@

# Execute every chapter with papermill into book/ (stored runs are loaded, missing ones trained in
# WORKERS local processes: auto = one per core on the CPU), then build the HTML site into _build/html.
# Chapters executed at another PROFILE than book/'s go to _build/book-PROFILE/ unless REPLACE=1.
book: install
	SPARSITY_BACKEND=$(BACKEND) SPARSITY_WORKERS=$(WORKERS) $(PY) -m sparsity_lib book $(BOOK_ARGS) $(if $(filter 1,$(REPLACE)),--replace,)

# The whole test suite, including executing every notebook with the smoke profile and the
# Ray/submitit sweep tests (so the cluster extras are installed here too), on every core (pytest-xdist;
# TEST_WORKERS=0 runs it in this one process).
TEST_WORKERS ?= auto
test: install-cluster
	$(PY) -m pytest -q -n $(TEST_WORKERS) tests

# Every GPU check in one command, within 8 minutes on one GPU (benchmarks/gpu_check.py): the CUDA tests,
# the training and pruning benchmarks on CUDA and a `gpu`-profile slice of Table 1 into the store, all
# under benchmarks/results/gpu-check-<date>/ and appended to BENCHMARKS.md. DRY_RUN=1: the same at
# smoke size on the CPU (minutes; BENCHMARKS.md untouched); `make test` runs it.
gpu-check: install
	$(PY) benchmarks/gpu_check.py $(if $(filter 1,$(DRY_RUN)),--dry-run,)

clean-book:
	rm -rf _build book/*.ipynb
