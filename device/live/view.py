"""The full-screen terminal view of `gesturekit run --view`, drawn with rich.

It is an output sink beside the runner's line and JSON printer: the runner hands it what it
hands the printer (events, gaps, warnings, the summary, the health numbers every half
second) plus every parsed block of samples and every window's probabilities. Those calls only
copy numbers under a lock; rich's own refresh thread draws at most `REFRESH_HZ` times a
second from a snapshot, so classification never waits for the terminal.

Panels: per-class probabilities (smoothed like the event detector, threshold marked), a
trace of the last seconds of signal (acceleration and angular-rate magnitude, or chosen
channels) as unicode block sparklines, the event log, and stream health.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gesturekit.device.core.bundle import Bundle
from gesturekit.device.core.model_info import announced_classes, rate_is_off
from gesturekit.device.core.postprocess import PostprocessConfig, class_smoothing, per_class_smoothed
from gesturekit.errors import UserError

REFRESH_HZ = 10.0
TRACE_S = 5.0  # seconds of signal in the trace
TRACE_ROWS_MAX = 8  # terminal rows per trace line, at most
EVENTS_KEPT = 200
RATE_SPAN_S = 2.0  # the measured rate is over this many seconds of arrivals
BLOCKS = " ▁▂▃▄▅▆▇█"  # 0..8 eighths of a cell
ACC_UNITS = {"g", "mg", "m/s^2", "m/s2"}
GYRO_UNITS = {"rad/s", "deg/s", "dps"}


def trace_rows(bundle: Bundle, chosen: list[str] | None = None) -> list[tuple[str, list[int]]]:
    """(name, channel indices) per trace line: a channel, or the magnitude of several.

    Default: |acc| over the channels in acceleration units and |gyro| over those in
    angular-rate units; without units, the first two channels.
    """
    if chosen:
        unknown = [c for c in chosen if c not in bundle.channels]
        if unknown:
            raise UserError(f"--trace {','.join(chosen)}: no channel {', '.join(unknown)} in the "
                            f"model (channels: {', '.join(bundle.channels)})")
        return [(c, [bundle.channels.index(c)]) for c in chosen]
    rows = []
    for name, units in (("|acc|", ACC_UNITS), ("|gyro|", GYRO_UNITS)):
        found = [i for i, c in enumerate(bundle.channels) if bundle.units.get(c) in units]
        if found:
            rows.append((f"{name} {bundle.units[bundle.channels[found[0]]]}", found))
    return rows or [(c, [i]) for i, c in enumerate(bundle.channels[:2])]


def sparkline(values: np.ndarray, width: int, height: int = 1) -> list[str]:
    """`height` rows (top first) of block characters drawing `values` right-aligned in
    `width` columns, scaled to their own min..max; each column is the mean of its samples."""
    if width <= 0:
        return [""] * height
    if not len(values):
        return [" " * width] * height
    cols = min(width, len(values))
    edges = np.linspace(0, len(values), cols + 1).astype(int)
    means = np.add.reduceat(values, edges[:-1]) / np.diff(edges)
    lo, hi = float(means.min()), float(means.max())
    scaled = (means - lo) / (hi - lo) if hi - lo > 1e-9 else np.zeros(cols)
    eighths = 1 + np.round(scaled * (8 * height - 1)).astype(int)  # the lowest still shows
    pad = " " * (width - cols)
    return [pad + "".join(BLOCKS[k] for k in np.clip(eighths - 8 * row, 0, 8))
            for row in range(height - 1, -1, -1)]


def probability_bar(p: float, threshold: float | None, width: int, style: str) -> Text:
    """A bar of `width` cells filled to `p` (eighth-cell steps), the threshold as a red mark
    (none for a class that is never announced)."""
    eighths = int(round(min(max(p, 0.0), 1.0) * width * 8))
    cells = [BLOCKS[8]] * (eighths // 8) + ([BLOCKS[eighths % 8]] if eighths % 8 else [])
    cells += ["·"] * (width - len(cells))
    if threshold is None:
        return Text("".join(cells), style=style)
    mark = min(width - 1, int(round(threshold * width)))
    bar = Text("".join(cells[:mark]), style=style)
    bar.append("┃", style="bold red")
    bar.append("".join(cells[mark + 1:]), style=style)
    return bar


class _Sized:
    """A renderable drawn by `draw(width, height)` once rich knows the size of its region."""

    def __init__(self, draw: Callable[[int, int], Text]):
        self.draw = draw

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.draw(options.max_width, options.height or options.size.height)


class LiveView:
    """The view as a printer: `emit`, `warn`, `status` like `runner.Printer`, plus `samples`
    and `window` for the trace and the bars. The screen opens on the first `status` (the port
    is open by then) and closes on the summary or `close()`."""

    status_on = True  # the health panel is always on screen

    def __init__(self, bundle: Bundle, postprocess: PostprocessConfig, port: str,
                 trace: list[str] | None = None, out: TextIO = sys.stdout,
                 err: TextIO = sys.stderr, refresh_hz: float = REFRESH_HZ):
        self.bundle, self.postprocess, self.port = bundle, postprocess, port
        self.out, self.err = out, err
        self.rows = trace_rows(bundle, trace)
        self._events_shown = set(announced_classes(bundle.labels, bundle.background_label,
                                                   postprocess.event_classes or bundle.events))
        self._lock = threading.Lock()
        self._trace = np.zeros((int(TRACE_S * bundle.sample_rate_hz), len(bundle.channels)),
                               np.float32)  # ring buffer of the newest samples
        self._trace_next = self._trace_filled = 0
        self._arrivals: deque[tuple[float, int]] = deque()  # (time, samples so far)
        self._samples = 0
        self._smoothing = class_smoothing(postprocess, bundle.labels, bundle.background_label)
        self._recent: deque[np.ndarray] = deque(maxlen=max(self._smoothing))
        self._events: deque[tuple[str, str, str, str]] = deque(maxlen=EVENTS_KEPT)  # newest first
        self._warnings: list[str] = []
        self._health: dict = {}
        self._started = time.monotonic()
        # The size comes from the terminal on every frame, never from COLUMNS/LINES, which
        # shells export once and rich would prefer: a resized window must redraw to fit.
        environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        self._console = Console(file=out, _environ=environ)
        self._live = Live(console=self._console, screen=True, refresh_per_second=refresh_hz,
                          get_renderable=self._render, redirect_stdout=False,
                          redirect_stderr=False)
        self._open = False
        self._closed = False

    # --- fed by the runner (its thread; copies only) ------------------------------------------

    def samples(self, block: np.ndarray) -> None:
        """Parsed samples (k, C) in arrival order."""
        if not len(block):
            return
        now = time.monotonic()
        with self._lock:
            n = len(self._trace)
            block = block[-n:]
            idx = (self._trace_next + np.arange(len(block))) % n
            self._trace[idx] = block
            self._trace_next = int(idx[-1] + 1) % n
            self._trace_filled = min(n, self._trace_filled + len(block))
            self._samples += len(block)
            self._arrivals.append((now, self._samples))
            while now - self._arrivals[0][0] > RATE_SPAN_S:
                self._arrivals.popleft()

    def window(self, probs: np.ndarray) -> None:
        with self._lock:
            self._recent.append(np.array(probs, dtype=np.float32))

    def emit(self, record: dict, text: str) -> None:
        kind = record.get("kind")
        if kind == "summary":
            self.close()
            self.out.write(text + "\n")
            self.out.flush()
            return
        with self._lock:
            if kind == "event":
                self._events.appendleft((f"{record['time']:.2f}", record["label"],
                                         f"{record['confidence']:.2f}",
                                         f"{record['latency_ms']:.1f}"))
            elif kind == "reference":
                self._events.appendleft((f"{record['time']:.2f}", f"-- {record['message']}", "", ""))
            elif kind == "gap":
                self._recent.clear()  # the detector restarts its smoothing too
                self._events.appendleft((f"{record['time']:.2f}", f"-- gap ({record['reason']})",
                                         "", ""))

    def warn(self, message: str) -> None:
        with self._lock:
            self._warnings.append(message)

    def status(self, health: dict) -> None:
        with self._lock:
            self._health = dict(health)
        if not self._open and not self._closed:
            self._open = True
            self._live.start()

    def close(self) -> None:
        """Leave the full screen (idempotent); warnings shown in the view go to stderr too."""
        if self._closed:
            return
        self._closed = True
        if self._open:
            self._live.stop()
        for message in self._warnings:
            self.err.write(f"gesturekit run: warning: {message}\n")
        self.err.flush()

    # --- drawn by rich's refresh thread -------------------------------------------------------

    def _snapshot(self) -> dict:
        with self._lock:
            order = (self._trace_next - self._trace_filled + np.arange(self._trace_filled)) % len(self._trace)
            arrivals = list(self._arrivals)
            rate = ((arrivals[-1][1] - arrivals[0][1]) / (arrivals[-1][0] - arrivals[0][0])
                    if len(arrivals) > 1 and arrivals[-1][0] > arrivals[0][0] else None)
            return {"trace": self._trace[order], "recent": list(self._recent),
                    "events": list(self._events), "warning": self._warnings[-1] if self._warnings else None,
                    "health": dict(self._health), "rate": rate}

    def _render(self) -> Layout:
        snap = self._snapshot()
        layout = Layout()
        layout.split_column(Layout(name="header", size=1), Layout(name="main"),
                            Layout(name="health", size=5))  # health (wraps), last warning
        layout["main"].split_row(Layout(name="left", ratio=3), Layout(name="events", ratio=2))
        layout["left"].split_column(
            Layout(name="probs", size=len(self.bundle.labels) + 2), Layout(name="trace"))
        elapsed = time.monotonic() - self._started
        layout["header"].update(Text(
            f" gesturekit run · {self.bundle.root.name} · {self.port} · {elapsed:6.1f} s"
            "   (Ctrl-C to stop)", style="bold reverse", overflow="ellipsis", no_wrap=True))
        ks = set(self._smoothing)
        smoothing_note = (f"mean of last {ks.pop()}" if len(ks) == 1
                          else "each class smoothed as the detector does")
        recent = snap["recent"]
        shown = per_class_smoothed(recent, self._smoothing) if recent else None
        state = self.bundle.labels[int(np.argmax(shown))] if recent else "--"
        layout["probs"].update(Panel(
            _Sized(lambda w, h: self._draw_probs(shown, w)),
            title=f"now: {state} · class probabilities ({smoothing_note}, "
                  "┃ event threshold; dim: states, never announced)",
            title_align="left"))
        layout["trace"].update(Panel(_Sized(lambda w, h: self._draw_trace(snap["trace"], w, h)),
                                     title=f"signal, last {TRACE_S:g} s", title_align="left"))
        layout["events"].update(Panel(self._events_table(snap["events"]), title="events",
                                      title_align="left"))
        layout["health"].update(Panel(_Sized(lambda w, h: self._health_text(snap, w)),
                                      title="stream health",
                                      title_align="left"))
        return layout

    def _draw_probs(self, shown: np.ndarray | None, width: int) -> Text:
        """`shown`: each class's probability as the detector smooths it (None: no window yet)."""
        labels = self.bundle.labels
        recent = shown is not None
        smoothed = shown if recent else np.zeros(len(labels))
        name_w = min(max(len(label) for label in labels), max(4, width // 3))
        bar_w = max(4, width - name_w - 6)  # "name " + bar + " 0.00"
        top = int(np.argmax(smoothed)) if recent else -1
        lines = Text()
        events = self._events_shown
        for i, (label, p) in enumerate(zip(labels, smoothed, strict=True)):
            threshold = self.postprocess.settings(label)["threshold"] if label in events else None
            hit = i == top and threshold is not None and p >= threshold
            style = "dim" if threshold is None else ("bold green" if hit else "cyan")
            lines.append(f"{label[:name_w]:<{name_w}} ", style="bold" if hit else "")
            lines.append_text(probability_bar(float(p), threshold, bar_w, style))
            lines.append(f" {p:4.2f}\n" if recent else "   --\n")
        lines.rstrip()
        return lines

    def _draw_trace(self, trace: np.ndarray, width: int, height: int) -> Text:
        rows = self.rows
        per_row = max(1, min(TRACE_ROWS_MAX, (height - len(rows)) // len(rows)))
        label_w = max(len(name) for name, _ in rows)
        text = Text()
        for k, (name, channels) in enumerate(rows):
            values = (np.linalg.norm(trace[:, channels], axis=1) if len(channels) > 1
                      else trace[:, channels[0]]).astype(np.float64)
            scale = f"{values.min():.3g}..{values.max():.3g}" if len(values) else "--"
            text.append(f"{name:<{label_w}}  {scale}\n", style="bold")
            for line in sparkline(values, width, per_row):
                text.append(line + "\n", style=("magenta", "yellow", "cyan")[k % 3])
        text.rstrip()
        return text

    def _events_table(self, events: list[tuple[str, str, str, str]]) -> Table:
        table = Table(box=None, expand=True, pad_edge=False, show_edge=False)
        table.add_column("time s", justify="right", no_wrap=True)
        table.add_column("label", ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column("conf", justify="right", no_wrap=True)
        table.add_column("ms", justify="right", no_wrap=True)
        for t, label, confidence, latency in events:
            style = "dim" if label.startswith("--") else "bold green"
            table.add_row(t, Text(label, style=style), confidence, latency)
        return table

    def _health_text(self, snap: dict, width: int) -> Text:
        """Health items packed into lines of `width`, wrapped only between items."""
        h, model_rate, rate = snap["health"], self.bundle.sample_rate_hz, snap["rate"]
        off = rate is not None and rate_is_off(rate, model_rate)
        lat = h.get("latency_ms") or {}
        items = [
            (f"rate {rate:.1f} Hz" if rate is not None else "rate -- Hz")
            + f" (model {model_rate:g} Hz)",
            f"samples {h.get('samples', 0)}", f"bad lines {h.get('bad_lines', 0)}",
            f"gaps {h.get('gaps', 0)}", f"reconnects {h.get('reconnects', 0)}",
            f"windows {h.get('windows', 0)}",
            f"latency p50 {lat['p50']:.1f} / p99 {lat['p99']:.1f} ms"
            if lat.get("p50") is not None else "latency -- ms",
        ]
        text, used = Text(), 0
        for i, item in enumerate(items):
            if used and used + 3 + len(item) > width:
                text.append("\n")
                used = 0
            elif used:
                text.append(" · ")
                used += 3
            text.append(item, style="bold yellow" if i == 0 and off else "")
            used += len(item)
        if snap["warning"]:
            text.append(f"\nwarning: {snap['warning']}", style="yellow")
        return text
