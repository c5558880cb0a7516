"""Session fixtures shared by the test files: a small synthetic dataset, a real quick training
run on it, its exported bundle, and a second Python environment with tflite-runtime.

They are built once per test session, on first use, and kept cheap enough for CI.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]
TFLITE_RUNTIME_PACKAGES = ["numpy<2", "tflite-runtime==2.14.0", "pyserial"]
VENV_INSTALL_TIMEOUT_S = 600

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Property tests: `make test` (CI) draws the same cases on every run and every clone, so a
# failure is the code's, not the draw's; `make fuzz` (`--hypothesis-profile=fuzz`) draws new
# random cases, as many as GK_FUZZ_EXAMPLES says, and stores failures in .hypothesis/.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("fuzz", derandomize=False, deadline=None, print_blob=True)
settings.load_profile("ci")

# `make check` (the edit-test loop) leaves out what takes minutes: tests that train a model
# (through these fixtures, or a module marked `trains`), run the emulated board, or build a
# second Python environment. `make test` runs everything.
TRAINING_FIXTURES = {"quick_run", "hapt_bundle", "one_worker", "run"}
VENV_FIXTURES = {"tflite_runtime_python", "device_python"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(item.fixturenames)
        if fixtures & TRAINING_FIXTURES:
            item.add_marker(pytest.mark.trains)
        if fixtures & VENV_FIXTURES:
            item.add_marker(pytest.mark.venv)


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory) -> Path:
    """The built-in synthetic dataset, small: 6 subjects x 3 minutes at 50 Hz."""
    from gesturekit.train.synth import SynthConfig, write_synthetic_dataset

    out = tmp_path_factory.mktemp("synth") / "dataset"
    return write_synthetic_dataset(out, SynthConfig(seed=0, subjects=6, minutes=3.0,
                                                    sample_rate_hz=50))


def gesturekit_command(*args: str, log: Path, timeout: float = 900) -> None:
    """Run `gesturekit ARGS` as a user would (no TF_CPP_MIN_LOG_LEVEL set); its stderr is kept
    in `log` for the tests."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    with open(log, "w") as err:
        result = subprocess.run([sys.executable, "-m", "gesturekit.cli", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=err, timeout=timeout, check=False)
    assert result.returncode == 0, log.read_text()[-3000:]


@pytest.fixture(scope="session")
def quick_run(synth_dataset, tmp_path_factory) -> Path:
    """`gesturekit train --quick` (three-phase, so it has the CNN head too; seed 0) on
    `synth_dataset`; its stderr is in `train.stderr` next to it. A 128-sample window: on these
    3-minute sessions the data's own (144) leaves the quick budget too few gesture windows to
    fire the events the stream tests count."""
    out = tmp_path_factory.mktemp("quick_run") / "run"
    gesturekit_command("train", str(synth_dataset), "--out", str(out), "--quick", "--seed", "0",
                       "--strategy", "three-phase", "--window", "128",
                       log=out.parent / "train.stderr")
    return out


@pytest.fixture(scope="session")
def quick_bundle(quick_run, tmp_path_factory) -> Path:
    """`gesturekit export` of `quick_run`: the CNN-LSTM bundle (float, int8, ONNX, C array);
    its stderr is in `export.stderr` next to it."""
    out = tmp_path_factory.mktemp("quick_bundle") / "bundle"
    gesturekit_command("export", str(quick_run), "--out", str(out), log=out.parent / "export.stderr")
    return out


def _venv_ready(python: Path, check: str) -> bool:
    """True when `python` runs `check` and imports gesturekit from this checkout."""
    if not python.is_file():
        return False
    result = subprocess.run([str(python), "-c", check + "; print(gesturekit.__file__)"],
                            capture_output=True, text=True, timeout=60, check=False)
    # The editable install must point at this checkout, not at one that has moved.
    return result.returncode == 0 and Path(result.stdout.strip()).is_relative_to(REPO)


def built_venv(venv: Path, installs: list[list[str]], check: str) -> Path:
    """Python of `venv`, created with `pip install` of each of `installs` on first use and
    reused while `check` passes; a lock keeps concurrent test sessions from building it twice."""
    python = venv / "bin" / "python"
    # The lock lives outside the work tree, keyed by the venv path, so git never sees it.
    key = hashlib.sha1(str(venv).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"gesturekit-venv-{key}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _venv_ready(python, check):
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)],
                           check=True, timeout=120)
            for packages in installs:
                subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages],
                               check=True, timeout=VENV_INSTALL_TIMEOUT_S)
            if not _venv_ready(python, check):
                pytest.fail(f"{venv}: built, but `{check}` fails there")
    return python


@pytest.fixture(scope="session")
def tflite_runtime_python() -> Path:
    """`<repo>/.venv-tflite-runtime`: numpy<2, tflite-runtime 2.14, pyserial and this repo
    (no dependencies); docs/design.md says why tflite-runtime needs numpy<2."""
    return built_venv(
        REPO / ".venv-tflite-runtime",
        [TFLITE_RUNTIME_PACKAGES, ["--no-deps", "-e", str(REPO)]],
        "import numpy, serial, tflite_runtime.interpreter, gesturekit; "
        "assert int(numpy.__version__.split('.')[0]) < 2",
    )


@pytest.fixture(scope="session")
def device_python() -> Path:
    """`<repo>/.venv-device`: `pip install -e '.[device]'` and nothing else (no TensorFlow)."""
    return built_venv(
        REPO / ".venv-device",
        [["-e", f"{REPO}[device]"]],
        "import importlib.util as u, gesturekit, gesturekit.device.live.runner, ai_edge_litert, serial; "
        "assert u.find_spec('tensorflow') is None and u.find_spec('keras') is None",
    )
