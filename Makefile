# The two commands a new machine needs: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lstmkit-installed

.PHONY: setup test bench bench-quick bench-lm bench-ceiling demo tour clean

EXT_STAMP := $(VENV)/.lstmkit-cpp-built

setup: $(STAMP) $(EXT_STAMP)

# torch 2.13.0 first (the CPU build on this machine): any other torch spec would pull the CUDA packages.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q torch==2.13.0
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

# The optional C++ kernels (csrc/): compiled in place into src/lstmkit/; one line and the Python path without a
# compiler. Under CI=true a failed build with a compiler present fails set-up.
$(EXT_STAMP): $(STAMP) csrc/lstm_layer.cpp csrc/build.py
	$(PY) csrc/build.py
	touch $(EXT_STAMP)

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/bench_lstm.py

bench-quick: setup
	$(PY) benchmarks/bench_lstm.py --quick

bench-lm: setup
	$(PY) benchmarks/bench_lm.py

# the fastest any implementation could train here: every GEMM of a step at the machine's best rate (10 minutes)
bench-ceiling: setup
	$(PY) benchmarks/bench_ceiling.py

# The language model: two minutes of training on the built-in corpus, then generation and next-word candidates.
demo: setup
	$(PY) -m lstmkit.demo

tour: setup
	$(PY) -m lstmkit.tour

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache src/lstmkit/ops/_C*.so
