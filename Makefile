# transferlab: `make lab` to learn, `make test` to check. Both set everything up on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
LAB_ARGS ?=
# make assignments: MODE=smoke (default) or default; ASSIGNMENTS_ARGS e.g. "00 02 --out /srv/course --force"
MODE ?= smoke
ASSIGNMENTS_ARGS ?=
# pytest workers: notebooks run in parallel, two at a time on a 2-core machine
PYTEST_ARGS ?= -n 2 --dist loadgroup --durations=25

.PHONY: lab test unit notebooks-test zoo docs docs-smoke bench strip lint browser-deps clean-venv help assignments

help:
	@echo "make lab     set up .venv, build the model zoo if missing, open JupyterLab in notebooks/"
	@echo "make test    set up .venv with dev tools, then ruff + the whole test suite (unit, notebooks, browser, docs)"
	@echo "make zoo     build the kit's pretrained models into \$$TRANSFERLAB_HOME (default ~/.cache/transferlab)"
	@echo "make docs    build the static site (notebooks executed in lesson mode) into docs/_build/html"
	@echo "make bench   run the benchmark scripts (JSON figures in benchmarks/results/)"
	@echo "make assignments  an nbgrader course from the lessons into assignments/ (MODE=default: full budgets)"
	@echo "make strip   remove outputs from the notebooks before committing"

$(VENV)/.lab-stamp: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "transferlab needs Python >= 3.10")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade --quiet pip
	$(PIP) install --quiet -e ".[keras,nlp,backends]"
	touch $@

$(VENV)/.dev-stamp: pyproject.toml $(VENV)/.lab-stamp
	$(PIP) install --quiet -e ".[dev]"
	touch $@

$(VENV)/.course-stamp: pyproject.toml $(VENV)/.lab-stamp
	$(PIP) install --quiet -e ".[course]"
	touch $@

assignments: $(VENV)/.course-stamp
	$(PY) data_scripts/make_assignments.py --mode $(MODE) $(ASSIGNMENTS_ARGS)

zoo: $(VENV)/.lab-stamp
	$(PY) data_scripts/build_zoo.py

lab: $(VENV)/.lab-stamp zoo
	cd notebooks && ../$(PY) -m jupyterlab $(LAB_ARGS)

browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = "0" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install chromium"; exit 1; fi; fi

lint: $(VENV)/.dev-stamp
	$(VENV)/bin/ruff check transferlab tests data_scripts benchmarks docs notebooks

test: $(VENV)/.dev-stamp browser-deps zoo lint
	$(PY) -m pytest $(PYTEST_ARGS)

docs: $(VENV)/.dev-stamp zoo
	$(PY) docs/build.py

docs-smoke: $(VENV)/.dev-stamp zoo
	$(PY) docs/build.py --smoke

bench: $(VENV)/.lab-stamp zoo
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

strip: $(VENV)/.dev-stamp
	$(PY) data_scripts/strip_notebooks.py notebooks/*.ipynb

clean-venv:
	rm -rf $(VENV)
