"""The live page's server: a process of its own, fed JSON lines on stdin by `device/live/web.py`.

aiohttp serves the page's own files (a fixed list, nothing else) and one WebSocket per open
page. It keeps the last `PLOT_S` seconds of signal, the class probabilities as the detector
smooths them (`postprocess.per_class_smoothed`, each class with its own smoothing), the
event feed and the stream's health; every page gets what is new since its last message, at
most `PUSH_HZ` times a second, each page at its own pace (a page that stops reading holds
only its own socket). Nothing it does reaches back into the runner, which only writes to a
pipe it never waits on.

In record mode the page's label buttons and the guided mode write `key N` lines on stdout, the
key the terminal would type; the recorder reads them and labels what it writes itself.

Security: it binds where it is told (the CLI's default is 127.0.0.1); a request whose Host is
not this server (DNS rebinding) and a WebSocket from any other Origin are refused; every
response carries a Content-Security-Policy that allows only this server's own scripts,
styles and socket.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import json
import os
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
from aiohttp import WSMsgType, web

from gesturekit.device.core.postprocess import per_class_smoothed
from gesturekit.device.live.runner import LATENCY_WINDOWS, latency_percentiles

STATIC = Path(__file__).with_name("static")
FILES = {  # URL path -> (file in static/, content type): the only files served
    "/": ("index.html", "text/html"),
    "/app.js": ("app.js", "text/javascript"),
    "/style.css": ("style.css", "text/css"),
    "/uPlot.iife.min.js": ("uPlot.iife.min.js", "text/javascript"),
    "/uPlot.min.css": ("uPlot.min.css", "text/css"),
    "/uPlot.LICENSE": ("uPlot.LICENSE", "text/plain"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
PUSH_HZ = 10.0
POLL_HZ = 20.0  # reads of the runner's pipe per second
PLOT_S = 5.0  # seconds of stream in the plot
PLOT_ROWS_MAX = 5_000  # whatever the rate
EVENTS_KEPT = 200
SEND_TIMEOUT_S = 10.0  # a page that takes longer to accept one message is closed
EXIT_GRACE_S = 0.5  # after the stream ends, pages get their last message
COUNTDOWN_S = 3.0  # guided mode: "get ready" before each gesture
GESTURE_S = 2.0  # guided mode: samples labelled with the gesture
MAX_REPS = 50


class Live:
    """Everything the pages show, updated from the runner's or the recorder's lines."""

    def __init__(self):
        self.hello: dict = {}
        self.channels: list[str] = []
        self.plot: np.ndarray | None = None  # ring of the newest rows
        self.total = 0  # rows so far (the stream's sample index after the newest)
        self._recent: deque[np.ndarray] = deque(maxlen=1)
        self.shown: list[float] | None = None
        self.events: deque[tuple[int, dict]] = deque(maxlen=EVENTS_KEPT)
        self.records = 0  # events, gaps, warnings so far (their sequence numbers)
        self.health: dict = {}
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOWS)  # as the runner keeps them
        self.label: str | None = None  # record: the label of the newest rows
        self.counts: dict[str, int] = {}  # record: rows per label
        self.prompt: dict | None = None  # record: the guided mode's current step
        self.guided: asyncio.Task | None = None  # record: the one guided run, while it runs
        self.ended = False

    def feed(self, message: dict) -> None:
        kind = message.get("t")
        if kind == "hello":
            self.hello = message
            self.channels = list(message.get("channels") or [])
            self._recent = deque(maxlen=max(message.get("smoothing") or [1]))
            self.counts = dict.fromkeys(message.get("record_labels") or [], 0)
        elif kind == "c":
            self.channels = message["channels"]
        elif kind == "b":
            self._batch(message)
        elif kind == "r":
            record = message["r"]
            if record.get("kind") == "gap":
                self._recent.clear()  # the detector restarts its smoothing too
            self.records += 1
            self.events.append((self.records, record))
        elif kind == "h":
            self._latencies.extend(message["lat"])
            self.health = {**message["r"], "latency_ms": latency_percentiles(self._latencies)}

    def _batch(self, message: dict) -> None:
        n = message["n"]
        if n:
            rows = np.frombuffer(base64.b64decode(message["s"]), np.float32).reshape(n, -1)
            if self.plot is None or self.plot.shape[1] != rows.shape[1]:
                rate = self.hello.get("rate_hz") or 50.0
                self.plot = np.zeros((min(PLOT_ROWS_MAX, int(PLOT_S * rate)), rows.shape[1]),
                                     np.float32)
            size = len(self.plot)
            index = (self.total + np.arange(len(rows[-size:]))) % size
            self.plot[index] = rows[-size:]
            self.total += n
        for label, count in message.get("l") or []:
            self.counts[label] = self.counts.get(label, 0) + count
            self.label = label
        if message.get("w"):
            labels = len(self.hello["labels"])
            windows = np.frombuffer(base64.b64decode(message["w"]), np.float32).reshape(-1, labels)
            self._recent.extend(windows)
            self.shown = per_class_smoothed(list(self._recent),
                                            self.hello["smoothing"]).round(4).tolist()

    def rows_since(self, start: int) -> tuple[int, list[list[float]]]:
        """(index of the first, channel-major values) of the rows from `start` still kept."""
        if self.plot is None or start >= self.total:
            return self.total, []
        first = max(start, self.total - len(self.plot))
        index = np.arange(first, self.total) % len(self.plot)
        return first, self.plot[index].T.round(4).tolist()

    def message(self, rows_from: int, records_from: int) -> dict:
        """What a page that has rows up to `rows_from` and records up to `records_from` lacks."""
        first, columns = self.rows_since(rows_from)
        message = {"from": first, "total": self.total, "rows": columns,
                   "records": [{"seq": seq, **r} for seq, r in self.events if seq > records_from],
                   "health": self.health, "ended": self.ended}
        if self.hello.get("mode") == "run":
            message["probs"] = self.shown
            if self.shown is not None:
                message["state"] = self.hello["labels"][int(np.argmax(self.shown))]
        else:
            message.update(label=self.label, counts=self.counts, channels=self.channels,
                           prompt=self._prompt_now())
        return message

    def _prompt_now(self) -> dict | None:
        if self.prompt is None:
            return None
        return {**self.prompt, "left_s": round(max(0.0, self.prompt["until"] - time.monotonic()), 1)}


def allowed_hosts(host: str, port: int) -> set[str] | None:
    """Host headers this server answers: its own address (and the loopback names when bound to
    loopback); None when bound to a network address the user chose (any name, this port)."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        return None
    return {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}


def make_app(live: Live, host: str, port_box: list[int]) -> web.Application:
    """`port_box[0]`: the bound port, known once the site has started (port 0 picks one)."""

    def host_ok(request: web.Request) -> bool:
        allowed = allowed_hosts(host, port_box[0])
        given = request.host or ""
        return given in allowed if allowed is not None else given.endswith(f":{port_box[0]}")

    @web.middleware
    async def guard(request: web.Request, handler):
        if not host_ok(request):
            return web.Response(status=403, text="wrong Host", headers=HEADERS)
        response = await handler(request)
        response.headers.update(HEADERS)
        return response

    async def static(request: web.Request) -> web.StreamResponse:
        name, content_type = FILES[request.path]
        return web.Response(body=(STATIC / name).read_bytes(), content_type=content_type,
                            charset="utf-8")

    async def socket(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Origin") != f"http://{request.host}":
            return web.Response(status=403, text="wrong Origin")
        ws = web.WebSocketResponse(max_msg_size=4096, heartbeat=20)
        await ws.prepare(request)
        pusher = asyncio.ensure_future(push(ws, live))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    command(live, msg.data)
        finally:
            pusher.cancel()
        return ws

    app = web.Application(middlewares=[guard])
    for path in FILES:
        app.router.add_get(path, static)
    app.router.add_get("/ws", socket)
    return app


async def push(ws: web.WebSocketResponse, live: Live) -> None:
    """Hello first, then what is new, at most PUSH_HZ a second, at this page's own pace."""
    while not live.hello:  # a page faster than the runner's first line
        await asyncio.sleep(1.0 / PUSH_HZ)
    await ws.send_str(json.dumps({"hello": live.hello}))
    rows_from = max(0, live.total - (len(live.plot) if live.plot is not None else 0))
    records_from = live.events[0][0] - 1 if live.events else live.records
    while not ws.closed:
        message = live.message(rows_from, records_from)
        rows_from, records_from = live.total, live.records
        try:
            await asyncio.wait_for(ws.send_str(json.dumps(message)), SEND_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            await ws.close()
            return
        await asyncio.sleep(1.0 / PUSH_HZ)


def command(live: Live, text: str) -> None:
    """A page's click: `{"label": L}` or `{"guided": N}` (0 stops); record mode only, and only
    labels of this recording. Anything else is ignored."""
    labels = live.hello.get("record_labels") or []
    if live.hello.get("mode") != "record" or live.ended:
        return
    try:
        message = json.loads(text)
    except ValueError:
        return
    if not isinstance(message, dict):
        return
    if isinstance(message.get("label"), str) and message["label"] in labels:
        stop_guided(live)
        key(labels.index(message["label"]))
    reps = message.get("guided")
    if isinstance(reps, int) and not isinstance(reps, bool) and 0 <= reps <= MAX_REPS:
        stop_guided(live)
        if reps and len(labels) > 1:
            live.guided = asyncio.ensure_future(guided(live, labels, reps))


def key(index: int) -> None:
    """Tell the recorder to switch to label `index` (its key: 0 the first label)."""
    sys.stdout.write(f"key {index}\n")
    sys.stdout.flush()


def stop_guided(live: Live) -> None:
    if live.guided is not None:
        live.guided.cancel()
        live.guided = None
        live.prompt = None
        key(0)


async def guided(live: Live, labels: list[str], reps: int) -> None:
    """Each gesture `reps` times: a countdown under the first label, then GESTURE_S seconds
    under the gesture's; the recorder labels the samples by these switches."""
    for rep in range(1, reps + 1):
        for index, label in enumerate(labels[1:], start=1):
            for phase, seconds, switch in (("ready", COUNTDOWN_S, 0), ("go", GESTURE_S, index)):
                key(switch)
                live.prompt = {"phase": phase, "label": label, "rep": rep, "reps": reps,
                               "until": time.monotonic() + seconds}
                await asyncio.sleep(seconds)
    key(0)
    live.prompt = {"phase": "done", "label": labels[0], "rep": reps, "reps": reps,
                   "until": time.monotonic()}
    live.guided = None


async def read_input(live: Live) -> None:
    """The runner's lines until it closes the pipe. Polled, never waited on: a reader
    blocked on the pipe would be woken by every write, and waking it costs the writer (the
    runner) CPU; polled, a write only copies bytes."""
    fd = sys.stdin.fileno()
    os.set_blocking(fd, False)
    buffer = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            await asyncio.sleep(1.0 / POLL_HZ)
            continue
        if not chunk:
            break
        *lines, buffer = (buffer + chunk).split(b"\n")
        for line in lines:
            try:
                live.feed(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a dropped write: the next one is whole
    live.ended = True


async def serve(host: str, port: int) -> int:
    live = Live()
    port_box = [port]
    runner = web.AppRunner(make_app(live, host, port_box), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except OSError as e:
        print(f"cannot listen on {host}:{port}: {e.strerror or e}", file=sys.stderr, flush=True)
        await runner.cleanup()
        return 2
    port_box[0] = runner.addresses[0][1]
    shown_host = f"[{host}]" if ":" in host else host
    print(f"listening http://{shown_host}:{port_box[0]}/", flush=True)
    await read_input(live)
    await asyncio.sleep(EXIT_GRACE_S)
    await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the live page's server (started by "
                                                 "`gesturekit run --web` and `record --web`)")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    return asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    sys.exit(main())
