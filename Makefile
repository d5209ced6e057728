# `make demo` and `make test` create (or reuse) .venv, install the requirements, get Fashion-MNIST (Debian's
# package through apt where usable, else torchvision's download into ./data), and run.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test bench study clean data

$(STAMP): requirements.txt requirements-test.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -r requirements-test.txt
	touch $(STAMP)

data: $(STAMP)
	$(VENV)/bin/python -m utils.get_data

demo: data
	$(VENV)/bin/python cifar/l1-norm-pruning/demo.py

# without the dataset (no apt, no network) the tests still run; the real-data ones skip with a note
test: $(STAMP)
	$(VENV)/bin/python -m utils.get_data --optional
	$(VENV)/bin/python -m pytest

bench: $(STAMP)
	$(VENV)/bin/python bench/loader.py
	$(VENV)/bin/python bench/latency.py
	$(VENV)/bin/python bench/train_step.py
	$(VENV)/bin/python bench/imagenet_loader.py

# the CPU-scale reproduction study on Fashion-MNIST (hours; rerun to continue where it stopped)
study: data
	$(VENV)/bin/python cifar/study.py --out study_runs/fashionmnist

clean:
	rm -rf demo_runs .pytest_cache
