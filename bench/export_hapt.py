"""Export parity and sizes on real data (UCI HAPT), several seeds.

For each seed: one `train_run` on HAPT with the UCI test subjects 2,4,9,10,12,13,18,20,24
(validation subjects drawn with the seed; the default strategy unless `--strategy`), then
`export_run` of the CNN-LSTM and, for a three-phase run, of its phase-2 CNN head. The table
compares each exported model with its Keras model on the test split (float TFLite and ONNX:
max |dp| and argmax agreement; int8: argmax agreement and macro-F1 change) and sizes against
the float model of the same run (the baseline).

Results: bench/results/export_hapt_STRATEGY.json (rewritten after every seed). Run:
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/export_hapt.py --data HAPT [--seeds 0,1,2]
        [--work DIR] [--strategy three-phase]
(HAPT: the UCI HAPT folder or zip, https://archive.ics.uci.edu/dataset/341.)
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
TEST_SUBJECTS = ["2", "4", "9", "10", "12", "13", "18", "20", "24"]
TARGETS = {"float_max_abs_diff": 1e-4, "float_min_agreement": 0.999,
           "int8_min_agreement": 0.97, "int8_max_f1_loss": 0.01, "int8_max_bytes": 32 * 1024}


def one_seed(seed: int, strategy: str, work: Path, data: Path) -> dict:
    from gesturekit.export.build import export_run
    from gesturekit.train.config import build_config
    from gesturekit.train.trainer import train_run

    run = work / f"run_{strategy}_seed{seed}"
    if not (run / "model.keras").is_file():
        train_run(str(data), run, build_config(seed=seed, test_subjects=TEST_SUBJECTS,
                                               strategy=strategy), {},
                  force=True, progress=lambda message: None)
    row = {"seed": seed, "strategy": strategy}
    for model in ("cnn_lstm", "cnn") if strategy == "three-phase" else ("cnn_lstm",):
        s = export_run(run, work / f"bundle_{model}_seed{seed}", model=model, force=True).summary
        p, files = s["parity"], s["files"]
        row[model] = {
            "params": s["params"], "macs": s["macs"], "arena_bytes": s["arena"]["recommended"],
            "bytes": {name: info["bytes"] for name, info in files.items()},
            "int8_to_float_size": files["model_int8.tflite"]["bytes"]
            / files["model_float.tflite"]["bytes"],
            "keras_macro_f1": p["keras"]["macro_f1"], "windows": p["windows"],
            **{f"{name}_{k}": p[name][k] for name in ("float", "onnx", "int8", "int8_xnnpack")
               for k in ("max_abs_diff", "argmax_agreement", "macro_f1_delta")},
            "ops_int8": files["model_int8.tflite"]["ops"],
        }
    if "cnn" in row:
        row["cnn_head_minus_cnn_lstm_macro_f1"] = (row["cnn"]["keras_macro_f1"]
                                                   - row["cnn_lstm"]["keras_macro_f1"])
    return row


def meets_targets(m: dict) -> bool:
    return (max(m["float_max_abs_diff"], m["onnx_max_abs_diff"]) <= TARGETS["float_max_abs_diff"]
            and min(m["float_argmax_agreement"], m["onnx_argmax_agreement"])
            >= TARGETS["float_min_agreement"]
            and m["int8_argmax_agreement"] >= TARGETS["int8_min_agreement"]
            and m["int8_macro_f1_delta"] >= -TARGETS["int8_max_f1_loss"]
            and m["bytes"]["model_int8.tflite"] <= TARGETS["int8_max_bytes"])


def print_table(rows: list[dict]) -> None:
    print(f"{'seed':>4} {'model':<8} {'int8 B':>7} {'int8/fl':>7} {'fl |dp|':>8} {'fl agr':>7} "
          f"{'onnx |dp|':>9} {'int8 agr':>8} {'int8 dF1':>8} {'xnn agr':>7} {'keras F1':>8} ok")
    for row in rows:
        for model in ("cnn_lstm", "cnn"):
            if model not in row:
                continue
            m = row[model]
            print(f"{row['seed']:>4} {model:<8} {m['bytes']['model_int8.tflite']:>7} "
                  f"{m['int8_to_float_size']:>7.2f} {m['float_max_abs_diff']:>8.1e} "
                  f"{100 * m['float_argmax_agreement']:>6.2f}% {m['onnx_max_abs_diff']:>9.1e} "
                  f"{100 * m['int8_argmax_agreement']:>7.2f}% "
                  f"{100 * m['int8_macro_f1_delta']:>+7.2f}p "
                  f"{100 * m['int8_xnnpack_argmax_agreement']:>6.2f}% "
                  f"{m['keras_macro_f1']:>8.4f} {'yes' if meets_targets(m) else 'NO'}")
        if "cnn" in row:
            print(f"{'':>4} CNN head - CNN-LSTM macro-F1: "
                  f"{100 * row['cnn_head_minus_cnn_lstm_macro_f1']:+.2f} points")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--work", help="folder for runs and bundles (default: a temp folder)")
    parser.add_argument("--strategy", help="training strategy (default: the default's)")
    parser.add_argument("--data", type=Path, required=True,
                        help="UCI HAPT folder or zip (https://archive.ics.uci.edu/dataset/341)")
    args = parser.parse_args()
    if not args.data.exists():
        parser.error(f"--data {args.data}: no such folder or zip")
    from gesturekit.train.config import TrainConfig

    strategy = args.strategy or TrainConfig().strategy
    results = RESULTS / f"export_hapt_{strategy}.json"
    work = Path(args.work or tempfile.mkdtemp(prefix="export_hapt_"))
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        rows.append(one_seed(seed, strategy, work, args.data))
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps({"targets": TARGETS, "test_subjects": TEST_SUBJECTS,
                                       "strategy": strategy, "rows": rows}, indent=2) + "\n")
    print_table(rows)
    print(f"wrote {results}")


if __name__ == "__main__":
    main()
