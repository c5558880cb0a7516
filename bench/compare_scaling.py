"""How `gesturekit compare` scales: one compare (2 strategies x 3 seeds, `--quick`, UCI HAPT with
the UCI test subjects) with 1 local worker (the baseline), 2 local workers and a 2-CPU Ray head
on 127.0.0.1; plus the bare cost of handing a task to a local worker and to Ray (a no-op).

Every mode must give the same per-run table (checked). Printed, and written to
bench/results/compare_scaling.json. The machine's load average is recorded: other jobs share it.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/compare_scaling.py --data PATH [--modes workers1,...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from gesturekit.train import cluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # harness/, beside bench/
from harness.ray_head import local_head  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "compare_scaling.json"
TEST_SUBJECTS = ["2", "4", "9", "10", "12", "13", "18", "20", "24"]
NOOP_TASKS = 20


def timed_compare(data: str, out: Path, *where: str) -> dict:
    """The user's command, timed from start to exit (one Ray connection per process)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "gesturekit.cli", "compare", data, "--strategies",
           "direct,three-phase", "--seeds", "3", "--quick", "--test-subjects",
           ",".join(TEST_SUBJECTS), "--out", str(out), *where]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    state = json.loads((out / "compare.json").read_text())
    runs = state["runs"]
    return {"command": " ".join(cmd[2:]), "wall_s": wall,
            "run_s_sum": sum(r["seconds"] for r in runs),
            "run_s_mean": statistics.mean(r["seconds"] for r in runs),
            "load_avg_1min_before": load, "load_avg_1min_after": os.getloadavg()[0],
            "table": [[r["key"], r["status"], r.get("macro_f1"), r.get("per_class_f1")] for r in runs],
            "recommendation": state["recommendation"]["text"]}


def noop_latency(pool) -> dict:
    """First task (starts the worker process) and then the mean round trip of a no-op."""
    t0 = time.perf_counter()
    [(_, first)] = _wait_one(pool, pool.submit(abs, -1))
    first_s = time.perf_counter() - t0
    times = []
    for i in range(NOOP_TASKS):
        t = time.perf_counter()
        [(_, value)] = _wait_one(pool, pool.submit(abs, -i))
        assert value == i
        times.append(time.perf_counter() - t)
    assert first == 1
    return {"first_task_s": first_s, "task_ms_median": 1000 * statistics.median(times)}


def _wait_one(pool, handle) -> list:
    while True:
        done = pool.finished([handle], timeout=5.0)
        if done:
            return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="UCI HAPT folder or zip")
    parser.add_argument("--runs-dir", default="/tmp/gesturekit-bench-compare")
    parser.add_argument("--modes", default="workers1,workers2,ray",
                        help="redo only these; the others are kept from the results file")
    args = parser.parse_args()
    modes = args.modes.split(",")
    runs = Path(args.runs_dir)
    result = {"data": args.data, "test_subjects": TEST_SUBJECTS, "cores": cluster.available_cores(),
              "compare": "direct,three-phase x seeds 0,1,2, --quick", "modes": {}}
    if set(modes) != {"workers1", "workers2", "ray"} and RESULTS.is_file():
        result = json.loads(RESULTS.read_text())

    runs.mkdir(parents=True, exist_ok=True)
    local = cluster.LocalWorkers(1, runs)
    result["noop_local"] = noop_latency(local)
    local.close()
    for workers in (1, 2):
        if f"workers{workers}" in modes:
            print(f"== {workers} local worker(s)", flush=True)
            result["modes"][f"workers{workers}"] = timed_compare(
                args.data, runs / f"workers{workers}", "--workers", str(workers))
    if "ray" in modes:
        t0 = time.perf_counter()
        with local_head(2) as address:
            result["ray_head_start_s"] = time.perf_counter() - t0
            print("== Ray", flush=True)
            result["modes"]["ray"] = timed_compare(args.data, runs / "ray", "--cluster", address)
            t0 = time.perf_counter()
            ray_pool = cluster.RayCluster(address)
            result["ray_connect_s"] = time.perf_counter() - t0
            result["noop_ray"] = noop_latency(ray_pool)
            ray_pool.close()

    modes = result["modes"]
    base = modes["workers1"]
    for m in modes.values():
        m["wall_vs_workers1"] = m["wall_s"] / base["wall_s"]
        m["same_table_as_workers1"] = m["table"] == base["table"]
    if "ray" in modes:
        # Per run, what Ray adds over a local worker with the same 2 slots (6 runs, 3 rounds).
        result["ray_overhead_per_run_s"] = (modes["ray"]["wall_s"] - modes["workers2"]["wall_s"]) / 6
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\n{'mode':<9} {'wall s':>7} {'x workers1':>10} {'run s mean':>10} {'load':>5} same table")
    for name, m in modes.items():
        print(f"{name:<9} {m['wall_s']:>7.0f} {m['wall_vs_workers1']:>10.2f} {m['run_s_mean']:>10.1f} "
              f"{m['load_avg_1min_before']:>5.1f} {m['same_table_as_workers1']}")
    print(f"\nno-op task: local worker first {result['noop_local']['first_task_s']:.2f} s, then "
          f"{result['noop_local']['task_ms_median']:.2f} ms")
    if "ray" in modes:
        print(f"no-op task: Ray first {result['noop_ray']['first_task_s']:.2f} s, then "
              f"{result['noop_ray']['task_ms_median']:.2f} ms; head start "
              f"{result['ray_head_start_s']:.1f} s, connect {result['ray_connect_s']:.1f} s; "
              "whole compare vs 2 local workers "
              f"{result['ray_overhead_per_run_s']:+.1f} s per run")
    print(f"\n{base['recommendation']}")


if __name__ == "__main__":
    main()
