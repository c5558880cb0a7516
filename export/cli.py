"""Subcommands for export (TensorFlow is imported inside the command)."""

from __future__ import annotations

import argparse


def add_commands(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export", help="turn a training run into a verified model bundle",
        description="Write TFLite float and int8 (fused LSTM), ONNX, a TFLM C array, "
                    "model.json and report.md; check each against the Keras model on the "
                    "run's test split.")
    export.add_argument("run", metavar="RUN", help="run folder written by `gesturekit train`")
    export.add_argument("--out", required=True, metavar="BUNDLE", help="bundle folder to create")
    export.add_argument("--model", choices=("cnn_lstm", "cnn"), default="cnn_lstm",
                        help="cnn_lstm (default) or cnn: the phase-2 CNN head, smallest")
    export.add_argument("--force", action="store_true", help="replace an existing bundle")
    export.add_argument("--allow-mismatch", action="store_true",
                        help="keep the files even when float parity with Keras fails")
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from gesturekit.export.build import export_run

    result = export_run(args.run, args.out, model=args.model, force=args.force,
                        allow_mismatch=args.allow_mismatch)
    print_summary(result.summary)
    print(f"wrote {result.out}")
    if not result.float_ok:
        print("warning: float parity with Keras failed; files kept (--allow-mismatch)")
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
