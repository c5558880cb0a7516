"""Per-window latency of each backend, float and int8, as the runner calls it.

One `Classifier` call = normalise + quantise (int8) + reset LSTM state + invoke + dequantise,
on one thread, over windows cut from a HAPT test session. `tflite_runtime` needs numpy<2,
so it is measured by this same script inside `.venv-tflite-runtime` when that venv exists
(the tests create it). Ratios are against ai_edge_litert float in the same run.

Results: bench/results/device_latency.json. Run:
    .venv/bin/python bench/device_latency.py --bundle BUNDLE --session FILE [--windows 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from gesturekit.device.core.backends import Classifier, available_backends
from gesturekit.device.core.bundle import load_bundle
from gesturekit.device.core.recording import load_session
from gesturekit.device.core.windowing import cut_windows

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "device_latency.json"
TFLITE_RUNTIME_PYTHON = REPO / ".venv-tflite-runtime" / "bin" / "python"


def measure(bundle_dir: str, backend: str, kind: str, n_windows: int, repeats: int,
            session: Path) -> dict:
    bundle = load_bundle(bundle_dir)
    windows = cut_windows(load_session(session).data, bundle.window, bundle.hop)[:n_windows]
    classify = Classifier(bundle, backend, kind, threads=1)
    for w in windows[:20]:  # warm-up
        classify(w)
    times = []
    classify.invoke_seconds, classify.invokes = 0.0, 0
    for _ in range(repeats):
        for w in windows:
            start = time.perf_counter()
            classify(w)
            times.append(time.perf_counter() - start)
    us = np.array(times) * 1e6
    return {"backend": backend, "model": kind, "file_bytes": classify.path.stat().st_size,
            "p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)),
            "mean_us": float(us.mean()),
            "invoke_mean_us": classify.invoke_seconds / classify.invokes * 1e6,
            "windows": len(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--windows", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--session", type=Path, required=True,
                    help="HAPT session file, e.g. RawData/acc_exp03_user02.txt (test subject 2) "
                         "of the UCI data (https://archive.ics.uci.edu/dataset/341)")
    ap.add_argument("--only", help="backend to measure, printing JSON rows (used for the "
                                   "numpy<2 venv)")
    args = ap.parse_args()
    combos = [("ai_edge_litert", "float"), ("ai_edge_litert", "int8"), ("onnxruntime", "onnx"),
              ("tflite_runtime", "float"), ("tflite_runtime", "int8")]
    if args.only:
        rows = [measure(args.bundle, b, k, args.windows, args.repeats, args.session)
                for b, k in combos if b == args.only]
        print(json.dumps(rows))
        return
    here = set(available_backends())
    rows = [measure(args.bundle, b, k, args.windows, args.repeats, args.session)
            for b, k in combos if b in here]
    if "tflite_runtime" not in here and TFLITE_RUNTIME_PYTHON.is_file():
        out = subprocess.run([str(TFLITE_RUNTIME_PYTHON), __file__, "--bundle", args.bundle,
                              "--windows", str(args.windows), "--repeats", str(args.repeats),
                              "--session", str(args.session),
                              "--only", "tflite_runtime"], capture_output=True, text=True,
                             check=True, timeout=600)
        rows += json.loads(out.stdout.strip().splitlines()[-1])
    base = next(r for r in rows if r["backend"] == "ai_edge_litert" and r["model"] == "float")
    print(f"{'backend':<16} {'model':<6} {'bytes':>7} {'p50 µs':>8} {'p99 µs':>8} "
          f"{'invoke µs':>9} {'vs litert float':>15}")
    for r in rows:
        r["p50_vs_litert_float"] = r["p50_us"] / base["p50_us"]
        print(f"{r['backend']:<16} {r['model']:<6} {r['file_bytes']:>7} {r['p50_us']:>8.1f} "
              f"{r['p99_us']:>8.1f} {r['invoke_mean_us']:>9.1f} {r['p50_vs_litert_float']:>14.2f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"bundle": str(args.bundle), "session": args.session.name,
                                   "python": platform.python_version(), "machine": platform.machine(),
                                   "threads": 1, "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
