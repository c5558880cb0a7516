"""Live events on HAPT people the model never saw: postural transitions as events, the six
activities as states, with and without a background class, before and after calibration.

Per seed and condition, with the CLI as a user would run it (resumable: finished steps are
kept in --work):
  gesturekit train HAPT --out RUN --test-subjects 2,4,9,10,12,13,18,20,24 --seed S
      [--background-label background]
  gesturekit export RUN --out BUNDLE --event-classes <the six transitions>
  gesturekit calibrate BUNDLE_CAL HAPT --max-false-per-hour F   (a copy of BUNDLE; validation
      subjects of the run only)
then both bundles replay every session of the test subjects through the runner's windowing
and post-processing (`evaluate_stream`, float TFLite). Baseline in the same run: the bundle
defaults without a background class; ratios are against it.

Results: bench/results/events_hapt.json. Run:
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/events_hapt.py --data HAPT --work /tmp/events_hapt
(HAPT: the UCI HAPT folder or zip, https://archive.ics.uci.edu/dataset/341.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from gesturekit.device.core.backends import Classifier
from gesturekit.device.core.bundle import load_bundle
from gesturekit.device.core.stream_eval import evaluate_stream
from gesturekit.device.core.windowing import label_runs, window_labels, window_starts
from gesturekit.train.datasets import load_dataset
from gesturekit.train.evaluate import stream_sessions

RESULTS = Path(__file__).resolve().parent / "results" / "events_hapt.json"
TEST_SUBJECTS = "2,4,9,10,12,13,18,20,24"
TRANSITIONS = ["STAND_TO_SIT", "SIT_TO_STAND", "SIT_TO_LIE", "LIE_TO_SIT", "STAND_TO_LIE",
               "LIE_TO_STAND"]
CONDITIONS = {"no_background": [], "background": ["--background-label", "background"]}
GESTUREKIT = [sys.executable, "-m", "gesturekit.cli"]


def step(cmd: list[str], done: Path, log: Path) -> None:
    """Run one CLI step unless its output exists; its output goes to `log`."""
    if done.exists():
        return
    t = time.monotonic()
    with open(log, "a") as f:
        subprocess.run([*GESTUREKIT, *map(str, cmd)], check=True, stdout=f, stderr=f)
    print(f"  {cmd[0]} {Path(str(cmd[1])).name}: {time.monotonic() - t:.0f} s", flush=True)


def bundles(data: Path, work: Path, condition: str, seed: int, budget: float,
            quick: bool) -> tuple[Path, Path]:
    run, bundle, cal = (work / f"{condition}_s{seed}", work / f"{condition}_s{seed}_bundle",
                        work / f"{condition}_s{seed}_calibrated")
    log = work / f"{condition}_s{seed}.log"
    step(["train", data, "--out", run, "--force", "--test-subjects", TEST_SUBJECTS, "--seed", seed,
          *CONDITIONS[condition], *(["--quick"] if quick else [])], run / "model.keras", log)
    step(["export", run, "--out", bundle, "--force", "--event-classes", ",".join(TRANSITIONS)],
         bundle / "model.json", log)
    if not (cal / "model.json").exists() or not load_bundle(cal).calibration:
        shutil.rmtree(cal, ignore_errors=True)
        shutil.copytree(bundle, cal)
        step(["calibrate", cal, data, "--max-false-per-hour", budget], work / "not a file", log)
    return bundle, cal


def transitions(result: dict) -> dict:
    per = [result["per_class"][t] for t in TRANSITIONS]
    return {"recall": result["recall"],
            "precision": float(np.mean([p["precision"] or 0.0 for p in per])),
            "delay_p50_s": result["delay_s"]["p50"], "delay_p90_s": result["delay_s"]["p90"],
            "double_counts": result["double_counts"],
            "false_per_hour_background": result["false_events_per_hour_background"],
            "false_per_hour_states": result["false_events_per_hour_states"],
            "false_events": result["false_events"]}


def score(path: Path, dataset) -> dict:
    bundle = load_bundle(path)
    sessions = stream_sessions(bundle, dataset, TEST_SUBJECTS.split(","))
    result = evaluate_stream(bundle, sessions, dataset.labels,
                             Classifier(bundle, "ai_edge_litert", "float"))
    result.pop("events_by_session")
    per_class_f1 = bundle.training.get("per_class_f1") or {}
    real = [f for label, f in per_class_f1.items() if label != bundle.background_label]
    return {"bundle": str(path), "transitions": transitions(result), "stream": result,
            "window_macro_f1_real_classes": float(np.mean(real)) if real else None,
            "calibration": bundle.calibration.get("validation") and transitions(
                bundle.calibration["validation"])}


def perfect_classifier_delay(dataset, window: int, hop: int, purity: float) -> dict:
    """The floor under any model's detection delay: a classifier right on every window, at the
    runner's window and hop, finds a transition at the first window that training would label
    with it (at least `purity` of it the transition). Delay as `score_events` measures it."""
    test = set(TEST_SUBJECTS.split(","))
    wanted = [dataset.labels.index(t) for t in TRANSITIONS]
    delays, missed = [], 0
    for s in dataset.sessions:
        if s.subject not in test:
            continue
        labels = window_labels(s.label_ids, window, hop, len(dataset.labels), purity)
        ends = window_starts(len(s.label_ids), window, hop) + window
        for first, _end in label_runs(s.label_ids):
            if int(s.label_ids[first]) not in wanted:
                continue
            hit = ends[(labels == s.label_ids[first]) & (ends > first)]
            if len(hit):
                delays.append((hit[0] - first) / dataset.sample_rate_hz)
            else:
                missed += 1
    return {"hop": hop, "segments": len(delays) + missed, "recall": len(delays) / (len(delays) + missed),
            "delay_p50_s": float(np.percentile(delays, 50)), "delay_p90_s": float(np.percentile(delays, 90))}


def mean_std(values: list) -> str:
    values = [v for v in values if v is not None]
    return f"{np.mean(values):.2f}±{np.std(values):.2f}" if values else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True,
                    help="UCI HAPT folder or zip (https://archive.ics.uci.edu/dataset/341)")
    ap.add_argument("--work", type=Path, required=True, help="runs and bundles (resumable)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budget", type=float, default=10.0, help="--max-false-per-hour")
    ap.add_argument("--quick", action="store_true", help="train with --quick (say so in results)")
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    args = ap.parse_args()
    if not args.data.exists():
        ap.error(f"--data {args.data}: no such folder or zip")
    args.work.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(args.data)  # unlabelled time is the background either way
    rows = []
    for condition in args.conditions:
        for seed in args.seeds:
            print(f"{condition} seed {seed}", flush=True)
            default, calibrated = bundles(args.data, args.work, condition, seed, args.budget,
                                          args.quick)
            rows.append({"condition": condition, "seed": seed,
                         "defaults": score(default, dataset),
                         "calibrated": score(calibrated, dataset)})
    baseline = [r["defaults"]["transitions"] for r in rows if r["condition"] == "no_background"]
    base_false = np.mean([b["false_per_hour_background"] for b in baseline]) if baseline else None
    keys = ["recall", "precision", "delay_p50_s", "delay_p90_s", "double_counts",
            "false_per_hour_background", "false_per_hour_states"]
    print(f"\nHAPT test subjects {TEST_SUBJECTS}; transitions are events, activities states; "
          f"calibrated at <= {args.budget:g} false/h on validation subjects; mean±std over seeds "
          f"{args.seeds}{' (--quick)' if args.quick else ''}")
    print(f"{'condition':<15} {'setting':<11} {'macro-F1':>9} " + " ".join(f"{k[:14]:>14}" for k in keys)
          + f" {'bg false x':>10}")
    summary = {}
    for condition in args.conditions:
        for setting in ("defaults", "calibrated"):
            got = [r[setting] for r in rows if r["condition"] == condition]
            t = [g["transitions"] for g in got]
            f1 = mean_std([g["window_macro_f1_real_classes"] for g in got])
            ratio = (np.mean([x["false_per_hour_background"] for x in t]) / base_false
                     if base_false else None)
            summary[f"{condition}/{setting}"] = {
                **{k: [x[k] for x in t] for k in keys},
                "window_macro_f1_real_classes": [g["window_macro_f1_real_classes"] for g in got],
                "false_background_vs_baseline": ratio}
            print(f"{condition:<15} {setting:<11} {f1:>9} "
                  + " ".join(f"{mean_std([x[k] for x in t]):>14}" for k in keys)
                  + f" {'n/a' if ratio is None else f'{ratio:.2f}':>10}")
    bundle = load_bundle(rows[0]["defaults"]["bundle"])
    purity = json.loads((bundle.run_folder() / "config.json").read_text())["purity"]
    floor = [perfect_classifier_delay(dataset, bundle.window, hop, purity)
             for hop in (bundle.hop, bundle.hop // 2, bundle.hop // 4)]
    print(f"\nA classifier right on every window (window {bundle.window}, purity {purity}): "
          + "; ".join(f"hop {f['hop']}: delay p50 {f['delay_p50_s']:.2f} s, p90 "
                      f"{f['delay_p90_s']:.2f} s" for f in floor))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"test_subjects": TEST_SUBJECTS, "transitions": TRANSITIONS,
                                   "budget": args.budget, "quick": args.quick, "seeds": args.seeds,
                                   "summary": summary, "perfect_classifier": floor, "rows": rows},
                                  indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
