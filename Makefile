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
BOOK_ARGS := --profile $(PROFILE) --dataset $(DATASET) --chapter $(CHAPTER) $(if $(filter 1,$(FRESH)),--fresh,)

.PHONY: book test install install-cluster clean-book

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Optional cluster backends (Ray, SLURM via submitit) for `make book BACKEND=ray|slurm`.
install-cluster: $(VENV)/.cluster-installed

$(VENV)/.cluster-installed: requirements-cluster.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-cluster.txt
	touch $@

# Execute every chapter with papermill into book/ (stored runs are loaded, missing ones trained in
# WORKERS local processes: auto = one per core on the CPU), then build the HTML site into _build/html.
book: install
	SPARSITY_BACKEND=$(BACKEND) SPARSITY_WORKERS=$(WORKERS) $(PY) -m sparsity_lib book $(BOOK_ARGS)

# The whole test suite, including executing every notebook with the smoke profile and the
# Ray/submitit sweep tests (so the cluster extras are installed here too).
test: install-cluster
	$(PY) -m pytest -q tests

clean-book:
	rm -rf _build book/*.ipynb
