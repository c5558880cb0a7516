"""Streaming figures on the HAPT test subjects: event precision/recall per class and false
events per hour of background, through the runner's windowing and post-processing.

Each bundle (one per training seed, e.g. from `bench/export_hapt.py --work DIR`) replays
every session of its test subjects from start to end (`evaluate_stream`, float TFLite).
Unlabelled HAPT time is the background. Two post-processing settings: the bundle's defaults
and a looser one (no smoothing, one window), to show the trade-off. Mean ± std over bundles.

Results: bench/results/device_stream_hapt.json. Run:
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/device_stream_hapt.py --data HAPT --bundles B0 B1 B2
(HAPT: the UCI HAPT folder or zip, https://archive.ics.uci.edu/dataset/341.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from gesturekit.device.core.backends import Classifier
from gesturekit.device.core.bundle import load_bundle
from gesturekit.device.core.postprocess import PostprocessConfig
from gesturekit.device.core.stream_eval import evaluate_stream
from gesturekit.train.datasets import load_dataset
from gesturekit.train.evaluate import stream_sessions

RESULTS = Path(__file__).resolve().parent / "results" / "device_stream_hapt.json"
TRANSITIONS = ["STAND_TO_SIT", "SIT_TO_STAND", "SIT_TO_LIE", "LIE_TO_SIT", "STAND_TO_LIE",
               "LIE_TO_STAND"]
LOOSE = {"smoothing_s": 0.0, "threshold": 0.5, "min_on_s": 0.0, "refractory_s": 1.0}


def one_bundle(path: str, dataset) -> dict:
    bundle = load_bundle(path)
    test = bundle.training["split"]["test"]
    sessions = stream_sessions(bundle, dataset, test)
    classifier = Classifier(bundle, "ai_edge_litert", "float")
    out = {"bundle": path, "test_subjects": sorted(test, key=int), "sessions": len(sessions),
           "window_macro_f1": bundle.training.get("test_macro_f1")}
    for name, overrides in (("bundle_defaults", None), ("loose", LOOSE)):
        cfg = PostprocessConfig.for_bundle(bundle, overrides)
        result = evaluate_stream(bundle, sessions, dataset.labels, classifier, cfg)
        result.pop("events_by_session")
        out[name] = result
    return out


def mean_std(values: list) -> str:
    values = [v for v in values if v is not None]
    return f"{np.mean(values):.2f}±{np.std(values):.2f}" if values else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundles", nargs="+", required=True)
    ap.add_argument("--data", type=Path, required=True,
                    help="UCI HAPT folder or zip (https://archive.ics.uci.edu/dataset/341)")
    args = ap.parse_args()
    if not args.data.exists():
        ap.error(f"--data {args.data}: no such folder or zip")
    dataset = load_dataset(args.data)
    rows = [one_bundle(b, dataset) for b in args.bundles]
    for setting in ("bundle_defaults", "loose"):
        cfg = rows[0][setting]["postprocess"]
        print(f"\n{setting}: {cfg}  ({len(rows)} bundles, mean±std)")
        print(f"{'class':<20} {'precision':>10} {'recall':>10} {'events':>7} {'segments':>8}")
        for label in rows[0][setting]["per_class"]:
            per = [r[setting]["per_class"][label] for r in rows]
            mark = " *" if label in TRANSITIONS else ""
            print(f"{label + mark:<20} {mean_std([p['precision'] for p in per]):>10} "
                  f"{mean_std([p['recall'] for p in per]):>10} "
                  f"{np.mean([p['events'] for p in per]):>7.0f} {per[0]['segments']:>8}")
        tp = [np.mean([r[setting]["per_class"][t]["precision"] or 0 for t in TRANSITIONS])
              for r in rows]
        tr = [np.mean([r[setting]["per_class"][t]["recall"] for t in TRANSITIONS]) for r in rows]
        fph = [r[setting]["false_events_per_hour_background"] for r in rows]
        print(f"transitions (*): precision {mean_std(tp)}, recall {mean_std(tr)}; "
              f"false events per hour of background {mean_std(fph)} "
              f"({rows[0][setting]['background_hours']:.2f} h of background)")
        for r, p, rc in zip(rows, tp, tr, strict=True):
            r[setting]["transitions"] = {"precision": p, "recall": rc}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"transitions": TRANSITIONS, "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
