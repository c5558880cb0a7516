# Two entry points (README quick start): `make demo` and `make test`. Both create the
# environment first; nothing needs installing by hand beyond Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo

.PHONY: demo test fuzz lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all]'
	touch $@

# The whole job on the built-in default: synthetic data, training, export to a verified bundle,
# then the simulated board plays a test subject's session (4x speed) into a real
# pseudo-terminal and `gesturekit run` prints the gesture events live.
demo: $(VENV)/.installed
	$(BIN)/gesturekit data synth --out $(DEMO)/data --force
	$(BIN)/gesturekit train $(DEMO)/data --out $(DEMO)/run --force --seed 0 --strategy three-phase \
	    --test-subjects 2,5 --hop 16 --train-hop 32
	$(BIN)/gesturekit export $(DEMO)/run --out $(DEMO)/bundle --force
	@echo "== live: a simulated board plays test subject 2 into a pseudo-terminal =="
	@$(BIN)/gesturekit simulate $(DEMO)/data/s02_session1.csv --pty --speed 4 > $(DEMO)/pty.txt & sim=$$!; \
	for i in $$(seq 100); do [ -s $(DEMO)/pty.txt ] && break; sleep 0.1; done; \
	$(BIN)/gesturekit run --port "$$(head -n 1 $(DEMO)/pty.txt)" --model $(DEMO)/bundle \
	    --rate 50 --duration 90; status=$$?; kill $$sim 2>/dev/null; exit $$status

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/pytest -q

# The property tests drawn at random (CI's `make test` runs them derandomized), 5,000 cases
# each; a failure is saved in .hypothesis/ and replayed first next time.
GK_FUZZ_EXAMPLES ?= 5000
fuzz: $(VENV)/.installed
	GK_FUZZ_EXAMPLES=$(GK_FUZZ_EXAMPLES) $(BIN)/pytest -q --hypothesis-profile=fuzz \
	    tests/test_fuzz_parser.py tests/test_fuzz_loaders.py

lint: $(VENV)/.installed
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .venv-device .venv-tflite-runtime $(DEMO)
