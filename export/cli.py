"""Subcommands for export (TensorFlow is imported inside the command)."""

from __future__ import annotations

import argparse

from gesturekit.cli import epilog
from gesturekit.options import nonnegative_int, positive_float


def add_commands(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export", help="turn a training run into a verified model bundle",
        description="Write TFLite float and int8 (fused LSTM), ONNX, a TFLM C array, "
                    "model.json and report.md; check each against the Keras model on the "
                    "run's test split.",
        epilog=epilog("gesturekit export runs/hapt --out bundles/hapt",
                      "gesturekit export demo/run --out demo/bundle --event-classes jump,punch,turn",
                      bad=", or float TFLite or ONNX differ from Keras (nothing written)"))
    export.add_argument("run", metavar="RUN", help="run folder written by `gesturekit train`")
    export.add_argument("--out", required=True, metavar="BUNDLE", help="bundle folder to create")
    export.add_argument("--model", choices=("cnn_lstm", "cnn"), default="cnn_lstm",
                        help="cnn_lstm (default) or cnn: the phase-2 CNN head, smallest")
    export.add_argument("--force", action="store_true", help="replace an existing bundle")
    export.add_argument("--allow-mismatch", action="store_true",
                        help="keep the files even when float parity with Keras fails")
    export.add_argument("--event-classes", type=lambda s: [c for c in s.split(",") if c],
                        help="classes announced as events, e.g. jump,punch,turn (default: every "
                             "class but the background; the others are states, never announced)")
    export.add_argument("--hop", metavar="HOP",
                        help="samples (8) or seconds (0.16s) between the windows the bundle "
                             "decides on, here and on the board (model_config.h kHop; default: "
                             "0.16 s, at most the run's hop)")
    export.set_defaults(func=cmd_export)

    cal = commands.add_parser(
        "calibrate", help="tune a bundle's per-class post-processing on the run's validation subjects",
        description="Replay the run's validation subjects (never its test subjects), or with "
                    "--folds every non-test subject through fold models, at the bundle's hop "
                    "through the runner's windowing and post-processing, search per-class "
                    "smoothing, threshold, minimum time on and refractory time, and write the "
                    "choice into model.json and model_config.h (no retraining, no re-export), "
                    "with a recall / false events per hour plot per event class.",
        epilog=epilog("gesturekit calibrate demo/bundle demo/data",
                      "gesturekit calibrate bundles/hapt ../shared/data/hapt --max-false-per-hour 10 "
                      "--folds 3"))
    cal.add_argument("bundle", metavar="BUNDLE", help="model bundle folder (from `gesturekit export`)")
    cal.add_argument("data", metavar="DATA", help="the run's dataset (folder or HAPT zip)")
    cal.add_argument("--max-false-per-hour", type=positive_float,
                     help="most recall with at most this many false events per hour of background "
                          "and per hour of non-event states (default: best event F1 per class)")
    cal.add_argument("--event-classes", type=lambda s: [c for c in s.split(",") if c],
                     help="classes announced as events (default: the bundle's)")
    cal.add_argument("--folds", type=nonnegative_int, default=0, metavar="K",
                     help="calibrate on every non-test subject through K fold models trained as "
                          "the run was (kept in RUN.folds/; K more trainings) instead of the "
                          "validation subjects alone (default 0: off)")
    cal.add_argument("--backend", choices=("ai_edge_litert", "tflite_runtime", "onnxruntime"),
                     help="interpreter (default: the first installed, in this order)")
    cal.add_argument("--int8", action="store_true", help="calibrate on the full-int8 model's outputs")
    cal.add_argument("--json", action="store_true", help="print the result as JSON")
    cal.set_defaults(func=cmd_calibrate)


def cmd_export(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from gesturekit.export.build import export_run

    result = export_run(args.run, args.out, model=args.model, force=args.force,
                        allow_mismatch=args.allow_mismatch, event_classes=args.event_classes,
                        hop=args.hop)
    print_summary(result.summary)
    print(f"wrote {result.out}")
    if not result.float_ok:
        print("warning: float parity with Keras failed; files kept (--allow-mismatch)")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    import json

    from gesturekit.export.calibrate import calibrate, print_summary

    result = calibrate(args.bundle, args.data, args.max_false_per_hour, args.event_classes,
                       args.backend, args.int8, args.folds)
    if args.json:
        print(json.dumps(result))
    else:
        print_summary(result)
        print(f"wrote {args.bundle}: model.json, model_config.h, report.md and "
              f"{len(result['figures'])} calibration plots")
    return 0


def print_summary(s: dict) -> None:
    """The printed table: files, sizes, ops, parity."""
    print(f"{s['model']}: {s['params']:,} parameters, {s['macs']:,} MACs per window, "
          f"TFLM arena ~{s['arena']['recommended']:,} bytes")
    width = max(len(name) for name in s["files"])
    for name, info in s["files"].items():
        print(f"  {name:<{width}}  {info['bytes']:>9,} B  {', '.join(info['ops'])}")
    print(f"parity on {s['parity']['windows']} test windows (vs Keras):")
    for name in ("float", "onnx", "int8", "int8_xnnpack"):
        p = s["parity"][name]
        print(f"  {name:<12}  max|dp| {p['max_abs_diff']:.2e}  argmax {100 * p['argmax_agreement']:6.2f}%"
              f"  macro-F1 {p['macro_f1']:.4f} ({100 * p['macro_f1_delta']:+.2f} pt)")
    if s.get("cost_vs_cnn_lstm"):
        c = s["cost_vs_cnn_lstm"]
        print(f"CNN head vs the run's CNN-LSTM: macro-F1 {c['cnn_head_macro_f1']:.4f} vs "
              f"{c['cnn_lstm_macro_f1']:.4f} ({100 * c['delta']:+.2f} pt)")
