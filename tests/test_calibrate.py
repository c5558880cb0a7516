"""`gesturekit calibrate`: per-class post-processing from the validation subjects, written into
the bundle without re-exporting, and refused cleanly on bad input."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from gesturekit.cli import main
from gesturekit.device.core.bundle import load_bundle, write_model_json


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture()
def bundle_copy(quick_bundle, tmp_path) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(quick_bundle, out)
    bundle = load_bundle(out)
    bundle.event_classes = ["jump", "punch", "turn"]  # walk is a state
    write_model_json(bundle)
    return out


def enough_budget(bundle: Path, data: Path) -> int:
    """The smallest budget the validation subjects' background can test (3/F hours of it)."""
    from gesturekit.train.datasets import load_dataset

    dataset = load_dataset(data)
    val = load_bundle(bundle).training["split"]["val"]
    background = dataset.labels.index(dataset.background_label)
    samples = sum(int(np.isin(s.label_ids, [-1, background]).sum()) for s in dataset.sessions
                  if s.subject in val)
    return math.ceil(3 / (samples / dataset.sample_rate_hz / 3600))


def test_calibrate_writes_per_class_settings_chosen_on_validation_subjects_only(
        bundle_copy, quick_run, synth_dataset, capsys):
    from gesturekit.device.core.backends import Classifier
    from gesturekit.device.core.postprocess import PostprocessConfig
    from gesturekit.device.core.stream_eval import evaluate_stream
    from gesturekit.train.datasets import load_dataset
    from gesturekit.train.evaluate import stream_sessions
    from gesturekit.train.runs import load_run

    model_data = (bundle_copy / "model_data.cc").read_bytes()
    budget = enough_budget(bundle_copy, synth_dataset)  # about 1000 on 11 s of background
    assert main(["calibrate", str(bundle_copy), str(synth_dataset), "--max-false-per-hour",
                 str(budget), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    split = load_run(quick_run).split
    assert result["validation_subjects"] == split["val"]
    assert not set(result["validation_subjects"]) & set(split["test"])

    bundle = load_bundle(bundle_copy)
    assert bundle.event_classes == ["jump", "punch", "turn"]
    assert set(bundle.postprocess["per_class"]) == {"jump", "punch", "turn"}
    assert bundle.calibration["max_false_per_hour"] == budget and bundle.calibration["budget_met"]
    v = bundle.calibration["validation"]
    for rate in (v["false_events_per_hour_background"], v["false_events_per_hour_states"]):
        assert rate is None or rate <= budget
    # The figures are what the runner's own replay gives on those subjects with the new bundle.
    dataset = load_dataset(synth_dataset)
    sessions = stream_sessions(bundle, dataset, split["val"])
    again = evaluate_stream(bundle, sessions, dataset.labels, Classifier(bundle, "ai_edge_litert", "float"),
                            PostprocessConfig.for_bundle(bundle))
    for key in ("per_class", "false_events", "false_events_in_background", "recall"):
        assert again[key] == v[key]
    assert v["recall"] > 0.5  # the synthetic gestures are easy on the validation subject

    # model_config.h got the same settings; the model itself was not touched.
    header = (bundle_copy / "model_config.h").read_text()
    thresholds = [bundle.postprocess["per_class"].get(label, bundle.postprocess)["threshold"]
                  for label in bundle.labels]
    assert f"kClassThreshold[kNumClasses] = {{{', '.join(repr(float(t)) for t in thresholds)}}};" in header
    events = ", ".join(str(label in bundle.event_classes).lower() for label in bundle.labels)
    assert f"kIsEventClass[kNumClasses] = {{{events}}};" in header
    assert (bundle_copy / "model_data.cc").read_bytes() == model_data
    # One plot per event class, in the report.
    report = (bundle_copy / "report.md").read_text()
    assert report.count("## Calibration") == 1
    for label, name in bundle.calibration["figures"].items():
        assert (bundle_copy / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"![{label}]({name})" in report

    # Again without a budget (best F1): the report's section is replaced, not appended.
    assert main(["calibrate", str(bundle_copy), str(synth_dataset)]) == 0
    assert (bundle_copy / "report.md").read_text().count("## Calibration") == 1
    assert load_bundle(bundle_copy).calibration["max_false_per_hour"] is None


def _csv_without(dataset: Path, out: Path, subjects: set[str] = frozenset(),
                 rename: tuple[str, str] | None = None, relabel: set[str] = frozenset()) -> Path:
    """A copy of the synthetic dataset without some subjects' files, with a column renamed, or
    with the gestures of some subjects relabelled walk."""
    shutil.copytree(dataset, out)
    for f in out.glob("*.csv"):
        if f.name[1:3].lstrip("0") in subjects:
            f.unlink()
        elif f.name[1:3].lstrip("0") in relabel:
            f.write_text(re.sub(r",(jump|punch|turn)$", ",walk", f.read_text(), flags=re.M))
        elif rename:
            lines = f.read_text().split("\n", 1)
            f.write_text(lines[0].replace(rename[0], rename[1]) + "\n" + lines[1])
    if rename:
        toml = out / "dataset.toml"
        toml.write_text(toml.read_text().replace(f'"{rename[0]}"', f'"{rename[1]}"'))
    return out


@pytest.mark.parametrize("case", ["budget", "negative", "split_gone", "validation_gone", "channel",
                                  "no_segments", "little_background"])
def test_bad_input_is_one_line_exit_2_and_leaves_the_bundle_untouched(
        case, bundle_copy, quick_run, synth_dataset, tmp_path, capsys):
    data = synth_dataset
    args = []
    val = load_bundle(bundle_copy).training["split"]["val"]
    if case == "budget":
        args = ["--max-false-per-hour", "0"]
    elif case == "negative":
        args = ["--max-false-per-hour", "-3"]
    elif case == "split_gone":  # neither model.json nor the run can say which subjects
        bundle = load_bundle(bundle_copy)
        bundle.training["run"] = str(tmp_path / "deleted_run")
        del bundle.training["split"]
        write_model_json(bundle)
    elif case == "validation_gone":
        data = _csv_without(synth_dataset, tmp_path / "data", set(val))
    elif case == "no_segments":  # the issue: thresholds 0.99 and 3 windows, resting on nothing
        data = _csv_without(synth_dataset, tmp_path / "data", relabel=set(val))
    elif case == "little_background":  # the issue: budget_met on 0.001 h of background
        args = ["--max-false-per-hour", "20"]
    else:
        data = _csv_without(synth_dataset, tmp_path / "data", rename=("gz", "gyro_z"))
    before = snapshot(bundle_copy)
    try:
        code = main(["calibrate", str(bundle_copy), str(data), *args])
    except SystemExit as stop:  # refused by the option parser
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    expected = {"budget": "--max-false-per-hour: expected a number > 0, got '0'",
                "negative": "--max-false-per-hour: expected a number > 0, got '-3'",
                "split_gone": "has no training.split and the bundle's run folder",
                "validation_gone": "validation subjects", "channel": "gz",
                "no_segments": "no segment of event class(es) jump, punch, turn",
                "little_background": "a budget of 20 false events per hour needs at least 9.0 min "
                                     "(3/F hours)"}[case]
    assert expected in err, err
    if case == "little_background":
        budget = enough_budget(bundle_copy, synth_dataset)
        assert f"give --max-false-per-hour {budget} or more" in err
    assert snapshot(bundle_copy) == before
    assert not list(bundle_copy.glob(".*"))  # no temporary file left behind
    assert not list(bundle_copy.parent.glob(".bundle.*"))  # nor a temporary folder beside it


def test_folds_calibrate_on_every_non_test_subject_through_fold_models(
        bundle_copy, quick_run, synth_dataset, capsys):
    """--folds 2: two fold models trained as the run was (its config and seed), each without
    one fold of the non-test subjects, predict that fold; the calibration rests on all of them,
    at the bundle's hop, in seconds; a second calibrate reuses the fold runs."""
    from gesturekit.train.runs import load_run

    bundle = load_bundle(bundle_copy)
    bundle.training["run"] = str(quick_run.resolve())  # the copy's run: where it was exported from
    write_model_json(bundle)
    assert main(["calibrate", str(bundle_copy), str(synth_dataset), "--folds", "2", "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert err.count("training without subjects") == 2
    run = load_run(quick_run)
    non_test = sorted(run.split["train"] + run.split["val"])
    assert sorted(result["validation_subjects"]) == non_test and result["hop"] == bundle.hop
    assert result["source"].startswith("out-of-fold predictions of 2 fold models")
    folds = [load_run(quick_run.parent / "run.folds" / f"fold{i}") for i in (1, 2)]
    held = [f.split["val"] for f in folds]
    assert sorted(held[0] + held[1]) == non_test and not set(held[0]) & set(held[1])
    for fold in folds:
        assert fold.split["test"] == run.split["test"] and fold.config["seed"] == run.config["seed"]
        assert fold.config["cnn"] == run.config["cnn"]  # the run's own budgets (here --quick)
    hop_s = bundle.hop / bundle.sample_rate_hz
    for settings in load_bundle(bundle_copy).postprocess["per_class"].values():
        assert round(settings["smoothing_s"] / hop_s, 6) == round(settings["smoothing_s"] / hop_s)
    stamps = [(quick_run.parent / "run.folds" / f"fold{i}" / "model.keras").stat().st_mtime_ns
              for i in (1, 2)]
    assert main(["calibrate", str(bundle_copy), str(synth_dataset), "--folds", "2"]) == 0
    assert "training without" not in capsys.readouterr().err  # reused, not trained again
    assert stamps == [(quick_run.parent / "run.folds" / f"fold{i}" / "model.keras").stat().st_mtime_ns
                      for i in (1, 2)]


def test_a_moved_bundle_calibrates_from_any_folder(quick_run, quick_bundle, synth_dataset,
                                                   tmp_path, monkeypatch):
    """The bundle names its run relative to itself, and calibrate reads the split from
    model.json: moved with or without its run, calibrated from any working directory, it works."""
    exported = load_bundle(quick_bundle)
    assert exported.training["run"] == os.path.relpath(quick_run, quick_bundle)  # "../../..."
    assert exported.run_folder() == quick_bundle / exported.training["run"]
    # Moved together with its run (the same layout elsewhere): the run is still found.
    together = tmp_path / "together"
    run = together / quick_run.relative_to(quick_run.parents[1])
    bundle = together / quick_bundle.relative_to(quick_bundle.parents[1])
    shutil.copytree(quick_run, run)
    shutil.copytree(quick_bundle, bundle)
    assert load_bundle(bundle).run_folder().resolve() == run.resolve()
    # Moved alone and calibrated from another folder: the split is in model.json.
    alone = tmp_path / "elsewhere" / "bundle"
    shutil.copytree(quick_bundle, alone)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert load_bundle(alone).run_folder() is None
    assert main(["calibrate", str(alone), str(synth_dataset)]) == 0
    assert load_bundle(alone).calibration["validation_subjects"] == exported.training["split"]["val"]


def test_an_old_format_bundle_loads_with_every_class_but_the_background_as_events(bundle_copy):
    """Format 1 had no event_classes or per_class: it loads, and the defaults apply."""
    path = bundle_copy / "model.json"
    d = json.loads(path.read_text())
    d["format_version"] = 1
    for key in ("event_classes", "calibration"):
        d.pop(key)
    path.write_text(json.dumps(d))
    bundle = load_bundle(bundle_copy)
    assert bundle.events == [label for label in bundle.labels if label != bundle.background_label]
    assert np.all([label in bundle.labels for label in bundle.events])


def test_folds_with_an_interpreter_choice_is_refused_in_one_line(tmp_path, capsys):
    """--folds predicts with the fold runs' Keras models: --int8 or --backend would be ignored."""
    assert main(["calibrate", str(tmp_path), str(tmp_path), "--folds", "3", "--int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--folds" in err and "--int8" in err
