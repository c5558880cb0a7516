"""`gesturekit calibrate BUNDLE DATA`: per-class post-processing tuned on validation subjects.

The run's validation subjects (never its test subjects) are replayed through the runner's
windowing and classifier once (`stream_eval.window_probabilities`). Then, for every event
class on its own (classes are decided independently, see `device/core/postprocess.py`), every
setting of a grid of smoothing, threshold, minimum consecutive windows and refractory time is
scored from those probabilities with the rules of `stream_eval.score_events`:

- with `--max-false-per-hour F`: the settings that find the most segments (mean recall over
  event classes) while the false events stay within F per hour of background and F per hour
  of non-event states (summed over classes, so the budget holds for the stream);
- without a budget: each class's best event F1.

The choice is replayed through the real `EventDetector` and scored by `score_events` (the
figures reported), then written into `model.json` (`postprocess.per_class`, `event_classes`,
`calibration`) and `model_config.h` (its post-processing block), with a recall against false
events per hour PNG per event class in the bundle and its report. Nothing is retrained or
re-exported. The bundle is rewritten as a whole (`device.core.files.replace_folder`: a copy beside
it, renamed over it when complete), so bad input, a failure or a kill changes nothing.

The validation subjects and dataset options come from model.json (`training.split`,
`training.dataset`, written by export), so a bundle calibrates from any folder, moved or copied,
without its run. Settings must rest on something: data whose validation sessions have no
segment of an event class, or, with a budget F, less than 3/F hours of background (with no
false event in 3/F hours, the rate is at most F with 95% confidence: the rule of three) are
refused with one line.
"""

from __future__ import annotations

import itertools
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gesturekit.device.core.backends import Classifier, choose_backend
from gesturekit.device.core.bundle import MODEL_JSON, Bundle, load_bundle, write_model_json
from gesturekit.device.core.files import replace_folder, write_atomic
from gesturekit.device.core.model_info import DEFAULT_POSTPROCESS, check_event_classes
from gesturekit.device.core.postprocess import PostprocessConfig, smoothed
from gesturekit.device.core.stream_eval import (
    bundle_label_ids,
    detect,
    score_events,
    window_probabilities,
)
from gesturekit.device.core.windowing import UNLABELLED, label_runs
from gesturekit.errors import UserError
from gesturekit.export import carray

SMOOTHING = (1, 2, 3, 4)
MIN_CONSECUTIVE = (1, 2, 3)
THRESHOLDS = tuple(round(0.3 + 0.05 * i, 2) for i in range(14)) + (0.97, 0.99)
REFRACTORY_HOPS = (0, 2, 4, 8)  # refractory times, in hops of the model
REPORT_SECTION = "\n## Calibration\n"


@dataclass
class Option:
    """One setting of one class and what it scores on the validation sessions."""

    settings: dict
    found: int  # segments with an event
    segments: int
    events: int
    true_events: int
    false_background: int
    false_states: int
    delays: list[float]
    neighbours: float = 0.0  # the objective averaged with the next thresholds down and up

    @property
    def false_events(self) -> int:
        return self.events - self.true_events

    @property
    def recall(self) -> float:
        return self.found / self.segments if self.segments else 0.0

    @property
    def precision(self) -> float:
        return self.true_events / self.events if self.events else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def preference(self) -> tuple:
        """Among equal objectives: a setting whose neighbours score well too (the middle of a
        plateau, not its edge: a few validation subjects tie many settings), fewer false
        events, stricter, earlier."""
        return (round(self.neighbours, 9), -self.false_events, self.settings["threshold"],
                self.settings["min_consecutive"], -float(np.mean(self.delays or [0.0])))


@dataclass
class _Session:
    ids: np.ndarray  # per-sample bundle label ids
    ends: np.ndarray  # window ends
    probs: np.ndarray  # (W, K)


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
    """The run's validation sessions of DATA, replayed once; refuses everything unusable."""
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
        ends, probs = window_probabilities(bundle, s.data, classifier)
        sessions.append(_Session(bundle_label_ids(bundle, s.label_ids, dataset.labels), ends, probs))
    info = {"run": bundle.training.get("run"), "dataset": str(data), "validation_subjects": val,
            "sessions": len(sessions), "backend": classifier.backend, "model": classifier.kind}
    return sessions, info


def _duration(hours: float) -> str:
    return f"{hours:.2f} h" if hours >= 2 else f"{hours * 60:.1f} min"


def check_enough(bundle: Bundle, sessions: list[_Session], events: list[str], hours: dict,
                 budget: float | None, data: str, subjects: list[str]) -> None:
    """Refuse data the settings could not rest on: an event class without a segment on the
    validation sessions (nothing to tune it on), or, with a budget of F false events per hour,
    less than 3/F hours of background (too little to tell F from none)."""
    where = f"{data}: the validation subjects ({', '.join(subjects)})"
    found = {int(s.ids[a]) for s in sessions for a, _ in label_runs(s.ids)}
    empty = [e for e in events if bundle.labels.index(e) not in found]
    if empty:
        raise UserError(f"{where} have no segment of event class(es) {', '.join(empty)}: nothing "
                        "to calibrate them on; label some, or leave them out with --event-classes")
    if budget is not None and hours["background"] < 3 / budget:
        have = hours["background"]
        raise UserError(f"{where} hold {_duration(have)} of background; a budget of {budget:g} "
                        f"false events per hour needs at least {_duration(3 / budget)} (3/F hours) "
                        "to be tested; record more background, or "
                        + (f"give --max-false-per-hour {math.ceil(3 / have)} or more" if have > 0
                           else "calibrate without --max-false-per-hour"))


def _class_windows(bundle: Bundle, s: _Session, c: int, is_event: np.ndarray) -> tuple:
    """Per window of the session, for class c: the segments of c it overlaps, and where a false
    event there would count (0 true, 1 background, 2 states, 3 event segments), as
    `score_events` decides."""
    ids, window = s.ids, bundle.window
    background = (ids == UNLABELLED) | (ids == bundle.background_index)
    states = ~background & ~is_event[np.maximum(ids, 0)]
    segments = [(a, b) for a, b in label_runs(ids) if ids[a] == c]
    overlaps, kinds = [], np.zeros(len(s.ends), np.int8)
    for i, end in enumerate(s.ends):
        a = int(end) - window
        overlaps.append([j for j, (first, last) in enumerate(segments) if a < last and first < end])
        if (ids[a:end] == c).any():
            continue
        if (background[a:end] | states[a:end]).mean() > 0.5:
            kinds[i] = 1 if background[a:end].sum() >= states[a:end].sum() else 2
        else:
            kinds[i] = 3
    return segments, overlaps, kinds


def _event_windows(on: np.ndarray, times: np.ndarray, n: int, refractory: float) -> list[int]:
    """Windows where one class fires, as `EventDetector` decides for that class alone."""
    fired, last = [], None
    padded = np.concatenate([[False], on, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    for first, end in zip(edges[::2], edges[1::2], strict=True):
        for i in range(first + n - 1, end):
            if last is None or times[i] - last >= refractory:
                fired.append(i)
                last = times[i]
                break
    return fired


def class_options(bundle: Bundle, sessions: list[_Session], c: int,
                  is_event: np.ndarray, averages: dict) -> list[Option]:
    """Every grid setting of class c, scored on the sessions."""
    rate, hop_s = bundle.sample_rate_hz, bundle.hop / bundle.sample_rate_hz
    per_session = [_class_windows(bundle, s, c, is_event) for s in sessions]
    options = []
    for k, t in itertools.product(SMOOTHING, THRESHOLDS):
        ons = [(top == c) & (conf[:, c] >= t) for top, conf in averages[k]]
        for n, hops in itertools.product(MIN_CONSECUTIVE, REFRACTORY_HOPS):
            settings = {"smoothing": k, "threshold": t, "min_consecutive": n,
                        "refractory_s": round(hops * hop_s, 4)}
            found = segments = events = true = fb = fs = 0
            delays = []
            for s, on, (segs, overlaps, kinds) in zip(sessions, ons, per_session, strict=True):
                fired = _event_windows(on, s.ends / rate, n, settings["refractory_s"])
                hit = {}
                for i in fired:
                    for j in overlaps[i]:
                        hit.setdefault(j, i)
                segments += len(segs)
                found += len(hit)
                delays += [(int(s.ends[i]) - segs[j][0]) / rate for j, i in hit.items()]
                events += len(fired)
                kind = kinds[fired] if fired else np.zeros(0, np.int8)
                true += int((kind == 0).sum())
                fb += int((kind == 1).sum())
                fs += int((kind == 2).sum())
            options.append(Option(settings, found, segments, events, true, fb, fs, delays))
    return options


def rate_neighbours(options: list[Option], objective) -> None:
    """Set each option's `neighbours`: `objective` averaged over it and the options one
    threshold step down and up with the same other settings (0 past the grid's ends: an edge
    is no middle)."""
    grid = {tuple(o.settings.values()): o for o in options}
    for o in options:
        k, t, n, r = o.settings.values()
        i = THRESHOLDS.index(t)
        near = [grid[(k, THRESHOLDS[j], n, r)] for j in (i - 1, i + 1) if 0 <= j < len(THRESHOLDS)]
        o.neighbours = (objective(o) + sum(objective(x) for x in near)) / 3


def choose(options: dict[str, list[Option]], budget: float | None,
           hours: dict[str, float]) -> tuple[dict[str, Option], bool]:
    """The setting per class and whether the budget holds: best F1 each (no budget), or the
    most recall within the budget of false events per hour of background and of non-event
    states, summed over classes (when no setting keeps within it: the fewest false events)."""
    if budget is None:
        for opts in options.values():
            rate_neighbours(opts, lambda o: o.f1)
        return {c: max(opts, key=lambda o: (o.f1, o.preference())) for c, opts in options.items()}, True
    for opts in options.values():
        rate_neighbours(opts, lambda o: o.recall)
    # Allowed false events on these sessions; no hours of a kind means none can fall there.
    limit_b = math.floor(budget * hours["background"] + 1e-9)
    limit_s = math.floor(budget * hours["states"] + 1e-9)
    # Knapsack over classes in two budgets: (false in background, in states) -> best so far,
    # scored by (sum of recall, fewer false events of any kind, sum of neighbours' recall).
    best: dict[tuple[int, int], tuple[tuple, dict[str, Option]]] = {(0, 0): ((0.0, 0, 0.0), {})}
    for c, opts in options.items():
        useful: dict[tuple[int, int], Option] = {}  # the best option per false-event cost
        for o in opts:
            key = (o.false_background, o.false_states)
            if key[0] <= limit_b and key[1] <= limit_s and (
                    key not in useful or (o.recall, o.preference()) >
                    (useful[key].recall, useful[key].preference())):
                useful[key] = o
        step: dict[tuple[int, int], tuple[tuple, dict[str, Option]]] = {}
        for (b, s), (score, picks) in best.items():
            for (ob, os_), o in useful.items():
                key = (b + ob, s + os_)
                if key[0] > limit_b or key[1] > limit_s:
                    continue
                new = (score[0] + o.recall, score[1] - o.false_events, score[2] + o.neighbours)
                if key not in step or new > step[key][0]:
                    step[key] = (new, {**picks, c: o})
        best = step
    if not best:
        fewest = {c: min(opts, key=lambda o: (o.false_background + o.false_states, -o.recall))
                  for c, opts in options.items()}
        return fewest, False
    return max(best.values(), key=lambda v: v[0])[1], True


def calibrate(bundle_dir: str, data: str, max_false_per_hour: float | None = None,
              event_classes: list[str] | None = None, backend: str | None = None,
              int8: bool = False) -> dict:
    """Search, verify and write the per-class post-processing; returns what was written."""
    if max_false_per_hour is not None and not (max_false_per_hour > 0 and
                                               math.isfinite(max_false_per_hour)):
        raise UserError(f"--max-false-per-hour {max_false_per_hour}: expected a positive number "
                        "of false events per hour")
    bundle = load_bundle(bundle_dir)
    events = check_event_classes(event_classes, bundle.labels, bundle.background_label,
                                 str(bundle.root)) or bundle.events
    if not events:
        raise UserError(f"{bundle.root}: no event classes to calibrate")
    header_path = bundle.root / bundle.files.get("c_config", "model_config.h")
    header = header_path.read_text(encoding="utf-8") if header_path.is_file() else None
    sessions, info = _validation_sessions(bundle, data, choose_backend(bundle, backend, int8))

    is_event = np.isin(np.arange(len(bundle.labels)), [bundle.labels.index(e) for e in events])
    averages = _smoothed_outputs(sessions)
    hours = _hours(bundle, sessions, is_event)
    check_enough(bundle, sessions, events, hours, max_false_per_hour, data,
                 info["validation_subjects"])
    options = {e: class_options(bundle, sessions, bundle.labels.index(e), is_event, averages)
               for e in events}
    chosen, budget_met = choose(options, max_false_per_hour, hours)

    # The choice through the runner's own detector and scoring: the figures reported.
    per_class = {e: chosen[e].settings for e in events}
    cfg = PostprocessConfig(**{k: bundle.postprocess[k] for k in DEFAULT_POSTPROCESS},
                            per_class=per_class, event_classes=events)
    scored = [(f"session {i}", s.ids, detect(bundle, s.ends, s.probs, cfg))
              for i, s in enumerate(sessions)]
    validation = score_events(bundle, scored, events)
    validation.pop("events_by_session")

    bundle.event_classes = events
    bundle.postprocess = {**{k: bundle.postprocess[k] for k in DEFAULT_POSTPROCESS},
                          "per_class": per_class}
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


def _smoothed_outputs(sessions: list) -> dict[int, list]:
    """For each smoothing k of the grid, per session: (top class, averaged probabilities) of
    every window, as the detector would average them."""
    averages = {k: [] for k in SMOOTHING}
    for s, k in itertools.product(sessions, SMOOTHING):
        avg = np.array([smoothed(list(s.probs[max(0, i - k + 1): i + 1]))
                        for i in range(len(s.probs))]).reshape(len(s.probs), -1)
        averages[k].append((avg.argmax(axis=1), avg))
    return averages


def _hours(bundle: Bundle, sessions: list, is_event: np.ndarray) -> dict[str, float]:
    """Hours of background (unlabelled or the background class) and of states (labelled, not
    an event class) in the validation sessions: what false events are counted over."""
    rate = bundle.sample_rate_hz
    background = [(s.ids == UNLABELLED) | (s.ids == bundle.background_index) for s in sessions]
    return {"background": sum(int(b.sum()) for b in background) / rate / 3600,
            "states": sum(int((~b & ~is_event[np.maximum(s.ids, 0)]).sum())
                          for s, b in zip(sessions, background, strict=True)) / rate / 3600}


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
        block = carray.postprocess_block(bundle.labels, bundle.background_label,
                                         bundle.postprocess, bundle.event_classes)
        write_atomic(bundle.root / bundle.files.get("c_config", "model_config.h"),
                     carray.replace_postprocess_block(header, block, header_where))
    report = bundle.root / bundle.files.get("report", "report.md")
    if report.is_file():
        text = report.read_text(encoding="utf-8").split(REPORT_SECTION)[0].rstrip("\n")
        write_atomic(report, text + "\n" + REPORT_SECTION + report_section(bundle))
    write_model_json(bundle)


def report_section(bundle: Bundle) -> str:
    """The report's calibration section: settings and validation figures per event class."""
    cal = bundle.calibration
    v = cal["validation"]
    budget = cal["max_false_per_hour"]
    lines = [
        f"`gesturekit calibrate` on the validation subjects {', '.join(cal['validation_subjects'])} "
        f"({cal['sessions']} sessions; {cal['hours']['background']:.2f} h of background, "
        f"{cal['hours']['states']:.2f} h of non-event states), {cal['model']} model: "
        + (f"most recall within {budget:g} false events per hour." if budget is not None
           else "best event F1 per class."),
        f"Event classes: {', '.join(bundle.event_classes)} (the others are states, never announced).",
        "",
        "| class | smoothing | threshold | min consecutive | refractory s | recall | precision "
        "| delay p90 s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, s in bundle.postprocess["per_class"].items():
        c = v["per_class"][label]
        precision = f"{c['precision']:.2f}" if c["precision"] is not None else "-"
        recall = f"{c['recall']:.2f}" if c["recall"] is not None else "-"
        delay = c["delay_s"]["p90"]
        lines.append(f"| {label} | {s['smoothing']} | {s['threshold']:g} | {s['min_consecutive']} | "
                     f"{s['refractory_s']:g} | {recall} | {precision} | "
                     f"{delay if delay is not None else '-'} |")
    rate_b, rate_s = v["false_events_per_hour_background"], v["false_events_per_hour_states"]
    lines += ["", f"Validation: recall {v['recall'] or 0:.2f}, {v['false_events']} false events "
              f"({'-' if rate_b is None else f'{rate_b:.1f}'} per hour of background, "
              f"{'-' if rate_s is None else f'{rate_s:.1f}'} per hour of non-event states), "
              f"{v['double_counts'] or 0:.2f} events per segment found. Test subjects were not "
              "used; measure them with `gesturekit evaluate BUNDLE DATA --stream --subjects ...`.",
              ""]
    lines += [f"![{label}]({name})" for label, name in cal["figures"].items()]
    return "\n".join(lines) + "\n"


def print_summary(result: dict) -> None:
    v = result["validation"]
    print(f"calibrated on {result['sessions']} validation sessions "
          f"(subjects {', '.join(result['validation_subjects'])}): {result['objective']}")
    for label, c in v["per_class"].items():
        print(f"  {label:<20} recall {c['recall'] if c['recall'] is not None else float('nan'):.2f}"
              f"  precision {c['precision'] if c['precision'] is not None else float('nan'):.2f}"
              f"  events {c['events']}")
    print(f"false events per hour: background {v['false_events_per_hour_background']}, "
          f"non-event states {v['false_events_per_hour_states']}")

