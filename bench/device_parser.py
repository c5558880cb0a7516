"""Serial parsing throughput: chunked reads + LineParser against pyserial's readline().

A forked writer pushes the same pre-formatted 6-channel lines into a real pseudo-terminal
as fast as the reader takes them; the reader either calls `readline()` and parses each line
(the baseline: pyserial reads byte by byte) or reads `in_waiting` chunks into `LineParser`
(what `gesturekit run` does). Also the parser alone on in-memory 4 KB chunks (its ceiling).
Each figure is the median of `--repeats` runs; the ratio is against readline in the same run.

Results: bench/results/device_parser.json. Run:
    .venv/bin/python bench/device_parser.py [--lines 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pty
import statistics
import time
import tty
from pathlib import Path

import numpy as np
import serial

from gesturekit.device.core.lineparser import LineParser, format_sample

RESULTS = Path(__file__).resolve().parent / "results" / "device_parser.json"


def stream_bytes(lines: int) -> bytes:
    data = np.random.default_rng(0).normal(size=(lines, 6)).astype(np.float32)
    return b"".join(format_sample(row) for row in data)


def through_pty(raw: bytes, lines: int, chunked: bool) -> float:
    """Samples per second read and parsed from a real pty fed by a forked writer."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    port = serial.serial_for_url(path, timeout=1.0)
    os.close(slave)
    pid = os.fork()
    if pid == 0:  # writer: everything, in 64 KB writes that block while the pty is full
        view = memoryview(raw)
        while view:
            view = view[os.write(master, view[:65536]):]
        time.sleep(5)  # keep the master open until the reader is done
        os._exit(0)
    start = time.perf_counter()
    got = 0
    if chunked:
        parser = LineParser(6, drop_first=False)
        while got < lines:
            got += len(parser.feed(port.read(port.in_waiting or 1)))
    else:
        while got < lines:
            line = port.readline()
            values = [float(v) for v in line.split(b",")]
            got += len(values) == 6
    elapsed = time.perf_counter() - start
    port.close()
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    os.close(master)
    return lines / elapsed


def in_memory(raw: bytes, lines: int) -> float:
    parser = LineParser(6, drop_first=False)
    start = time.perf_counter()
    for i in range(0, len(raw), 4096):
        parser.feed(raw[i:i + 4096])
    elapsed = time.perf_counter() - start
    assert parser.stats.samples == lines
    return lines / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=20000, help="lines per pty run")
    ap.add_argument("--readline-lines", type=int, default=5000,
                    help="lines for the (slow) readline baseline")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    raw = stream_bytes(args.lines)
    raw_short = stream_bytes(args.readline_lines)
    rows = {
        "pyserial readline() + split/float": [through_pty(raw_short, args.readline_lines, False)
                                              for _ in range(args.repeats)],
        "read(in_waiting) + LineParser": [through_pty(raw, args.lines, True)
                                          for _ in range(args.repeats)],
        "LineParser alone, 4 KB chunks": [in_memory(stream_bytes(200000), 200000)
                                          for _ in range(args.repeats)],
    }
    base = statistics.median(rows["pyserial readline() + split/float"])
    print(f"{'method (6 channels, real pty)':<36} {'samples/s':>12} {'vs readline':>12}")
    results = []
    for name, values in rows.items():
        median = statistics.median(values)
        print(f"{name:<36} {median:>12,.0f} {median / base:>11.0f}x")
        results.append({"method": name, "samples_per_s": median, "runs": values,
                        "ratio_vs_readline": median / base})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"python": platform.python_version(), "pyserial": serial.VERSION,
                                   "lines": args.lines, "results": results}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
