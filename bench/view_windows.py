"""Does the live view cost the runner windows? The same 100 Hz stream, with and without it.

A clip of a HAPT session (its first `--seconds` of samples) is played by `gesturekit simulate`
at 100 Hz into a real pty, twice: once read by `gesturekit run --json` (the
baseline), once by `gesturekit run --view` on a real terminal (a tmux pane, 120x40, the
view redrawing at 10 Hz). Each run ends when the clip does (the port closes). Both must
classify every window the clip holds (1 + (N - reference phase - window) // hop, no gaps) and
announce the same events; CPU time (bash `time`, user + system, whole process) and decision
latency are compared as ratios against the baseline of the same invocation.

Results: bench/results/view_windows.json. Run (needs tmux):
    .venv/bin/python bench/view_windows.py --bundle BUNDLE --session FILE [--seconds 60] [--threshold 0.45]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gesturekit.device.core.bundle import load_bundle
from gesturekit.device.core.recording import load_session
from gesturekit.device.core.stream_eval import reference_phase
from gesturekit.device.core.windowing import window_starts

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "view_windows.json"
RATE_HZ = 100
GESTUREKIT = f"{sys.executable} -m gesturekit.cli"
SUMMARY = re.compile(r"summary: (\d+) samples, (\d+) bad lines, (\d+) windows, (\d+) events, "
                     r"latency p50 ([\d.]+) ms p99 ([\d.]+) ms, (\d+) gaps, (\d+) reconnects \((\w+)\)")


def write_clip(folder: Path, seconds: float, path: Path) -> tuple[Path, int]:
    """The first `seconds` of the session at `path` as a 100 Hz recording-format CSV."""
    session = load_session(path)
    data = session.data[: int(seconds * RATE_HZ)]
    rows = "\n".join(",".join(f"{v:.9g}" for v in row) + "," for row in data.tolist())
    (folder / "dataset.toml").write_text(f"sample_rate_hz = {RATE_HZ}\n")
    clip = folder / "clip.csv"
    clip.write_text(",".join([*session.channels, "label"]) + "\n" + rows + "\n")  # unlabelled
    return clip, len(data)


def start_simulator(clip: Path) -> tuple[subprocess.Popen, str]:
    sim = subprocess.Popen([sys.executable, "-m", "gesturekit.cli", "simulate", str(clip), "--pty"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = sim.stdout.readline().strip() if select.select([sim.stdout], [], [], 30)[0] else ""
    if not port:
        sim.kill()
        raise SystemExit(f"simulate printed no pty path: {sim.communicate(timeout=10)[1]}")
    return sim, port


def run_in_tmux(folder: Path, command: str, deadline_s: float) -> str:
    """Run `command` in a fresh 120x40 tmux pane; returns the pane's text after it exits."""
    tmux = [shutil.which("tmux"), "-S", str(folder / "tmux.sock"), "-f", "/dev/null"]
    subprocess.run([*tmux, "new-session", "-d", "-s", "bench", "-x", "120", "-y", "40",
                    f"bash --norc --noprofile -c '{command}; echo bench-done-$?; sleep 600'"],
                   check=True, timeout=10)
    try:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-J", "-t", "bench"], check=True,
                                    capture_output=True, text=True, timeout=10).stdout
            if "bench-done-" in screen:
                return screen
            time.sleep(0.5)
        raise SystemExit(f"tmux: {command!r} did not finish within {deadline_s:g} s")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=10, check=False)


def cpu_seconds(time_file: Path) -> float:
    """user + system from bash's `time` with TIMEFORMAT='cpu %U %S'."""
    user, system = re.search(r"cpu ([\d.]+) ([\d.]+)", time_file.read_text()).groups()
    return float(user) + float(system)


def one_mode(folder: Path, clip: Path, bundle: str, view: bool, seconds: float,
             threshold: float) -> dict:
    sim, port = start_simulator(clip)
    timing, out = folder / f"time_{view}.txt", folder / f"out_{view}.txt"
    flags = f"--port {port} --model {bundle} --reconnect-timeout 0 --threshold {threshold}"
    # The baseline writes JSON lines to a file; the view draws on the pane's terminal.
    run = (f"{GESTUREKIT} run {flags} --view" if view
           else f"{GESTUREKIT} run {flags} --json > {out}")
    try:
        screen = run_in_tmux(folder, f"TIMEFORMAT=\"cpu %U %S\"; {{ time {run} ; }} 2> {timing}",
                             seconds + 120)
    finally:
        sim.kill()
    if "bench-done-0" not in screen:
        raise SystemExit(f"run failed:\n{screen}\n{timing.read_text()}")
    if view:
        m = SUMMARY.search(screen)
        if m is None:
            raise SystemExit(f"no summary line on the screen:\n{screen}")
        samples, bad, windows, events, p50, p99, gaps, reconnects, ended = m.groups()
        summary = {"samples": int(samples), "bad_lines": int(bad), "windows": int(windows),
                   "events": int(events), "latency_ms": {"p50": float(p50), "p99": float(p99)},
                   "gaps": int(gaps), "reconnects": int(reconnects), "ended": ended}
        event_list = None  # the view shows events on screen, not as lines
    else:
        records = [json.loads(line) for line in out.read_text().splitlines()]
        summary = records[-1]
        event_list = [[r["label"], r["sample"]] for r in records if r["kind"] == "event"]
    return {"mode": "view" if view else "lines", "cpu_s": round(cpu_seconds(timing), 3),
            **{k: summary[k] for k in ("samples", "bad_lines", "windows", "events",
                                        "latency_ms", "gaps", "reconnects", "ended")},
            "event_list": event_list}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the clip at 100 Hz")
    ap.add_argument("--threshold", type=float, default=0.45,
                    help="post-processing threshold for both runs (low enough for some events)")
    ap.add_argument("--session", type=Path, required=True,
                    help="HAPT session file, e.g. RawData/acc_exp05_user03.txt of the UCI data "
                         "(https://archive.ics.uci.edu/dataset/341)")
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is needed (apt-get install tmux)")
    bundle = load_bundle(args.bundle)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip, n = write_clip(folder, args.seconds, args.session)
        reference = reference_phase(bundle)  # the first seconds are in no window
        expected = len(window_starts(n - reference, bundle.window, bundle.hop))
        rows = [one_mode(folder, clip, args.bundle, view, args.seconds, args.threshold)
                for view in (False, True)]
    base = rows[0]
    print(f"\n{n} samples at {RATE_HZ} Hz ({args.seconds:g} s), window {bundle.window}, hop "
          f"{bundle.hop}: {expected} windows in the clip\n")
    print(f"{'mode':<6} {'samples':>8} {'windows':>8} {'missed':>7} {'gaps':>5} {'events':>7} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'cpu s':>7} {'cpu x':>6}")
    for r in rows:
        r["missed_windows"] = expected - r["windows"]
        r["cpu_ratio"] = round(r["cpu_s"] / base["cpu_s"], 3)
        r["p99_ratio"] = round(r["latency_ms"]["p99"] / base["latency_ms"]["p99"], 3)
        print(f"{r['mode']:<6} {r['samples']:>8} {r['windows']:>8} {r['missed_windows']:>7} "
              f"{r['gaps']:>5} {r['events']:>7} {r['latency_ms']['p50']:>7.2f} "
              f"{r['latency_ms']['p99']:>7.2f} {r['cpu_s']:>7.2f} {r['cpu_ratio']:>6.2f}")
    equal = all(r["windows"] == expected and r["samples"] == n and r["gaps"] == 0 for r in rows) \
        and rows[1]["events"] == base["events"]
    print(f"\nwindows equal with and without the view (and events): {equal}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "bundle": args.bundle, "session": args.session.name, "rate_hz": RATE_HZ,
        "seconds": args.seconds, "threshold": args.threshold, "samples": n, "expected_windows": expected,
        "windows_equal": equal, "rows": rows,
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or
                    platform.machine(), "cores": os.cpu_count()},
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
