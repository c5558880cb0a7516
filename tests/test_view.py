"""The live view of `gesturekit run`: its drawing parts, a render from real model outputs, and
the whole thing driven for real in tmux with the simulator playing a HAPT session into a pty."""

from __future__ import annotations

import io
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from gesturekit.device.core.backends import Classifier
from gesturekit.device.core.bundle import load_bundle
from gesturekit.device.core.postprocess import PostprocessConfig
from gesturekit.device.core.windowing import cut_windows
from gesturekit.device.live.view import LiveView, probability_bar, sparkline

HAPT_RAW = Path("/work/shared/data/hapt/RawData")
if not HAPT_RAW.is_dir():  # CI lays shared/ beside the clone
    HAPT_RAW = Path(__file__).resolve().parents[2] / "shared/data/hapt/RawData"
SESSION = HAPT_RAW / "acc_exp05_user03.txt"
GESTUREKIT = [sys.executable, "-m", "gesturekit.cli"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
TMUX = shutil.which("tmux")


def test_sparkline_scales_to_its_range_and_grows_from_the_right():
    rows = sparkline(np.arange(8.0), width=12, height=2)
    assert [len(r) for r in rows] == [12, 12]
    assert rows[0][:4] == rows[1][:4] == "    "  # 8 samples in 12 columns: right-aligned
    assert rows[1][4] == "▁" and rows[0][4] == " "  # the minimum still shows
    assert rows[1][-1] == rows[0][-1] == "█"  # the maximum fills both rows
    heights = [" ▁▂▃▄▅▆▇█".index(c) for c in rows[1][4:]]
    assert heights == sorted(heights)
    wide = sparkline(np.r_[np.zeros(50), np.ones(50)], width=10)[0]
    assert set(wide[:5]) == {"▁"} and set(wide[5:]) == {"█"}  # column means of 10 samples


def test_probability_bar_fills_to_p_and_marks_the_threshold():
    bar = probability_bar(0.5, 0.6, 20, "cyan").plain
    assert len(bar) == 20 and bar.count("█") == 10 and bar.index("┃") == 12
    assert probability_bar(1.0, 0.6, 20, "cyan").plain == "█" * 12 + "┃" + "█" * 7
    assert probability_bar(0.53, 0.9, 10, "cyan").plain[5] == "▂"  # eighths of a cell


def render(view: LiveView, width: int, height: int) -> str:
    console = Console(file=io.StringIO(), width=width, height=height, record=True)
    console.print(view._render(), height=height)
    return console.export_text()


def test_view_shows_what_the_runner_feeds_it(quick_bundle, synth_dataset):
    from gesturekit.train.datasets import load_dataset

    bundle = load_bundle(quick_bundle)
    cfg = PostprocessConfig.for_bundle(bundle)
    session = load_dataset(synth_dataset).sessions[0]
    classify = Classifier(bundle, "ai_edge_litert", "float")
    probs = [classify(w) for w in cut_windows(session.data[:1000], bundle.window, bundle.hop)]
    view = LiveView(bundle, cfg, "loop://", out=io.StringIO(), err=io.StringIO())
    view.samples(session.data[:400])
    for p in probs[:3]:
        view.window(p)
    view.emit({"kind": "event", "time": 4.25, "label": "jump", "confidence": 0.83,
               "latency_ms": 1.5}, "")
    view.warn("stream runs at about 100.0 Hz but the model expects 50 Hz; events may be wrong")
    view.status({"samples": 400, "bad_lines": 3, "windows": 3, "events": 1, "gaps": 0,
                 "reconnects": 0, "latency_ms": {"p50": 0.9, "p99": 2.5}})
    first = render(view, 110, 32)
    for label in bundle.labels:  # a threshold mark on event classes only
        marked = re.search(rf"│ {label} +[^│]*┃[^│]* \d\.\d\d │", first)
        assert bool(marked) == (label in bundle.events), label
    smoothed = np.mean(probs[:3], axis=0)
    top = bundle.labels[int(np.argmax(smoothed))]
    assert re.search(rf"│ {top} +[^│]* {smoothed.max():.2f} │", first)
    assert f"now: {top}" in first  # the state, whether or not it is an event class
    assert re.search(r"4\.25\s+jump\s+0\.83\s+1\.5", first)
    assert "bad lines 3" in first and "p50 0.9 / p99 2.5 ms" in first
    assert "|acc| g" in first and "|gyro| rad/s" in first
    assert "warning: stream runs at about 100.0 Hz" in first
    for p in probs[3:6]:
        view.window(p)
    assert render(view, 110, 32) != first
    small = render(view, 60, 16)  # a small terminal still renders, inside its size
    assert max(len(line) for line in small.splitlines()) <= 60
    view.emit({"kind": "summary"}, "summary: 400 samples")  # closes the view, then prints
    assert view.out.getvalue().endswith("summary: 400 samples\n")
    assert "warning: stream runs at about 100.0 Hz" in view.err.getvalue()


def test_view_only_when_chosen_and_rich_only_with_it(quick_bundle):
    """Not a terminal: lines unless --view; --json never imports rich; a failing run under
    the view still ends with the one-line error."""
    code = ("import sys; from gesturekit.cli import main; rc = main(sys.argv[1:]); "
            "print(rc, 'rich' in sys.modules)")
    run = ["run", "--port", "loop://", "--model", str(quick_bundle), "--first-line-timeout", "0.3"]
    for flags, expected in ((["--json"], ["2", "False"]), ([], ["2", "False"]),
                            (["--view"], ["2", "True"])):
        result = subprocess.run([sys.executable, "-c", code, *run, *flags], capture_output=True,
                                text=True, timeout=60, env=ENV)
        assert result.stdout.split()[-2:] == expected, (flags, result.stdout, result.stderr)
        assert "no valid sample line within 0.3 s" in result.stderr.splitlines()[-1]
    both = subprocess.run([*GESTUREKIT, *run, "--json", "--view"], capture_output=True, text=True,
                          timeout=60, env=ENV)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


# --- for real, in a terminal -------------------------------------------------------------------


class Tmux:
    """One tmux server on its own socket, one window running a plain bash."""

    def __init__(self, socket: Path, width: int, height: int):
        self.base = [TMUX, "-S", str(socket), "-f", "/dev/null"]
        self("new-session", "-d", "-s", "gk", "-x", str(width), "-y", str(height),
             "-c", str(socket.parent),
             "env PS1='gk$ ' bash --norc --noprofile")

    def __call__(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "gk")

    def type(self, line: str) -> None:
        self("send-keys", "-t", "gk", "-l", line)
        self("send-keys", "-t", "gk", "Enter")

    def wait_for(self, what: str, found: Callable[[str], object], timeout: float = 60) -> str:
        """Poll the screen until `found(screen)` is true; fail with the last screen."""
        end = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if found(screen):
                return screen
            if time.monotonic() > end:
                pytest.fail(f"tmux: no {what} within {timeout:g} s; screen:\n{screen}")
            time.sleep(0.2)

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=10, check=False)


def bar_values(screen: str, labels: list[str]) -> dict[str, str]:
    values = {}
    for label in labels:
        m = re.search(rf"│ {re.escape(label)} +[^│]* (\d\.\d\d) │", screen)  # ┃: events only
        if m:
            values[label] = m.group(1)
    return values


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install tmux)")
@pytest.mark.skipif(not SESSION.is_file(), reason="shared HAPT data not present")
def test_view_in_tmux_shows_classes_bars_events_health_and_exits_cleanly(quick_bundle, tmp_path):
    labels = load_bundle(quick_bundle).labels
    sim = subprocess.Popen([*GESTUREKIT, "simulate", str(SESSION), "--pty", "--speed", "2",
                            "--loop"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=ENV)
    tmux = None
    try:
        assert select.select([sim.stdout], [], [], 30)[0], "simulate printed no pty path"
        port = sim.stdout.readline().strip()
        tmux = Tmux(tmp_path / "tmux.sock", 120, 40)
        tmux.wait_for("shell prompt", lambda s: "gk$" in s, 15)
        # Looser post-processing than the bundle's: a synthetic-data model on HAPT motion.
        tmux.type(" ".join([*GESTUREKIT, "run", "--port", port, "--model", str(quick_bundle),
                            "--threshold", "0.3", "--min-on", "0",
                            "--refractory", "0.5"]))
        # The view is the default on a terminal: class bars, trace, health.
        screen = tmux.wait_for("bars with values", lambda s: len(bar_values(s, labels)) == len(labels))
        assert "class probabilities" in screen and "|acc| g" in screen
        health = [r"rate \d+\.\d Hz \(model 50 Hz\)", r"samples [1-9]\d*", r"bad lines 0",
                  r"gaps 0", r"reconnects 0", r"windows [1-9]\d*",
                  r"latency p50 \d+\.\d / p99 \d+\.\d ms"]
        tmux.wait_for("health line", lambda s: all(re.search(h, s) for h in health))
        before = bar_values(tmux.screen(), labels)
        tmux.wait_for("bars moving", lambda s: bar_values(s, labels) not in ({}, before))
        event_row = rf"\d+\.\d\d +({'|'.join(map(re.escape, labels))}) +\d\.\d\d +\d+\.\d │"
        tmux.wait_for("event in the log", lambda s: re.search(event_row, s))

        tmux("resize-window", "-t", "gk", "-x", "80", "-y", "24")

        def fits_80(s: str) -> bool:
            lines = s.splitlines()
            border = next((line for line in lines if "stream health" in line), "")
            return len(border) == 80 and len(bar_values(s, labels)) == len(labels) and len(lines) <= 24

        tmux.wait_for("view redrawn at 80x24", fits_80, 30)

        tmux("send-keys", "-t", "gk", "C-c")
        screen = tmux.wait_for("summary and prompt", lambda s: "summary:" in s
                               and s.rstrip().splitlines()[-1].startswith("gk$"), 30)
        assert re.search(r"summary: \d+ samples, \d+ bad lines, [1-9]\d* windows, [1-9]\d* events", screen)
        assert "(interrupted)" in screen and "Traceback" not in screen
        # The terminal is sane: main screen, cursor shown, line discipline as before.
        assert tmux("display-message", "-p", "-t", "gk", "#{alternate_on} #{cursor_flag}").split() \
            == ["0", "1"]
        tmux.type("stty -a | tr ' ' '\\n' | grep -x -e echo -e icanon -e isig; echo done-$((6*7))")
        screen = tmux.wait_for("shell answering", lambda s: "done-42" in s.split("echo done-")[-1], 15)
        tail = screen.split("echo done-")[-1].split()
        assert {"echo", "icanon", "isig"} <= set(tail)
    finally:
        if tmux is not None:
            tmux.kill()
        sim.kill()
        sim.wait(timeout=10)
