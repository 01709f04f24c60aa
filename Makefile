# Every target bootstraps the local virtualenv (.venv) when it is missing or stale.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: venv demo test generate check bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,plot]'
	touch $@

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,plot,bench]'
	touch $@

demo: $(STAMP)          ## the main job: verify and solve every catalogue member
	$(VENV)/bin/softsym demo

generate: $(STAMP)      ## re-derive, prove and emit generated/
	$(PY) -m softsym.derive

check: $(STAMP)         ## fail when generated/ is stale
	$(PY) -m softsym.derive --check

test: check             ## sync check, then the test suite
	$(PY) -m pytest -q

bench: $(BENCH_STAMP)   ## benchmarks against floors and peers (JAX, PyTorch, scipy)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis generated/__pycache__
