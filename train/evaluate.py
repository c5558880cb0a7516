"""`gesturekit evaluate`: a run's model on any dataset, with the same report as training.

With a model bundle and `--stream`, the sessions are replayed sample by sample through the
live-side `gesturekit.device.core.stream_eval.evaluate_stream` instead (device/ cannot import
train/, so the dataset is loaded here and handed over as arrays).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from gesturekit.device.core.model_info import ModelInfo, channel_order, rate_is_off
from gesturekit.errors import UserError
from gesturekit.train.datasets import Dataset, load_dataset, make_windows, turn_to_pose
from gesturekit.train.metrics import scores
from gesturekit.train.runs import RunInfo, load_keras_model, load_run


def check_rate(dataset: Dataset, rate_hz: float) -> None:
    """The dataset's sample rate must be within RATE_TOLERANCE of the model's."""
    if rate_is_off(dataset.sample_rate_hz, rate_hz):
        raise UserError(f"{dataset.root}: sample rate {dataset.sample_rate_hz:g} Hz, the model was "
                        f"trained at {rate_hz:g} Hz")


def align(dataset: Dataset, labels: list[str], channels: list[str]) -> Dataset:
    """The dataset with channels in the model's order and class ids in the model's indexing.

    Classes the model does not know are left unlabelled (not scored); a missing channel is
    an error.
    """
    order = channel_order(channels, dataset.channels, str(dataset.root))
    remap = np.array([labels.index(n) if n in labels else -1 for n in dataset.labels] + [-1],
                     dtype=np.int16)  # index -1 (unlabelled) maps through the appended -1
    known = [n for n in dataset.labels if n in labels]
    if not known:
        raise UserError(f"{dataset.root}: none of its classes ({', '.join(dataset.labels)}) is "
                        f"one the model knows ({', '.join(labels)})")
    sessions = [type(s)(s.name, s.subject, s.data[:, order], remap[s.label_ids])
                for s in dataset.sessions]
    return Dataset(dataset.name, dataset.root, dataset.sample_rate_hz, list(channels),
                   dataset.units, list(labels), dataset.background_label, sessions, dataset.options)


def evaluate_run(run: RunInfo, dataset: Dataset, subjects: list[str] | None = None) -> dict:
    """Scores of the run's CNN-LSTM on the dataset's windows (cut with the run's settings)."""
    info = run.model_info
    check_rate(dataset, info.sample_rate_hz)
    dataset = align(dataset, info.labels, info.channels)
    if info.reference_pose:  # each session in the frame of its own labelled pose, as in training
        dataset, _ = turn_to_pose(dataset, info.reference_pose)
    windows = make_windows(dataset, subjects, info.window, info.hop, float(run.config["purity"]))
    if len(windows.y) == 0:
        raise UserError(f"{dataset.root}: no labelled windows of {info.window} samples "
                        f"(purity {run.config['purity']}) to evaluate")
    model = load_keras_model(run)
    prob = model.predict(info.normalization.apply(windows.x), batch_size=512, verbose=0)
    return scores(windows.y, prob.argmax(axis=1), info.labels)


def stream_sessions(model: ModelInfo, dataset: Dataset, subjects: list[str] | None) -> list:
    """The dataset's sessions (of `subjects`, None: all) for `evaluate_stream`: the rate
    checked, the columns in the model's order (by name), and with a reference pose each session
    that has the pose's label turned by it, as in training. The runner sets the frame from a
    stream's first seconds because it asks the user to hold the pose then; recordings made
    without that request need not start in it (HAPT's first 3 s sit 54 degrees, median, from
    their STANDING), so a labelled pose is the frame the user would have set. A session without
    a sample of the pose is left as it is, as training and `evaluate` leave it; a dataset that
    does not name the pose's class is turned from each session's first seconds, as the runner
    would."""
    from gesturekit.device.core.stream_eval import StreamSession

    check_rate(dataset, model.sample_rate_hz)
    order = channel_order(model.channels, dataset.channels, str(dataset.root))
    if subjects:  # only the sessions asked for are turned
        dataset = replace(dataset, sessions=[s for s in dataset.sessions if s.subject in set(subjects)])
    labelled = model.reference_pose is not None and model.reference_pose.label in dataset.labels
    if labelled:
        dataset, _ = turn_to_pose(dataset, model.reference_pose)
    return [StreamSession(s.name, s.data[:, order], s.label_ids, turned=labelled)
            for s in dataset.sessions]


def evaluate_bundle_stream(bundle_dir: str, dataset: Dataset, subjects: list[str] | None) -> dict:
    """Event-level scores from the live side's streaming evaluation of whole sessions."""
    from gesturekit.device.core.bundle import load_bundle
    from gesturekit.device.core.stream_eval import evaluate_stream

    bundle = load_bundle(bundle_dir)
    return evaluate_stream(bundle, stream_sessions(bundle, dataset, subjects), dataset.labels)


def evaluate_command(model: str, data: str, options: dict, subjects: list[str] | None = None,
                     out: str | None = None, as_json: bool = False, stream: bool = False) -> int:
    from gesturekit.train.report import scores_markdown, write_report

    dataset = load_dataset(data, **options)
    unknown = [s for s in subjects or [] if s not in dataset.subjects]
    if unknown:  # else they would only be missing from the scores
        raise UserError(f"--subjects: {', '.join(unknown)} not in {data} (subjects: "
                        f"{', '.join(dataset.subjects)})")
    is_bundle = (Path(model) / "model.json").is_file()
    if stream:
        if not is_bundle:
            raise UserError(f"{model}: --stream needs a model bundle (a folder with model.json); "
                            "make one with `gesturekit export RUN --out BUNDLE`")
        result = evaluate_bundle_stream(model, dataset, subjects)
    elif is_bundle:
        raise UserError(f"{model}: a model bundle; evaluate it with --stream, or give the run folder")
    else:
        result = evaluate_run(load_run(model), dataset, subjects)
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "scores.json").write_text(json.dumps(result, indent=2) + "\n")
        if "confusion" in result:
            write_report(Path(out), result, {}, title=f"gesturekit evaluate {model} on {data}")
    if as_json:
        print(json.dumps(result))
    elif "confusion" in result:
        print("\n".join(scores_markdown(result)))
    else:
        print("\n".join(stream_lines(result)))
    return 0


def stream_lines(result: dict) -> list[str]:
    """`evaluate --stream` as text: per event class, then false events by where they fell."""
    def num(value, fmt: str = ".2f") -> str:
        return "-" if value is None else format(value, fmt)

    lines = [f"{'event class':<20} {'precision':>9} {'recall':>6} {'events':>6} {'segments':>8} "
             f"{'per seg':>7} {'delay p50':>9} {'p90 s':>6}  (delay: from the segment's end)"]
    for label, c in result["per_class"].items():
        lines.append(f"{label:<20} {num(c['precision']):>9} {num(c['recall']):>6} {c['events']:>6} "
                     f"{c['segments']:>8} {num(c['double_counts']):>7} "
                     f"{num(c['delay_s']['p50']):>9} {num(c['delay_s']['p90']):>6}")
    lines += [
        f"all: recall {num(result['recall'])}, {num(result['double_counts'])} events per segment "
        f"found, delay from the end p50 {num(result['delay_s']['p50'])} s p90 "
        f"{num(result['delay_s']['p90'])} s (from the start p50 "
        f"{num(result['delay_from_start_s']['p50'])} s p90 {num(result['delay_from_start_s']['p90'])} s)",
        f"false events: {result['false_events']} ({result['false_events_in_background']} in "
        f"{result['background_hours']:.2f} h of background = "
        f"{num(result['false_events_per_hour_background'], '.1f')}/h"
        + (" (95%: {:.1f}-{:.1f})".format(*result["false_per_hour_background_95"])
           if result["false_per_hour_background_95"] else "") + "; "
        f"{result['false_events_in_states']} in {result['state_hours']:.2f} h of non-event states = "
        f"{num(result['false_events_per_hour_states'], '.1f')}/h; "
        f"{result['false_events_in_event_segments']} inside other event classes' segments)",
        f"{result['sessions']} sessions, {result['windows']} windows, {result['hours']:.2f} h, "
        f"{result['model']} model on {result['backend']}",
    ]
    return lines
