# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
ML_STAMP := $(VENV)/.installed-ml
PYTHON ?= python3

COMPARE ?= .venv-compare

.PHONY: install demo test lint pytest compare-venv check-lowest

# The demo needs only the ml extra; tests and lint add the dev tools on top. uv installs it
# (about 10x faster than pip here), finding local wheels where pip is told to (PIP_FIND_LINKS), so
# both take the same CPU build of torch; pip does it if uv cannot.
$(ML_STAMP): pyproject.toml constraints.txt
	@mkdir -p $(VENV) && date +%s.%N > $(VENV)/.install-started
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	UV_FIND_LINKS="$${UV_FIND_LINKS:-$${PIP_FIND_LINKS:-}}" $(VENV)/bin/uv pip install -q \
		--python $(PY) -c constraints.txt -e '.[ml]' \
		|| $(PY) -m pip install -q -c constraints.txt -e '.[ml]'
	touch $(ML_STAMP)
	@echo "$$(date +%s.%N) $$(cat $(VENV)/.install-started)" \
		| awk '{printf "%.1f\n", $$1 - $$2}' > $(VENV)/.install-seconds
	@rm -f $(VENV)/.install-started

$(STAMP): $(ML_STAMP) pyproject.toml constraints.txt
	UV_FIND_LINKS="$${UV_FIND_LINKS:-$${PIP_FIND_LINKS:-}}" $(VENV)/bin/uv pip install -q \
		--python $(PY) -c constraints.txt -e '.[ml,dev]' \
		|| $(PY) -m pip install -q -c constraints.txt -e '.[ml,dev]'
	touch $(STAMP)

install: $(STAMP)

# The demo prints the install's seconds when this run of make did the install.
demo: $(ML_STAMP)
	MMGOV_INSTALL_SECONDS=$$(cat $(VENV)/.install-seconds 2>/dev/null; rm -f $(VENV)/.install-seconds) \
		$(VENV)/bin/mmgov demo

lint: $(STAMP)
	$(VENV)/bin/ruff check registry instrumentation examples migrations tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

pytest: $(STAMP)
	scripts/ensure-postgres
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint pytest

# The comparison benchmarks' venvs (MLflow; alibi-detect and Evidently), inside the repository and
# ignored by git; constraints.txt pins the CPU build of torch. See README.md, Benchmarks.
$(COMPARE)/%/.installed-stamp: benchmarks/compare/%.txt constraints.txt
	test -x $(COMPARE)/$*/bin/python || $(PYTHON) -m venv $(COMPARE)/$*
	$(COMPARE)/$*/bin/python -m pip install -q --upgrade pip
	$(COMPARE)/$*/bin/python -m pip install -q -c constraints.txt -r benchmarks/compare/$*.txt \
		$(if $(filter mlflow,$*),-e .,)
	touch $@

compare-venv: $(COMPARE)/mlflow/.installed-stamp $(COMPARE)/drift/.installed-stamp

# The lowest dependency versions pyproject.toml allows (constraints-lowest.txt), in a throwaway
# venv, against a quick torch-free subset of the tests.
check-lowest:
	scripts/check-lowest
