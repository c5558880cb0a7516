"""Kill tests: nothing a user recorded or trained is lost. SIGKILL lands at controlled points
of `record`, `data synth --force`, `train --force` over an existing run, `export --force`
over an existing bundle and `calibrate`; afterwards everything on disk is readable, and what
was there before the command is either still there byte for byte or replaced whole.

The points are reached by polling for a file or a line (never a fixed sleep), each with a
generous deadline for a loaded machine: a file the command writes while it works, or
`GK_TEST_PAUSE` (`device/core/files.py`), which stops `replace_folder` at "built" (the new folder
whole, the old one still in place) or "swapped" (the new one in place, the old one not yet
removed) until the test kills it.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gesturekit.device.core.bundle import load_bundle
from gesturekit.device.core.files import PAUSE_ENV
from gesturekit.device.core.recording import RecordingSpec, RecordingWriter, read_recording, write_spec
from gesturekit.train.datasets import load_dataset
from gesturekit.train.runs import load_run

GESTUREKIT = [sys.executable, "-m", "gesturekit.cli"]
DEADLINE_S = 600.0  # a loaded machine trains slowly; nothing here waits longer than it must
CHANNELS = ["ax", "ay", "az", "gx", "gy", "gz"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` by relative path, with its SHA-256."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def partials(target: Path) -> list[Path]:
    """The temporary folders `replace_folder` builds `target` in."""
    return sorted(target.parent.glob(f".{target.name}.partial-*"))


def wait_for(condition, what: str, proc: subprocess.Popen | None = None,
             log: Path | None = None, deadline_s: float = DEADLINE_S) -> None:
    """Poll `condition()`; fail naming `what` (and the command's log) if the command ends
    first or the deadline passes."""
    end = time.monotonic() + deadline_s
    while not condition():
        tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        assert proc is None or proc.poll() is None, f"ended (exit {proc.returncode}) before {what}:\n{tail}"
        assert time.monotonic() < end, f"no {what} within {deadline_s:g} s:\n{tail}"
        time.sleep(0.02)


def start(*args: str, log: Path, pause: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != PAUSE_ENV}
    if pause:
        env[PAUSE_ENV] = pause
    with open(log, "w") as out:
        return subprocess.Popen([*GESTUREKIT, *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def killed_at(pause: str, *args: str, log: Path) -> None:
    """Run `gesturekit ARGS` until replace_folder reaches `pause`, then SIGKILL it."""
    proc = start(*args, log=log, pause=pause)
    try:
        wait_for(lambda: f"paused at {pause}" in log.read_text(errors="replace"),
                 f"pause at {pause}", proc, log)
    finally:
        kill(proc)


def finish(*args: str, log: Path) -> None:
    proc = start(*args, log=log)
    assert proc.wait(timeout=DEADLINE_S) == 0, log.read_text()[-3000:]


# --- record ---------------------------------------------------------------------------------


@pytest.fixture
def board(tmp_path) -> Path:
    """A 50 Hz session for the simulated board to play."""
    data = np.cumsum(np.random.default_rng(1).normal(size=(400, 6)), axis=0).astype(np.float32)
    root = tmp_path / "board"
    with RecordingWriter(root / "s1.csv", CHANNELS, time_column=None) as w:
        w.append(data, "walk")
    write_spec(root / "dataset.toml", RecordingSpec(sample_rate_hz=50.0, channels=CHANNELS))
    return root / "s1.csv"


def test_record_killed_after_its_first_samples_leaves_a_readable_dataset(board, tmp_path):
    """dataset.toml is on disk before the first sample: a session cut short by SIGKILL (no
    --rate, so the rate was never measured) loads as it is, and the next session joins it."""
    sim = subprocess.Popen([*GESTUREKIT, "simulate", str(board), "--pty", "--loop"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ready, _, _ = select.select([sim.stdout], [], [], 60)
        assert ready, "simulate printed no pty within 60 s"
        port = sim.stdout.readline().strip()
        out = tmp_path / "recorded"
        log = tmp_path / "record.log"
        proc = start("record", "--port", port, "--label", "walk", "--out", str(out),
                     "--session", "cut", log=log)
        session = out / "cut.csv"
        wait_for(lambda: session.is_file() and session.read_text().count("\n") >= 2,
                 "first sample", proc, log)
        assert (out / "dataset.toml").is_file()  # before the first sample, not at the end
        wait_for(lambda: session.read_text().count("\n") > 100, "100 samples", proc, log)
        kill(proc)
        dataset = load_dataset(out)
        assert len(dataset.sessions) == 1 and dataset.channels == CHANNELS
        assert dataset.sample_rate_hz == pytest.approx(50, rel=0.1)  # from the time column
        assert len(dataset.sessions[0].data) >= 100

        finish("record", "--port", port, "--label", "walk", "--out", str(out), "--session",
               "next", "--samples", "100", "--channels", ",".join(CHANNELS),  # mid-stream: no header
               log=tmp_path / "record2.log")
    finally:
        sim.kill()
        sim.wait(timeout=30)
    dataset = load_dataset(out)
    assert [s.name for s in dataset.sessions] == ["cut.csv", "next.csv"]
    assert len(read_recording(out / "next.csv").data) == 100


# --- data synth --force ---------------------------------------------------------------------


@pytest.mark.parametrize("pause", ["built", "swapped"])
def test_synth_killed_before_or_after_the_swap_leaves_one_whole_dataset(tmp_path, pause):
    """Killed with the new dataset built: the old one is there, byte for byte; killed just
    after the swap: the new one is, whole. The folder the kill left beside it is removed by
    the next run."""
    small = ["--subjects", "3", "--minutes", "2"]
    ds, reference = tmp_path / "ds", tmp_path / "reference"
    finish("data", "synth", "--out", str(ds), *small, log=tmp_path / "first.log")
    finish("data", "synth", "--out", str(reference), "--seed", "1", *small,
           log=tmp_path / "reference.log")
    before = snapshot(ds)
    killed_at(pause, "data", "synth", "--out", str(ds), "--force", "--seed", "1", *small,
              log=tmp_path / "killed.log")
    assert snapshot(ds) == (before if pause == "built" else snapshot(reference))
    assert load_dataset(ds).subjects == ["1", "2", "3"]
    assert partials(ds)  # the kill's leftovers, invisible to readers of ds
    finish("data", "synth", "--out", str(ds), "--force", "--seed", "1", *small,
           log=tmp_path / "again.log")
    assert snapshot(ds) == snapshot(reference)
    assert not partials(ds)


# --- train --force over an earlier run -------------------------------------------------------


def _train(synth_dataset: Path, run: Path) -> list[str]:
    return ["train", str(synth_dataset), "--out", str(run), "--force", "--quick", "--seed", "1",
            "--strategy", "three-phase", "--window", "128", "--skip-sandbox"]


def test_train_force_killed_mid_fit_keeps_the_previous_run(quick_run, synth_dataset, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(quick_run, run)
    before = snapshot(run)
    log = tmp_path / "train.log"
    proc = start(*_train(synth_dataset, run), log=log)
    try:  # config.json is written just before the phases start fitting
        wait_for(lambda: any((p / "config.json").is_file() for p in partials(run)),
                 "config.json in the new run's folder", proc, log)
    finally:
        kill(proc)
    assert snapshot(run) == before
    assert load_run(run).metrics["test"]["macro_f1"] is not None


def test_train_force_killed_with_the_new_run_built_keeps_the_previous_run(
        quick_run, synth_dataset, tmp_path):
    """The last moment before the swap: the earlier run is whole and evaluates; the new run
    the kill left beside it is refused by every reader with one line."""
    run = tmp_path / "run"
    shutil.copytree(quick_run, run)
    before = snapshot(run)
    killed_at("built", *_train(synth_dataset, run), log=tmp_path / "train.log")
    assert snapshot(run) == before
    result = subprocess.run([*GESTUREKIT, "evaluate", str(run), str(synth_dataset), "--json"],
                            capture_output=True, text=True, timeout=DEADLINE_S)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["windows"] > 0
    # A run folder without metrics.json (here: the built one, with its metrics.json removed).
    (leftover,) = partials(run)
    (leftover / "metrics.json").unlink()
    result = subprocess.run([*GESTUREKIT, "evaluate", str(leftover), str(synth_dataset)],
                            capture_output=True, text=True, timeout=DEADLINE_S)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("incomplete run (no metrics.json); train again")
    assert result.stderr.count("\n") == 1


# --- export --force over an earlier bundle ---------------------------------------------------


def test_export_force_killed_mid_build_keeps_the_previous_bundle(quick_run, quick_bundle,
                                                                 tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(quick_bundle, bundle)
    before = snapshot(bundle)
    log = tmp_path / "export.log"
    proc = start("export", str(quick_run), "--out", str(bundle), "--force", log=log)
    try:  # the model files are written first, then parity, the plot and the report
        wait_for(lambda: any((p / "model_float.tflite").is_file() for p in partials(bundle)),
                 "model_float.tflite in the new bundle's folder", proc, log)
    finally:
        kill(proc)
    assert snapshot(bundle) == before
    assert load_bundle(bundle).files


def test_export_force_killed_with_the_new_bundle_built_keeps_the_previous_bundle(
        quick_run, quick_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(quick_bundle, bundle)
    before = snapshot(bundle)
    killed_at("built", "export", str(quick_run), "--out", str(bundle), "--force",
              log=tmp_path / "export.log")
    assert snapshot(bundle) == before
    assert load_bundle(bundle).files


# --- calibrate ------------------------------------------------------------------------------


def _calibrate(bundle: Path, synth_dataset: Path) -> list[str]:
    return ["calibrate", str(bundle), str(synth_dataset), "--event-classes", "jump,punch,turn"]


def test_calibrate_killed_before_the_swap_leaves_the_bundle_as_it_was(quick_bundle,
                                                                       synth_dataset, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(quick_bundle, bundle)
    before = snapshot(bundle)
    killed_at("built", *_calibrate(bundle, synth_dataset), log=tmp_path / "calibrate.log")
    assert snapshot(bundle) == before
    assert not load_bundle(bundle).calibration


def test_calibrate_killed_after_the_swap_leaves_a_whole_calibrated_bundle(
        quick_bundle, synth_dataset, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(quick_bundle, bundle)
    before = snapshot(bundle)
    killed_at("swapped", *_calibrate(bundle, synth_dataset), log=tmp_path / "calibrate.log")
    calibrated = load_bundle(bundle)
    assert set(calibrated.postprocess["per_class"]) == {"jump", "punch", "turn"}
    after = snapshot(bundle)
    assert {name: after[name] for name in ("model_float.tflite", "model_int8.tflite",
                                           "model.onnx", "model_data.cc")} == \
        {name: before[name] for name in ("model_float.tflite", "model_int8.tflite",
                                         "model.onnx", "model_data.cc")}
    report = (bundle / "report.md").read_text()
    assert report.count("## Calibration") == 1
    assert all((bundle / name).is_file() for name in calibrated.calibration["figures"].values())
    header = (bundle / "model_config.h").read_text()
    assert "kIsEventClass[kNumClasses] = {" + ", ".join(
        str(label in calibrated.event_classes).lower() for label in calibrated.labels) in header
