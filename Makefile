# Two entry points (README quick start): `make demo` and `make test`. Both create the
# environment first; nothing needs installing by hand beyond Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo

.PHONY: demo board-demo test test-prereqs check fuzz lint clean

# System packages the whole suite needs beyond Python: tmux (the live view in a real terminal),
# the Arm toolchain and QEMU (firmware built for a Cortex-M4 and run on an emulated board),
# Chromium and its driver (the live page in a real browser). `make test` checks for them before
# anything else: with apt-get as root (or password-free sudo) it installs the missing ones,
# otherwise it stops at once with the one command to run.
APT_PACKAGES := tmux gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib \
    qemu-system-arm chromium chromium-driver
APT_COMMANDS := tmux arm-none-eabi-g++ qemu-system-arm chromium chromedriver

# The demo needs training, export and the live side; the tests need everything (dev tools,
# Ray). The full install also satisfies the demo's.
$(VENV)/.demo-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,device,web]'
	touch $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all]'
	touch $@ $(VENV)/.demo-installed

# The whole job on the built-in default: synthetic data, training, export to a verified bundle
# that announces the gestures (walk is a state, never announced), post-processing calibrated
# per gesture on the run's validation subject, then the simulated board plays a test
# subject's session (4x speed) into a real pseudo-terminal and `gesturekit run` prints the
# gesture events live, and shows them on a page (the URL is printed: http://127.0.0.1:8765/).
demo: $(VENV)/.demo-installed
	$(BIN)/gesturekit data synth --out $(DEMO)/data --force
	$(BIN)/gesturekit train $(DEMO)/data --out $(DEMO)/run --force --seed 0 --strategy three-phase \
	    --test-subjects 2,5 --hop 16 --train-hop 32
	$(BIN)/gesturekit export $(DEMO)/run --out $(DEMO)/bundle --force --event-classes jump,punch,turn
	$(BIN)/gesturekit calibrate $(DEMO)/bundle $(DEMO)/data
	@echo "== live: a simulated board plays test subject 2 into a pseudo-terminal =="
	@$(BIN)/gesturekit simulate $(DEMO)/data/s02_session1.csv --pty --speed 4 > $(DEMO)/pty.txt & sim=$$!; \
	for i in $$(seq 100); do [ -s $(DEMO)/pty.txt ] && break; sleep 0.1; done; \
	$(BIN)/gesturekit run --port "$$(head -n 1 $(DEMO)/pty.txt)" --model $(DEMO)/bundle \
	    --rate 50 --duration 90 --web; status=$$?; kill $$sim 2>/dev/null; exit $$status

# The same bundle on an emulated board, no hardware: the firmware is built for a Cortex-M4
# (TFLM, CMSIS-NN), QEMU runs it with its serial port on a pseudo-terminal, the simulator
# plays test subject 2 into that port, and the board prints the events it announces itself.
# Needs `make demo` first, and gcc-arm-none-eabi libnewlib-arm-none-eabi
# libstdc++-arm-none-eabi-newlib qemu-system-arm (apt); the first build takes minutes.
board-demo: $(VENV)/.demo-installed
	@test -f $(DEMO)/bundle/model.json || { echo "run \`make demo\` first (it exports $(DEMO)/bundle)"; exit 2; }
	@echo "== an emulated Cortex-M4F board (QEMU mps2-an386) classifies test subject 2's session =="
	@$(BIN)/gesturekit emulate $(DEMO)/bundle --duration 60 > $(DEMO)/board.txt & emu=$$!; \
	while kill -0 $$emu 2>/dev/null && [ ! -s $(DEMO)/board.txt ]; do sleep 0.2; done; \
	tail -n +2 -f $(DEMO)/board.txt & tailer=$$!; \
	timeout 55 $(BIN)/gesturekit simulate $(DEMO)/data/s02_session1.csv --speed 2 \
	    --port "$$(head -n 1 $(DEMO)/board.txt)" >/dev/null; \
	wait $$emu; status=$$?; kill $$tailer; exit $$status

test-prereqs:
	@missing=; for c in $(APT_COMMANDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	[ -z "$$missing" ] && exit 0; \
	echo "make test: missing$$missing"; \
	if [ "$$(id -u)" = 0 ]; then sudo=; else sudo="sudo -n"; fi; \
	if command -v apt-get >/dev/null && { [ -z "$$sudo" ] || sudo -n true 2>/dev/null; }; then \
	    $$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q $(APT_PACKAGES); \
	else \
	    echo "install them first, then run make test again:"; \
	    echo "  sudo apt-get install -y $(APT_PACKAGES)"; exit 2; \
	fi

test: test-prereqs $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/pytest -q

# The edit-test loop: ruff and the tests that train nothing, run no emulated board and build
# no second environment (markers set in tests/conftest.py).
check: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/pytest -q -m "not trains and not emulator and not venv"

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
