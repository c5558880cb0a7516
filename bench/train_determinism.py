"""Cost of TensorFlow op determinism: the same quick synthetic training with and without
`enable_op_determinism`, alternating, each in a fresh interpreter (it cannot be turned off).

Prints a table and writes bench/results/train_determinism.json. Run:
    .venv/bin/python bench/train_determinism.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "train_determinism.json"
SCRIPT = """
import sys, time
from gesturekit.train.config import build_config
from gesturekit.train.trainer import train_run
cfg = build_config(quick=True, seed=0, deterministic=sys.argv[3] == "1", sandbox=False)
start = time.perf_counter()
m = train_run(sys.argv[1], sys.argv[2], cfg, force=True, progress=lambda _: None)
print(time.perf_counter() - start, m["test"]["macro_f1"])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    times: dict[str, list[float]] = {"on": [], "off": []}
    f1: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synth"
        subprocess.run([sys.executable, "-m", "gesturekit.cli", "data", "synth", "--out",
                        str(data)], check=True, env=env, timeout=300)
        for _ in range(args.repeats):
            for mode in ("on", "off"):
                start = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-c", SCRIPT, str(data), str(Path(tmp) / mode),
                     "1" if mode == "on" else "0"], capture_output=True, text=True, env=env,
                    timeout=900, check=True)
                seconds, macro_f1 = map(float, done.stdout.split()[-2:])
                times[mode].append(seconds)
                f1[mode].append(macro_f1)
                print(f"determinism {mode}: train {seconds:.1f} s, process "
                      f"{time.perf_counter() - start:.1f} s, macro-F1 {macro_f1:.3f}", flush=True)
    ratio = statistics.mean(times["on"]) / statistics.mean(times["off"])
    print(f"\n{'op determinism':<15} {'train s (mean)':>15} {'macro-F1':>20}")
    for mode in ("on", "off"):
        print(f"{mode:<15} {statistics.mean(times[mode]):>15.1f} {str(f1[mode]):>20}")
    print(f"ratio on/off: {ratio:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"seconds": times, "macro_f1": f1, "ratio_on_off": ratio,
                                   "workload": "gesturekit train synth --quick --skip-sandbox"},
                                  indent=2) + "\n")


if __name__ == "__main__":
    main()
