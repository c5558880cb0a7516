"""The runner's cost of the live page: CPU per stream second and decision latency of
`gesturekit run` with no page, with the page open in headless Chromium, and with a page that
opened its socket and never reads, in one run, on the same 100 Hz stream.

This script is the board (bench/device_runner.py's `play_board`: one HAPT sample line every
10 ms into a real pty). CPU is the runner process's own (its summary's process time over its
loop); the page's server and the browser are other processes, on the same two cores.
Post-processing is opened up as in device_runner.py so that windows become events often.
Rounds interleave the three cases so that a machine that slows down mid-run slows all three.
The decisions (every window's sample and probabilities, every event) must be identical.

Results: bench/results/web_runner_cpu.json. Run:
    .venv/bin/python bench/web_runner_cpu.py --bundle BUNDLE [--seconds 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from device_runner import SESSION, play_board, stop_runner, timed_json_lines

from gesturekit.device.core.recording import load_session
from gesturekit.device.live.simulate import PtySink

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "web_runner_cpu.json"
CASES = ("none", "page", "stuck page")


def open_browser(url: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1280,800", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.get(url)
    return driver


def stuck_page(url: str) -> socket.socket:
    """Opens the page's socket, then never reads (tests/test_web.py does the same)."""
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nOrigin: http://{host}:{port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
    return sock


def one_run(bundle: str, case: str, seconds: float, data: np.ndarray) -> dict:
    sink = PtySink(link=None)
    web = ["--web", "127.0.0.1:0"] if case != "none" else []
    run = subprocess.Popen([sys.executable, "-m", "gesturekit.cli", "run", "--port", sink.device,
                            "--model", bundle, "--json", "--windows", "--threshold", "0",
                            "--smoothing", "0", "--min-on", "0", "--refractory", "0",
                            *web],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    page = None
    if web:
        line = run.stderr.readline()
        while not line.startswith("live page: "):
            assert line, "the runner printed no page URL"
            line = run.stderr.readline()
        url = line.split(": ", 1)[1].strip()
        page = open_browser(url) if case == "page" else stuck_page(url)
    lines, reader = timed_json_lines(run)
    written = play_board(sink, data, seconds)
    time.sleep(0.5)
    shown = None
    if case == "page":
        shown = page.find_element("id", "health").text
        page.quit()
    elif page is not None:
        page.close()
    summary = stop_runner(run, reader, sink, lines)
    window_ms = [1000 * (t - written[r["sample"]]) for t, r in lines if r["kind"] == "window"]
    return {
        "case": case, "stream_seconds": summary["seconds"], "samples": summary["samples"],
        "windows": summary["windows"], "events": summary["events"],
        "cpu_ms_per_stream_s": 1000 * summary["cpu_s"] / summary["seconds"],
        "decision_ms": {"p50": float(np.percentile(window_ms, 50)),
                        "p99": float(np.percentile(window_ms, 99))},
        "page_health": shown,
        "decisions": [(r["kind"], r["sample"], r["label"], r.get("probs"))
                      for _, r in lines if r["kind"] in ("window", "event")],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--session", type=Path, default=SESSION,
                    help="HAPT session file, RawData/acc_expNN_userNN.txt of the UCI data")
    args = ap.parse_args()
    data = load_session(args.session).data
    runs = [one_run(args.bundle, case, args.seconds, data)
            for _ in range(args.rounds) for case in CASES]
    # The same stream from the same first sample: the decisions over the samples every run
    # saw must be the same, page or not.
    shortest = min(len(r["decisions"]) for r in runs)
    same = all(r["decisions"][:shortest] == runs[0]["decisions"][:shortest] for r in runs)
    table = {}
    for case in CASES:
        mine = [r for r in runs if r["case"] == case]
        cpu = [r["cpu_ms_per_stream_s"] for r in mine]
        table[case] = {"cpu_ms_per_stream_s": cpu, "cpu_mean": float(np.mean(cpu)),
                       "decision_p50_ms": [r["decision_ms"]["p50"] for r in mine],
                       "decision_p99_ms": [r["decision_ms"]["p99"] for r in mine]}
    base = table["none"]["cpu_mean"]
    print(f"{args.rounds} rounds x {args.seconds:g} s of a 100 Hz stream; decisions identical "
          f"in every run: {same} ({shortest} windows and events compared)")
    print(f"{'case':<11} {'CPU ms per stream s, each round':>40} {'mean':>6} {'vs none':>8} "
          f"{'decision p50 ms, each round':>40} {'decision p99 ms, each round':>40}")

    def each(values: list[float]) -> str:
        return " ".join(f"{v:6.2f}" for v in values)

    for case, row in table.items():
        row["cpu_vs_none"] = row["cpu_mean"] / base
        print(f"{case:<11} {each(row['cpu_ms_per_stream_s']):>40} {row['cpu_mean']:>6.2f} "
              f"{row['cpu_vs_none']:>7.2f}x {each(row['decision_p50_ms']):>40} "
              f"{each(row['decision_p99_ms']):>40}")
    for r in runs:
        r.pop("decisions")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"bundle": args.bundle, "rate_hz": 100.0, "channels": 6,
                                   "seconds": args.seconds, "rounds": args.rounds,
                                   "decisions_identical": same, "compared": shortest,
                                   "python": platform.python_version(), "cases": table,
                                   "runs": runs}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
