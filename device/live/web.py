"""The live page's runner side: `run --web` and `record --web` feed the page's server.

The server (`device/live/web_server.py`, aiohttp) is a separate process, so no byte of HTTP, no
WebSocket and no slow browser ever runs in the runner's thread or holds the GIL it needs. The
runner writes compact JSON lines to the server's stdin through a non-blocking pipe: samples
and window outputs are batched and sent at most `SEND_HZ` times a second as raw float32 in
base64 (no per-sample encoding), events when they happen. A full pipe (a stuck server) drops
the batch instead of waiting; a dead server turns the page off with one warning. The
runner's timing and decisions are the same with a page open, a slow page or none
(bench/web_runner_cpu.py measures it).

The server writes its URL as its first stdout line, then, in record mode, one line per label
chosen on the page: the key the terminal would type (`0` the first label, `1`..`9` the
others), which `RecordLink.keys` hands to the recorder with the terminal's own keys.
"""

from __future__ import annotations

import base64
import importlib.util
import itertools
import json
import os
import select
import subprocess
import sys
import tempfile
import time

import numpy as np

from gesturekit.device.core.bundle import Bundle
from gesturekit.device.core.model_info import announced_classes
from gesturekit.device.core.postprocess import PostprocessConfig, class_smoothing
from gesturekit.device.live.runner import Output, Runner
from gesturekit.errors import UserError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
SEND_HZ = 10.0  # batches per second at most: the runner's whole cost is this many writes
HEALTH_EVERY_S = 0.5  # as the runner's status line
START_TIMEOUT_S = 15.0  # the server imports aiohttp and binds within this
STOP_TIMEOUT_S = 5.0
PENDING_MAX = 1 << 20  # bytes of a cut message kept for the next write; beyond, drop


def parse_address(text: str, option: str = "--web") -> tuple[str, int]:
    """`[HOST:]PORT` (or `HOST:`; "" the default address) -> (host, port); port 0 picks a
    free one."""
    host, _, port = text.rpartition(":") if ":" in text else ("", "", text)
    host = host.strip("[]") or DEFAULT_HOST  # [::1]:8765
    try:
        number = int(port) if port else DEFAULT_PORT
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise UserError(f"{option} {text}: expected [HOST:]PORT with a port in 0..65535")
    return host, number


class WebServer:
    """The server process and the pipe to it. `send` never blocks and never raises."""

    def __init__(self, address: str, hello: dict, log=sys.stderr):
        host, port = parse_address(address)
        if importlib.util.find_spec("aiohttp") is None:
            raise UserError(f"--web {address}: the live page needs aiohttp "
                            "(`pip install 'gesturekit[web]'`)")
        self.log = log
        self.dropped = 0  # batches a full pipe refused
        self._pending = b""
        # A file, not a pipe, for its stderr: nobody reads it while it runs, and a full pipe
        # would stop the server.
        self._err = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gesturekit.device.live.web_server", "--host", host,
             "--port", str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
            # Its own session: Ctrl-C stops the runner, which then closes the pipe; the server
            # ends on that, after the page has the summary.
            start_new_session=True)
        self.url = self._wait_ready(address)
        self._stdin = self.process.stdin.fileno()
        self._stdout = self.process.stdout.fileno()
        self._out_buffer = b""
        self._alive = True
        # The hello blocks (it is the first line; the pipe is empty): the page needs it whole.
        self.process.stdin.write((json.dumps({"t": "hello", **hello}) + "\n").encode())
        self.process.stdin.flush()
        os.set_blocking(self._stdin, False)
        os.set_blocking(self._stdout, False)

    def _wait_ready(self, address: str) -> str:
        """The first stdout line, `listening URL`; the server's own one-line error otherwise."""
        end = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < end:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if ready:
                line = self.process.stdout.readline().decode().strip()
                if line.startswith("listening "):
                    return line.split(" ", 1)[1]
                break
            if self.process.poll() is not None:
                break
        self.process.kill()
        self.process.wait(timeout=STOP_TIMEOUT_S)
        self._err.seek(0)
        said = self._err.read().decode(errors="replace").strip().splitlines()
        reason = said[-1] if said else f"no answer in {START_TIMEOUT_S:g} s"
        raise UserError(f"--web {address}: the page's server did not start ({reason})")

    def send(self, data: bytes) -> None:
        """Whole lines, written without waiting; a full pipe drops them (the page misses a
        moment of signal, the runner never waits), the rest of a cut line goes first next time."""
        if not self._alive:
            return
        try:
            if self._pending:
                n = os.write(self._stdin, self._pending)
                self._pending = self._pending[n:]
                if self._pending:
                    self.dropped += 1
                    return
            n = os.write(self._stdin, data)
            if n < len(data):
                # The rest of the cut line goes first next time; one too long to keep is
                # dropped, but its line still ends there, so only that line is lost.
                self._pending = data[n:] if len(data) - n <= PENDING_MAX else b"\n"
        except BlockingIOError:
            self.dropped += 1
        except (BrokenPipeError, OSError) as e:
            self._alive = False
            self.log.write(f"gesturekit: warning: the live page's server stopped ({e}); "
                           "going on without it\n")
            self.log.flush()

    def lines(self) -> list[str]:
        """Lines the server wrote since the last call (never waits)."""
        try:
            chunk = os.read(self._stdout, 4096)
        except OSError:  # nothing yet (BlockingIOError), or the server is gone
            return []
        self._out_buffer += chunk
        *done, self._out_buffer = self._out_buffer.split(b"\n")
        return [line.decode(errors="replace") for line in done]

    def close(self) -> None:
        """End of input: the server pushes what it has and exits; killed past a deadline."""
        try:
            os.set_blocking(self._stdin, True)
            if self._pending and self._alive:
                os.write(self._stdin, self._pending)
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)


def _array(block: list[bytes], rows: int) -> str:
    return base64.b64encode(b"".join(block)).decode("ascii") if rows else ""


class WebOutput:
    """An `Output` for the runner that hands everything to `inner` (the printer or the
    terminal view) and, batched, to the page. Its hot-path calls only keep bytes.

    The page's health numbers are read from the runner it `follow`s when a batch goes out
    (counters, and the latencies of the windows since the last batch), not from
    `Runner.health`: its latency percentiles, twice a second, cost the runner more CPU than
    all the rest of the page together (the server computes them instead)."""

    def __init__(self, inner: Output, server: WebServer, clock=time.monotonic):
        self.inner, self.server, self._clock = inner, server, clock
        self.status_on = inner.status_on
        self._runner: Runner | None = None
        self._windows_sent = 0
        self._samples: list[bytes] = []
        self._sample_rows = 0
        self._windows: list[bytes] = []
        self._next_send = self._next_health = 0.0

    def follow(self, runner: Runner) -> None:
        self._runner = runner

    def samples(self, block: np.ndarray) -> None:
        self.inner.samples(block)
        self._samples.append(np.ascontiguousarray(block, np.float32).tobytes())
        self._sample_rows += len(block)
        now = self._clock()
        if now >= self._next_send:
            self._flush(now)

    def window(self, probs: np.ndarray) -> None:
        self.inner.window(probs)
        self._windows.append(np.asarray(probs, np.float32).tobytes())

    def emit(self, record: dict, text: str) -> None:
        self.inner.emit(record, text)
        self._flush(self._clock(), json.dumps({"t": "r", "r": record}))

    def warn(self, message: str) -> None:
        self.inner.warn(message)
        self._flush(self._clock(), json.dumps({"t": "r", "r": {"kind": "warning",
                                                              "message": message}}))

    def status(self, health: dict) -> None:
        self.inner.status(health)

    def close(self) -> None:
        self._flush(self._clock())
        self.inner.close()
        self.server.close()

    def _health(self) -> str:
        """The runner's counters and its newest window latencies, as a JSON line."""
        runner = self._runner
        stats, lines = runner.stats, runner.parser.stats
        new = min(stats.windows - self._windows_sent, len(stats.latencies_ms))
        self._windows_sent = stats.windows
        latencies = list(itertools.islice(reversed(stats.latencies_ms), new))[::-1]
        return json.dumps({"t": "h", "r": {
            "samples": lines.samples, "bad_lines": lines.bad_lines, "windows": stats.windows,
            "events": stats.events, "gaps": stats.gaps, "reconnects": stats.reconnects,
            "rate_hz": stats.rate_hz, "page_drops": self.server.dropped}, "lat": latencies})

    def _flush(self, now: float, record: str | None = None) -> None:
        """One write: the batched samples and windows (in stream order, before `record`)."""
        parts = []
        if self._sample_rows or self._windows:
            parts.append(f'{{"t":"b","n":{self._sample_rows},'
                         f'"s":"{_array(self._samples, self._sample_rows)}",'
                         f'"w":"{_array(self._windows, len(self._windows))}"}}')
            self._samples.clear()
            self._windows.clear()
            self._sample_rows = 0
        if self._runner is not None and now >= self._next_health:
            parts.append(self._health())
            self._next_health = now + HEALTH_EVERY_S
        if record is not None:
            parts.append(record)
        self.server.send(("\n".join(parts) + "\n").encode())
        self._next_send = now + 1.0 / SEND_HZ


def run_hello(bundle: Bundle, postprocess: PostprocessConfig, port: str) -> dict:
    """What the page of `run` needs once: names, rate, each class's smoothing and threshold."""
    events = set(announced_classes(bundle.labels, bundle.background_label,
                                   postprocess.event_classes or bundle.events))
    return {"mode": "run", "title": f"{bundle.root.name} · {port}", "labels": bundle.labels,
            "channels": bundle.channels, "rate_hz": bundle.sample_rate_hz,
            "smoothing": class_smoothing(postprocess, bundle.labels, bundle.background_label),
            "thresholds": [postprocess.settings(label)["threshold"] if label in events else None
                           for label in bundle.labels]}


class RecordLink:
    """`record --web`: the recorder's key source (the terminal's keys, then the page's) and
    its sample monitor (what it appends, with the label it appends them under)."""

    def __init__(self, keys, server: WebServer, clock=time.monotonic):
        self.terminal, self.server, self._clock = keys, server, clock
        self._blocks: list[bytes] = []
        self._labels: list[tuple[str, int]] = []  # (label, rows) runs of the batch
        self._rows = 0
        self._channels: list[str] | None = None
        self._next_send = 0.0

    def keys(self) -> str:
        return self.terminal.keys() + "".join(
            line[4:] for line in self.server.lines() if line.startswith("key "))

    def samples(self, rows: np.ndarray, label: str, channels: list[str]) -> None:
        """Rows the recorder appends under `label`."""
        if channels != self._channels:
            self._channels = list(channels)
            self.server.send((json.dumps({"t": "c", "channels": self._channels}) + "\n").encode())
        self._blocks.append(np.ascontiguousarray(rows, np.float32).tobytes())
        if self._labels and self._labels[-1][0] == label:
            self._labels[-1] = (label, self._labels[-1][1] + len(rows))
        else:
            self._labels.append((label, len(rows)))
        self._rows += len(rows)
        now = self._clock()
        if now >= self._next_send:
            self._flush(now)

    def _flush(self, now: float) -> None:
        if self._rows:
            self.server.send((json.dumps({"t": "b", "n": self._rows, "s": _array(self._blocks, self._rows),
                                          "l": self._labels}) + "\n").encode())
            self._blocks, self._labels, self._rows = [], [], 0
        self._next_send = now + 1.0 / SEND_HZ

    def close(self) -> None:
        self._flush(self._clock())
        self.terminal.close()
        self.server.close()
