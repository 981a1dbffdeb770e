# Every target does its own set-up: on a fresh machine `make train` and `make test` just work.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Use the shared offline copy of MNIST when it is there and SOFTMAX_DATA is not set already.
ifeq ($(origin SOFTMAX_DATA), undefined)
ifneq ($(wildcard ../shared/data/mnist),)
export SOFTMAX_DATA := ../shared/data/mnist
endif
endif

.PHONY: install train test test-fast bench clean compare compare-losses serve

install: $(BIN)/softmax

# (again after a change to the compiled epoch's C source: the install compiles it). Everything, the [keras] and
# [onnx] extras too: `make train` downloads MNIST through keras.datasets. Editable in "compat" mode, a path in a
# .pth file: setuptools' default import hook costs every command 12 ms at start-up.
$(BIN)/softmax: pyproject.toml setup.py softmax_cli/_epoch.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --config-settings editable_mode=compat -e '.[all,test]'
	touch $@

train: install
	$(BIN)/softmax train

# the drawing page for the model `make train` saved: http://127.0.0.1:8000
serve: install
	$(BIN)/softmax serve --open

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

bench: install
	$(BIN)/python bench/run.py

# softmax train against scikit-learn's LogisticRegression(): test accuracy, fit and whole-process seconds
compare: install
	$(BIN)/python bench/compare.py

# cross-entropy against mean squared error: bench/out/losses.md and losses.png
compare-losses: install
	$(BIN)/python bench/compare_losses.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache bench/out
