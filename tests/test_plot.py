"""`gesturekit plot`: the numbers behind the picture match the recording's labels and the
events of the streaming evaluation, on a HAPT test session and on a recording-format CSV."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gesturekit.device.core.bundle import load_bundle, write_model_json
from gesturekit.device.core.stream_eval import reference_phase
from gesturekit.device.core.windowing import window_starts

HAPT = Path("/work/shared/data/hapt")
if not HAPT.is_dir():  # CI lays shared/ beside the clone
    HAPT = Path(__file__).resolve().parents[2] / "shared/data/hapt"
SESSION = "acc_exp05_user03.txt"
GESTUREKIT = [sys.executable, "-m", "gesturekit.cli"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

needs_hapt = pytest.mark.skipif(not (HAPT / "RawData" / SESSION).is_file(),
                                reason="shared HAPT data not present")


def gesturekit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*GESTUREKIT, *args], capture_output=True, text=True, timeout=timeout,
                          env=ENV)


@pytest.fixture(scope="module")
def hapt_small(tmp_path_factory) -> Path:
    """HAPT users 1 to 6, linked (not copied) into a HAPT-layout folder."""
    root = tmp_path_factory.mktemp("hapt_small")
    (root / "RawData").mkdir()
    (root / "activity_labels.txt").symlink_to(HAPT / "activity_labels.txt")
    for f in (HAPT / "RawData").iterdir():
        user = re.search(r"_user(\d+)\.txt$", f.name)
        if f.name == "labels.txt" or (user and int(user.group(1)) <= 6):
            (root / "RawData" / f.name).symlink_to(f)
    return root


@pytest.fixture(scope="module")
def hapt_bundle(hapt_small, tmp_path_factory) -> Path:
    """A real `--quick` run on `hapt_small` (user 3 held out for test), exported. Its
    threshold is lowered to 0.45 so the quick model's modest confidences still fire events."""
    from gesturekit.export.build import export_run
    from gesturekit.train.config import build_config
    from gesturekit.train.trainer import train_run

    run = tmp_path_factory.mktemp("hapt_run") / "run"
    train_run(str(hapt_small), run, build_config(quick=True, seed=0, sandbox=False,
                                                 test_subjects=["3"], val_subjects=["2"]),
              {}, progress=lambda message: None)
    bundle = load_bundle(export_run(run, tmp_path_factory.mktemp("hapt_bundle") / "bundle").out)
    bundle.postprocess["threshold"] = 0.45
    write_model_json(bundle)
    return bundle.root


@needs_hapt
def test_plot_of_a_hapt_session_matches_labels_and_stream_evaluation(hapt_small, hapt_bundle,
                                                                     tmp_path):
    png = tmp_path / "session.png"
    plot = gesturekit("plot", str(hapt_small / "RawData" / SESSION), "--model", str(hapt_bundle),
                      "--out", str(png), "--json")
    assert plot.returncode == 0, plot.stderr
    shown = json.loads(plot.stdout)
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 50_000

    # Bands: exactly the rows of labels.txt for experiment 5, user 3 (1-based, inclusive).
    names = [line.split(maxsplit=1)[1].strip()
             for line in (HAPT / "activity_labels.txt").read_text().splitlines() if line.strip()]
    rows = np.loadtxt(HAPT / "RawData" / "labels.txt", dtype=int)
    rows = rows[(rows[:, 0] == 5) & (rows[:, 1] == 3)]
    assert [tuple(s) for s in shown["segments"]] == [(names[a - 1], first - 1, last)
                                                     for _, _, a, first, last in rows]
    n = len(np.loadtxt(HAPT / "RawData" / SESSION))
    assert shown["samples"] == n
    bundle = load_bundle(hapt_bundle)
    skip = reference_phase(bundle)
    assert shown["window_ends"] == (skip + window_starts(n - skip, bundle.window, bundle.hop)
                                    + bundle.window).tolist()
    assert set(shown["window_labels"]) <= set(bundle.labels)

    # Events: those `evaluate --stream` finds for the same session.
    evaluate = gesturekit("evaluate", str(hapt_bundle), str(hapt_small), "--stream",
                          "--subjects", "3", "--json")
    assert evaluate.returncode == 0, evaluate.stderr
    scored = json.loads(evaluate.stdout)["events_by_session"]["exp05_user03"]
    assert len(scored) >= 3  # a session with activities and a trained model: some events
    assert shown["events"] == scored


def test_plot_of_a_recording_csv_matches_its_label_column_and_stream_evaluation(
        quick_bundle, synth_dataset, tmp_path):
    from gesturekit.device.core.backends import Classifier
    from gesturekit.device.core.postprocess import PostprocessConfig
    from gesturekit.device.core.stream_eval import StreamSession, evaluate_stream
    from gesturekit.train.datasets import load_dataset
    from gesturekit.train.plots import plot_recording

    name = "s04_session1.csv"
    post = {"smoothing_s": 0.64, "threshold": 0.4, "min_on_s": 0.0, "refractory_s": 1.0}
    shown = plot_recording(synth_dataset / name, tmp_path / "synth.png", quick_bundle,
                           backend="ai_edge_litert", postprocess=post)
    assert (tmp_path / "synth.png").read_bytes()[:8] == PNG_MAGIC

    with open(synth_dataset / name, newline="") as f:
        labels = [row["label"] or "idle" for row in csv.DictReader(f)]  # background: idle
    runs = [(labels[0], 0)]
    for i, label in enumerate(labels):
        if label != runs[-1][0]:
            runs.append((label, i))
    expected = [(lab, a, b) for (lab, a), (_, b) in zip(runs, [*runs[1:], (None, len(labels))],
                                                         strict=True)]
    assert shown.segments == expected and len(expected) > 5

    bundle = load_bundle(quick_bundle)
    dataset = load_dataset(synth_dataset)
    session = next(s for s in dataset.sessions if s.name == name)
    result = evaluate_stream(bundle, [StreamSession(name, session.data, session.label_ids)],
                             dataset.labels, Classifier(bundle, "ai_edge_litert", "float"),
                             PostprocessConfig.for_bundle(bundle, post))
    assert [list(e) for e in shown.events] == result["events_by_session"][name]
    assert len(shown.events) > 0 and len(shown.window_ends) == result["windows"]


def test_plot_without_a_model_and_bad_input(synth_dataset, tmp_path):
    plain = gesturekit("plot", str(synth_dataset / "s01_session1.csv"), "--out",
                       str(tmp_path / "plain.png"), "--json", timeout=120)
    assert plain.returncode == 0, plain.stderr
    shown = json.loads(plain.stdout)
    assert shown["model"] is None and shown["window_ends"] == [] and shown["segments"]
    assert (tmp_path / "plain.png").read_bytes()[:8] == PNG_MAGIC

    missing = gesturekit("plot", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x.png"),
                         timeout=120)
    assert missing.returncode == 2 and "nope.csv" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_plot_refuses_a_model_whose_channels_do_not_fit(quick_bundle, tmp_path):
    three = tmp_path / "three.csv"
    rows = "\n".join(f"{i * 0.02:.2f},0.1,0.2,0.9,walk" for i in range(300))
    three.write_text("t,ax,ay,az,label\n" + rows + "\n")
    (tmp_path / "dataset.toml").write_text('sample_rate_hz = 50\ntime_column = "t"\n')
    result = gesturekit("plot", str(three), "--model", str(quick_bundle), "--out",
                        str(tmp_path / "x.png"), timeout=120)
    assert result.returncode == 2, result.stderr
    assert "three.csv: no channel(s) gx, gy, gz; the model needs ax, ay, az, gx, gy, gz" in result.stderr
    assert not (tmp_path / "x.png").exists()
