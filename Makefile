# The README's two commands: `make demo` (the main job) and `make test` (what CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test pytest plugins cpp wheel-check clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/dff demo

test: plugins cpp pytest wheel-check

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

plugins:
	bash plugins/ci.sh

# The C++ runtime (cpp/): Debian packages, Release and ASan/UBSan builds, ctest, install + find_package check.
cpp: $(STAMP)
	bash cpp/ci.sh

# The CLI from the wheel installed without extras, in a fresh virtual environment (.ci/wheel_check.sh).
wheel-check: $(STAMP)
	PIP=$(BIN)/pip PYTHON=$(PYTHON) bash .ci/wheel_check.sh

clean:
	rm -rf $(VENV) plugins/build cpp/build
