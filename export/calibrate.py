"""`gesturekit calibrate BUNDLE DATA`: per-class post-processing tuned on people the model never saw.

The calibration sessions are replayed through the runner's windowing and a classifier once, at
the bundle's hop (the hop it will run at; `export --hop` sets it):

- by default, the run's validation subjects (never its test subjects) through the bundle's own
  model (`stream_eval.window_probabilities`);
- with `--folds K`, every non-test subject, each through a fold model: K models trained as the
  bundle's run was (its config and seed), each without one fold of the non-test subjects,
  predict that fold (out-of-fold). Four validation subjects of HAPT hold 0.2 h of background,
  too little to test a budget of 10 false events per hour; all 21 hold 1.2 h. The fold runs
  are kept beside the run (`RUN.folds/foldI`) and reused when their config matches.

Then, for every event class on its own, every setting of a grid of smoothing, threshold,
minimum time on and refractory time (seconds; `export.event_search`) is scored:

- with `--max-false-per-hour F`: the settings that announce the most segments once (net
  recall: found less announced twice, over event classes) while the false events stay within
  F per hour of background and F per hour of non-event states (summed over classes, so the
  budget holds for the stream);
- without a budget: each class's best event F1 (a second event in a segment counts against
  precision).

The choice is replayed through the real `EventDetector` and scored by `score_events` (the
figures reported, with the 95% Poisson interval of the false-event rate), then written into
`model.json` (`postprocess.per_class`, `event_classes`, `calibration`) and `model_config.h`
(its post-processing block), with a recall against false events per hour PNG per event class
in the bundle and its report. Nothing is retrained or re-exported. The bundle is rewritten as a
whole (`device.core.files.replace_folder`), so bad input, a failure or a kill changes nothing.

The validation subjects and dataset options come from model.json (`training.split`,
`training.dataset`), so a bundle calibrates from any folder without its run (`--folds` needs
the run: its config). Settings must rest on something: sessions with no segment of an event
class, or, with a budget F, less than 3/F hours of background (with no false event in 3/F
hours, the rate is at most F with 95% confidence: the rule of three) are refused with one line.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from gesturekit.device.core.backends import Classifier, choose_backend
from gesturekit.device.core.bundle import MODEL_JSON, Bundle, load_bundle, write_model_json
from gesturekit.device.core.files import replace_folder, write_atomic
from gesturekit.device.core.model_info import DEFAULT_POSTPROCESS, check_event_classes
from gesturekit.device.core.postprocess import PostprocessConfig
from gesturekit.device.core.stream_eval import (
    SessionTruth,
    bundle_label_ids,
    detect,
    score_events,
    stream_windows,
    window_probabilities,
)
from gesturekit.errors import UserError
from gesturekit.export import carray
from gesturekit.export.event_search import Session, choose, class_options, grid_counts, smoothed_outputs

REPORT_SECTION = "\n## Calibration\n"


def _validation_split(bundle: Bundle) -> tuple[list[str], dict]:
    """The run's validation subjects and dataset options: from model.json (export writes the
    run's split and dataset there), else from the run folder beside the bundle."""
    from gesturekit.train.runs import load_run

    where = f"{bundle.root / MODEL_JSON}"
    split, dataset = bundle.training.get("split"), bundle.training.get("dataset")
    if isinstance(split, dict) and "val" in split:
        val = split["val"]
        options = dataset.get("options", {}) if isinstance(dataset, dict) else {}
    else:
        run_dir = bundle.run_folder()
        if run_dir is None:
            raise UserError(f"{bundle.root}: model.json has no training.split and the bundle's "
                            f"run folder {bundle.training.get('run')!r} is gone; calibrate needs "
                            "the run's validation subjects")
        run = load_run(run_dir)
        val, options = run.split.get("val") or [], run.config["dataset"].get("options", {})
    if not isinstance(val, list) or not all(isinstance(v, str) for v in val):
        raise UserError(f"{where}: training.split.val must be a list of subject names")
    if not isinstance(options, dict):
        raise UserError(f"{where}: training.dataset.options must be an object of dataset options")
    return val, options


def _validation_sessions(bundle: Bundle, data: str, classifier_args: tuple) -> tuple[list, dict]:
    """The run's validation sessions of DATA through the bundle's model; refuses unusable data."""
    from gesturekit.train.datasets import load_dataset
    from gesturekit.train.evaluate import stream_sessions

    val, options = _validation_split(bundle)
    dataset = load_dataset(data, **options)
    missing = [s for s in val if s not in dataset.subjects]
    if not val or missing:
        raise UserError(f"{data}: the run's validation subjects {', '.join(missing or val) or '(none)'} "
                        f"are not in the dataset (subjects: {', '.join(dataset.subjects)})")
    classifier = Classifier(bundle, *classifier_args)
    sessions = []
    for s in stream_sessions(bundle, dataset, val):
        ends, probs = window_probabilities(bundle, s.data, classifier, s.turned)
        sessions.append(Session(bundle_label_ids(bundle, s.label_ids, dataset.labels), ends, probs))
    info = {"source": "validation subjects, the bundle's model", "validation_subjects": val,
            "backend": classifier.backend, "model": classifier.kind}
    return sessions, info


def _fold_sessions(bundle: Bundle, data: str, folds: int) -> tuple[list, dict]:
    """Every non-test subject's sessions of DATA through the fold model that did not train on
    them (Keras, float: what the bundle's float model computes to 1e-4)."""
    from gesturekit.export.fold_runs import fold_runs
    from gesturekit.train.datasets import load_dataset
    from gesturekit.train.evaluate import stream_sessions
    from gesturekit.train.runs import load_keras_model

    run_dir = bundle.run_folder()
    if run_dir is None:
        raise UserError(f"{bundle.root}: --folds trains fold models as the bundle's run was, and "
                        f"its run folder {bundle.training.get('run')!r} is gone; calibrate "
                        "without --folds, or keep the run beside the bundle")
    runs = fold_runs(run_dir, data, folds)
    dataset = load_dataset(data, **runs[0][0].config["dataset"].get("options", {}))
    sessions, subjects = [], []
    for run, held in runs:
        fold = replace(run.model_info, hop=bundle.hop)  # the fold's frame and normalisation
        model = load_keras_model(run)
        for s in stream_sessions(fold, dataset, held):
            ends, probs = _keras_probabilities(fold, s.data, model, s.turned)
            sessions.append(Session(bundle_label_ids(bundle, s.label_ids, dataset.labels), ends, probs))
        subjects += held
    info = {"source": f"out-of-fold predictions of {folds} fold models on the non-test subjects",
            "validation_subjects": subjects, "folds": [str(r.root) for r, _ in runs],
            "backend": "keras", "model": "float"}
    return sessions, info


def _keras_probabilities(info, data: np.ndarray, model,
                         turned: bool) -> tuple[np.ndarray, np.ndarray]:
    """`window_probabilities` for a Keras model: the same frame and windows, one batch."""
    ends, windows = stream_windows(info, data, turned)
    x = info.normalization.apply(windows)
    return ends, model.predict(x, batch_size=1024, verbose=0).astype(np.float32)


def _duration(hours: float) -> str:
    return f"{hours:.2f} h" if hours >= 2 else f"{hours * 60:.1f} min"


def check_enough(bundle: Bundle, truths: list[SessionTruth], events: list[str], hours: dict,
                 budget: float | None, data: str, subjects: list[str]) -> None:
    """Refuse data the settings could not rest on: an event class without a segment in the
    calibration sessions (nothing to tune it on), or, with a budget of F false events per hour,
    less than 3/F hours of background (too little to tell F from none)."""
    where = f"{data}: the calibration subjects ({', '.join(subjects)})"
    found = {cls for t in truths for cls, _, _ in t.segments}
    empty = [e for e in events if bundle.labels.index(e) not in found]
    if empty:
        raise UserError(f"{where} have no segment of event class(es) {', '.join(empty)}: nothing "
                        "to calibrate them on; label some, or leave them out with --event-classes")
    if budget is not None and hours["background"] < 3 / budget:
        have = hours["background"]
        raise UserError(f"{where} hold {_duration(have)} of background; a budget of {budget:g} "
                        f"false events per hour needs at least {_duration(3 / budget)} (3/F hours) "
                        "to be tested; calibrate on more people (--folds 3), record more "
                        "background, or " + (f"give --max-false-per-hour {math.ceil(3 / have)} or more"
                                             if have > 0 else "calibrate without --max-false-per-hour"))


def _check_options(max_false_per_hour: float | None, folds: int, backend: str | None,
                   int8: bool) -> None:
    if max_false_per_hour is not None and not (max_false_per_hour > 0 and
                                               math.isfinite(max_false_per_hour)):
        raise UserError(f"--max-false-per-hour {max_false_per_hour}: expected a positive number "
                        "of false events per hour")
    if folds and (backend or int8):
        raise UserError("--folds: the fold runs' Keras models predict (float); --backend and "
                        "--int8 choose the bundle's interpreter, used without --folds")


def calibrate(bundle_dir: str, data: str, max_false_per_hour: float | None = None,
              event_classes: list[str] | None = None, backend: str | None = None,
              int8: bool = False, folds: int = 0) -> dict:
    """Search, verify and write the per-class post-processing; returns what was written."""
    _check_options(max_false_per_hour, folds, backend, int8)
    bundle = load_bundle(bundle_dir)
    events = check_event_classes(event_classes, bundle.labels, bundle.background_label,
                                 str(bundle.root)) or bundle.events
    if not events:
        raise UserError(f"{bundle.root}: no event classes to calibrate")
    header_path = bundle.root / bundle.files.get("c_config", "model_config.h")
    header = header_path.read_text(encoding="utf-8") if header_path.is_file() else None
    sessions, info = (_fold_sessions(bundle, data, folds) if folds else
                      _validation_sessions(bundle, data, choose_backend(bundle, backend, int8)))
    info = {"run": bundle.training.get("run"), "dataset": str(data), "hop": bundle.hop,
            "sessions": len(sessions), **info}

    is_event = np.isin(np.arange(len(bundle.labels)), [bundle.labels.index(e) for e in events])
    truths = [SessionTruth(bundle, s.ids, is_event) for s in sessions]
    hours = {kind: sum(int(getattr(t, kind).sum()) for t in truths) / bundle.sample_rate_hz / 3600
             for kind in ("background", "states")}
    check_enough(bundle, truths, events, hours, max_false_per_hour, data, info["validation_subjects"])
    averages = smoothed_outputs(sessions, grid_counts(bundle.hop, bundle.sample_rate_hz)[0])
    options = {e: class_options(sessions, truths, bundle.labels.index(e), bundle.window, bundle.hop,
                                bundle.sample_rate_hz, averages) for e in events}
    chosen, budget_met = choose(options, max_false_per_hour, hours)

    # The choice through the runner's own detector and scoring: the figures reported.
    bundle.event_classes = events
    bundle.postprocess = {**{k: bundle.postprocess[k] for k in DEFAULT_POSTPROCESS},
                          "per_class": {e: chosen[e].settings for e in events}}
    cfg = PostprocessConfig.for_bundle(bundle)
    scored = [(f"session {i}", s.ids, detect(bundle, s.ends, s.probs, cfg))
              for i, s in enumerate(sessions)]
    validation = score_events(bundle, scored, events)
    validation.pop("events_by_session")
    objective = ("max recall within the budget" if max_false_per_hour is not None
                 else "best event F1 per class")
    bundle.calibration = {**info, "objective": objective,
                          "max_false_per_hour": max_false_per_hour, "budget_met": budget_met,
                          "hours": {k: round(v, 4) for k, v in hours.items()},
                          "validation": validation}
    final = bundle.root

    def build(work: Path) -> None:
        """The bundle's files (but earlier calibration plots) copied, then rewritten."""
        shutil.copytree(final, work, dirs_exist_ok=True, ignore=lambda _, names: [
            n for n in names if n.startswith(".") or (n.startswith("calibration_")
                                                      and n.endswith(".png"))])
        bundle.root = work
        _write(bundle, header, str(header_path), options, chosen, hours)

    try:
        replace_folder(final, build)
    finally:
        bundle.root = final
    return bundle.calibration


def _write(bundle: Bundle, header: str | None, header_where: str, options: dict,
           chosen: dict, hours: dict) -> None:
    """Into the bundle's folder (a copy, swapped in when whole): the PNGs, model_config.h
    (`header`, read from `header_where`, with the new post-processing block), report.md and
    model.json."""
    from gesturekit.train.plots import draw_tradeoff

    quiet = hours["background"] + hours["states"]
    figures = {}
    for label, opts in options.items():
        name = f"calibration_{''.join(ch if ch.isalnum() else '_' for ch in label)}.png"
        points = [(o.recall, (o.false_background + o.false_states) / quiet if quiet else 0.0)
                  for o in opts]
        pick = chosen[label]
        draw_tradeoff(label, points, (pick.recall, (pick.false_background + pick.false_states)
                                      / quiet if quiet else 0.0), bundle.root / name)
        figures[label] = name
    bundle.calibration["figures"] = figures
    if header is not None:
        block = carray.postprocess_block(bundle)
        write_atomic(bundle.root / bundle.files.get("c_config", "model_config.h"),
                     carray.replace_postprocess_block(header, block, header_where))
    report = bundle.root / bundle.files.get("report", "report.md")
    if report.is_file():
        text = report.read_text(encoding="utf-8").split(REPORT_SECTION)[0].rstrip("\n")
        write_atomic(report, text + "\n" + REPORT_SECTION + report_section(bundle))
    write_model_json(bundle)


def _interval(v: dict) -> str:
    """' (95%: a-b)' for the false-event rate per hour of background, or ''."""
    ci = v.get("false_per_hour_background_95")
    return f" (95%: {ci[0]:.1f}-{ci[1]:.1f})" if ci else ""


def report_section(bundle: Bundle) -> str:
    """The report's calibration section: settings and calibration figures per event class."""
    cal = bundle.calibration
    v = cal["validation"]
    budget = cal["max_false_per_hour"]
    lines = [
        f"`gesturekit calibrate` at hop {cal['hop']} on {cal['source']}: subjects "
        f"{', '.join(cal['validation_subjects'])} ({cal['sessions']} sessions; "
        f"{cal['hours']['background']:.2f} h of background, {cal['hours']['states']:.2f} h of "
        f"non-event states), {cal['model']} model: "
        + (f"most recall within {budget:g} false events per hour." if budget is not None
           else "best event F1 per class."),
        f"Event classes: {', '.join(bundle.event_classes)} (the others are states, never announced).",
        "",
        "| class | smoothing s | threshold | min on s | refractory s | recall | precision "
        "| delay from end p90 s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, s in bundle.postprocess["per_class"].items():
        c = v["per_class"][label]
        precision = f"{c['precision']:.2f}" if c["precision"] is not None else "-"
        recall = f"{c['recall']:.2f}" if c["recall"] is not None else "-"
        delay = c["delay_s"]["p90"]
        lines.append(f"| {label} | {s['smoothing_s']:g} | {s['threshold']:g} | {s['min_on_s']:g} | "
                     f"{s['refractory_s']:g} | {recall} | {precision} | "
                     f"{delay if delay is not None else '-'} |")
    rate_b, rate_s = v["false_events_per_hour_background"], v["false_events_per_hour_states"]
    lines += ["", f"Calibration sessions: recall {v['recall'] or 0:.2f}, {v['false_events']} false "
              f"events ({'-' if rate_b is None else f'{rate_b:.1f}'} per hour of background"
              f"{_interval(v)}, {'-' if rate_s is None else f'{rate_s:.1f}'} per hour of non-event "
              f"states), {v['double_counts'] or 0:.2f} events per segment found. Test subjects were "
              "not used; measure them with `gesturekit evaluate BUNDLE DATA --stream --subjects ...`.",
              ""]
    lines += [f"![{label}]({name})" for label, name in cal["figures"].items()]
    return "\n".join(lines) + "\n"


def print_summary(result: dict) -> None:
    v = result["validation"]
    print(f"calibrated at hop {result['hop']} on {result['sessions']} sessions of "
          f"{result['source']} (subjects {', '.join(result['validation_subjects'])}): "
          f"{result['objective']}")
    for label, c in v["per_class"].items():
        print(f"  {label:<20} recall {c['recall'] if c['recall'] is not None else float('nan'):.2f}"
              f"  precision {c['precision'] if c['precision'] is not None else float('nan'):.2f}"
              f"  events {c['events']}")
    rate_b = v["false_events_per_hour_background"]
    print(f"false events per hour: background {'-' if rate_b is None else f'{rate_b:.1f}'}"
          f"{_interval(v)}, non-event states {v['false_events_per_hour_states']}")
