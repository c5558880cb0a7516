"""Does the first Ray-client session on a fresh head start? With gRPC's fork handlers on (Ray's
default, the baseline) and off (`ray_head.HEAD_ENV`, what `local_head` starts): ray-project/ray#63202,
the client server's session process dying at fork, which left `compare --cluster ray://...`
waiting until its 120 s deadline in CI.

Each trial starts a fresh 2-CPU head on 127.0.0.1 with `ray_head.local_head`, then connects a new
process as `RayCluster` does and runs two 1-CPU tasks; a session that has not finished within
SESSION_DEADLINE_S (a good one takes about 5 s) counts as failed. The two conditions alternate.
Printed, and written to bench/results/ray_client_sessions.json.

    .venv/bin/python bench/ray_client_sessions.py [--heads 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # harness/, beside bench/
from harness import ray_head  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "ray_client_sessions.json"
SESSION_DEADLINE_S = 45.0
CLIENT = """
import sys, ray
ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
@ray.remote(num_cpus=1)
def double(x):
    return 2 * x
assert ray.get([double.remote(i) for i in range(2)]) == [0, 2]
"""
CONDITIONS = {
    "fork handlers on (Ray's default)": {k: v for k, v in ray_head.HEAD_ENV.items()
                                         if k != "GRPC_ENABLE_FORK_SUPPORT"},
    "fork handlers off (local_head)": ray_head.HEAD_ENV,
}


def first_session(head_env: dict[str, str]) -> float | None:
    """Seconds the first client session on a fresh head took; None when it did not finish."""
    with ray_head.local_head(2, env=head_env) as address:
        start = time.monotonic()
        try:
            done = subprocess.run([sys.executable, "-c", CLIENT, address], capture_output=True,
                                  timeout=SESSION_DEADLINE_S).returncode == 0
        except subprocess.TimeoutExpired:
            done = False
        return time.monotonic() - start if done else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, default=10, help="fresh heads per condition")
    args = parser.parse_args()
    trials: dict[str, list[float | None]] = {name: [] for name in CONDITIONS}
    for i in range(args.heads):
        for name, env in CONDITIONS.items():
            trials[name].append(first_session(env))
            print(f"head {i + 1}/{args.heads}, {name}: "
                  + ("no session" if trials[name][-1] is None else f"{trials[name][-1]:.1f} s"),
                  flush=True)
    rows = []
    for name, seconds in trials.items():
        good = [s for s in seconds if s is not None]
        rows.append({"condition": name, "heads": len(seconds), "failed": len(seconds) - len(good),
                     "median_session_s": statistics.median(good) if good else None})
    print("\n| condition | fresh heads | first session failed | median session (s) |\n|---|---|---|---|")
    for r in rows:
        median = "n/a" if r["median_session_s"] is None else f"{r['median_session_s']:.1f}"
        print(f"| {r['condition']} | {r['heads']} | {r['failed']} | {median} |")
    RESULTS.write_text(json.dumps({"rows": rows, "trials": trials, "load_average": os.getloadavg()[0],
                                   "session_deadline_s": SESSION_DEADLINE_S}, indent=1) + "\n")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
