"""The live page (`run --web`, `record --web`): its server's rules over real HTTP and WebSocket
connections, and the page itself in headless Chromium (selenium), fed by the real runner and
recorder reading the simulator's pseudo-terminal."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_simulate_record import CHANNELS, has_samples, recording, start, wait_for  # noqa: F401

from gesturekit.device.core.postprocess import per_class_smoothed
from gesturekit.device.core.recording import read_recording, read_spec
from gesturekit.device.live.web import WebOutput, WebServer, parse_address
from gesturekit.device.live.web_server import Live
from gesturekit.errors import UserError

GESTUREKIT = [sys.executable, "-m", "gesturekit.cli"]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                    reason="chromium and chromedriver (apt) not installed")
RECORD_HELLO = {"mode": "record", "title": "t", "record_labels": ["idle", "walk", "jump"],
                "rate_hz": None}


@pytest.fixture
def server():
    """A real page server on a free localhost port, in record mode."""
    server = WebServer("127.0.0.1:0", RECORD_HELLO)
    yield server
    server.close()


def host_port(url: str) -> tuple[str, int]:
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    return host, int(port)


def get(url: str, path: str, host: str | None = None) -> tuple[int, dict, bytes]:
    address, port = host_port(url)
    conn = http.client.HTTPConnection(address, port, timeout=10)
    conn.request("GET", path, headers={"Host": host} if host else {})
    response = conn.getresponse()
    result = response.status, dict(response.getheaders()), response.read()
    conn.close()
    return result


def websocket(url: str, origin: str | None, send: list[dict] = ()) -> list[dict] | int:
    """Open /ws with `origin`, send `send`, return the first two messages (or the refusal's
    HTTP status)."""
    import aiohttp

    async def talk():
        headers = {"Origin": origin} if origin else {}
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(url + "ws", headers=headers) as ws:
                    got = [json.loads((await ws.receive(timeout=10)).data) for _ in range(2)]
                    for message in send:
                        await ws.send_str(json.dumps(message))
                    await asyncio.sleep(0.3)
                    return got
            except aiohttp.WSServerHandshakeError as e:
                return e.status

    return asyncio.run(talk())


# --- without a browser --------------------------------------------------------------------------


def test_parse_address():
    assert parse_address("") == ("127.0.0.1", 8765)
    assert parse_address("9000") == ("127.0.0.1", 9000)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    assert parse_address("myhost:") == ("myhost", 8765)
    for bad in ("http", "host:99999", "host:-1"):
        with pytest.raises(UserError, match=f"--web {bad}: expected"):
            parse_address(bad)


def test_page_shows_each_class_as_the_detector_smooths_it():
    """The server's probabilities are `per_class_smoothed` of the windows the runner sent; a
    gap restarts the smoothing, as in the detector."""
    import base64

    live = Live()
    live.feed({"t": "hello", "mode": "run", "labels": ["idle", "jump", "walk"],
               "channels": ["ax"], "rate_hz": 50, "smoothing": [3, 1, 3],
               "thresholds": [None, 0.9, None]})
    windows = np.random.default_rng(0).dirichlet(np.ones(3), size=5).astype(np.float32)
    samples = np.arange(8, dtype=np.float32).reshape(8, 1)
    live.feed({"t": "b", "n": 8, "s": base64.b64encode(samples.tobytes()).decode(),
               "w": base64.b64encode(windows.tobytes()).decode()})
    message = live.message(0, 0)
    assert message["probs"] == pytest.approx(per_class_smoothed(list(windows), [3, 1, 3]), abs=1e-4)
    assert message["state"] == ["idle", "jump", "walk"][int(np.argmax(message["probs"]))]
    assert message["from"] == 0 and message["rows"] == [samples[:, 0].tolist()]
    live.feed({"t": "r", "r": {"kind": "gap", "time": 1.0, "reason": "silence", "seconds": 2.0}})
    live.feed({"t": "b", "n": 0, "s": "", "w": base64.b64encode(windows[:1].tobytes()).decode()})
    assert live.message(8, 0)["probs"] == pytest.approx(windows[0], abs=1e-4)
    assert [r["kind"] for r in live.message(8, 0)["records"]] == ["gap"]


def test_server_serves_only_its_files_with_a_csp(server):
    status, headers, body = get(server.url, "/")
    assert status == 200 and b"app.js" in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, _, body = get(server.url, "/uPlot.LICENSE")
    assert status == 200 and b"MIT License" in body
    for path in ("/../web.py", "/static/app.js", "/web_server.py", "/%2e%2e/web.py", "/etc/passwd"):
        assert get(server.url, path)[0] == 404, path


def test_server_refuses_another_host_and_another_origin(server):
    """DNS rebinding (a page of evil.example resolving to 127.0.0.1) sends its own Host; a
    page of another site opening our socket sends its own Origin."""
    assert get(server.url, "/", host="evil.example:80")[0] == 403
    host, port = host_port(server.url)
    assert get(server.url, "/", host=f"localhost:{port}")[0] == 200
    assert websocket(server.url, "http://evil.example") == 403
    assert websocket(server.url, None) == 403
    hello, first = websocket(server.url, f"http://{host}:{port}")
    assert hello["hello"]["record_labels"] == ["idle", "walk", "jump"] and "counts" in first


def test_page_commands_act_only_on_this_recordings_labels(server):
    host, port = host_port(server.url)
    websocket(server.url, f"http://{host}:{port}",
              [{"label": "rm -rf"}, {"label": 3}, {"guided": 99}, "junk", {"label": "jump"}])
    deadline = time.monotonic() + 10
    lines = []
    while "key 2" not in lines and time.monotonic() < deadline:
        lines += server.lines()
        time.sleep(0.05)
    assert lines == ["key 2"]  # jump is key 2: idle 0, walk 1; nothing else got through


def test_a_stuck_server_never_blocks_the_sender(server):
    """SIGSTOP: the server reads nothing; the pipe fills and batches are dropped, each send
    returning at once; after SIGCONT the server reads on."""
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        output = WebOutput(_Silent(), server, clock=iter(range(10**6)).__next__)
        block = np.ones((50, 6), np.float32)
        start = time.perf_counter()
        for _ in range(2000):  # about 1 MB of base64, 16x a pipe's buffer
            output.samples(block)
        assert time.perf_counter() - start < 2.0
        assert server.dropped > 100
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


class _Silent:
    """An inner output that shows nothing."""

    status_on = False

    def samples(self, block):
        pass

    def window(self, probs):
        pass

    def emit(self, record, text):
        pass

    def warn(self, message):
        pass

    def status(self, health):
        pass

    def close(self):
        pass


def test_web_port_in_use_is_a_user_error(tmp_path):
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        result = subprocess.run([*GESTUREKIT, "record", "--port", "loop://", "--label", "idle",
                                 "--out", str(tmp_path / "d"), "--web", f"127.0.0.1:{port}"],
                                capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert f"--web 127.0.0.1:{port}: the page's server did not start (cannot listen" in result.stderr
    assert not (tmp_path / "d").exists()


# --- in a browser -------------------------------------------------------------------------------


@pytest.fixture
def browser():
    """Headless Chromium, driven by selenium through Debian's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromedriver (apt) not installed")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1280,800", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def page_url(proc: subprocess.Popen, deadline_s: float = 60) -> str:
    """The URL the command prints on stderr (`live page: URL`)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        line = proc.stderr.readline()
        if line.startswith("live page: "):
            return line.split(": ", 1)[1].strip()
        assert line or proc.poll() is None, f"exited {proc.returncode} without a page"
    raise AssertionError(f"no live page URL within {deadline_s} s")


def counts_on_page(driver) -> dict[str, int]:
    return {b.get_attribute("data-label"): int(b.get_attribute("data-count") or 0)
            for b in driver.find_elements("css selector", "#labels button")}


def record_with_page(pty_path: str, out: Path, session: str, *options: str) -> subprocess.Popen:
    """`gesturekit record` from the pty into `out`/`session`.csv, first label idle, with a page
    on a free port (its URL on stderr)."""
    return subprocess.Popen([*GESTUREKIT, "record", "--port", pty_path, "--label", "idle",
                             "--out", str(out), "--session", session, *options,
                             "--web", "127.0.0.1:0"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@needs_chromium
def test_record_page_label_buttons_label_what_record_writes(recording, tmp_path, browser):  # noqa: F811
    path, data = recording
    sim, pty_path = start("simulate", str(path), "--pty", "--speed", "4", "--loop")  # 200 Hz
    out = tmp_path / "recorded"
    rec = record_with_page(pty_path, out, "take1", "--labels", "walk,jump", "--samples", "800")
    try:
        browser.get(page_url(rec))
        wait_for(lambda: has_samples(out / "take1.csv"), "no sample recorded")
        wait_for(lambda: counts_on_page(browser).get("idle", 0) > 0, "no idle samples on the page")
        browser.find_element("css selector", '#labels button[data-label="jump"]').click()
        wait_for(lambda: counts_on_page(browser).get("jump", 0) > 50, "no jump samples on the page")
        browser.find_element("css selector", '#labels button[data-label="idle"]').click()
        out_text, err = rec.communicate(timeout=60)
    finally:
        rec.kill()
        sim.kill()
    assert rec.returncode == 0, err
    assert "label -> jump" in err and "label -> idle" in err
    got = read_recording(out / "take1.csv", read_spec(out / "dataset.toml"))
    assert len(got.data) == 800 and got.channels == CHANNELS
    labels = got.labels.tolist()
    assert list(dict.fromkeys(labels)) == ["idle", "jump"]
    # Exactly what `record` writes: the first 800 samples the simulator played, in order.
    assert np.array_equal(got.data, np.vstack([data, data])[:800])
    # The page counted, per label, the samples that went into the file (up to its last push).
    shown = counts_on_page(browser)
    assert 0 < shown["jump"] <= labels.count("jump") and shown["idle"] <= labels.count("idle")


@needs_chromium
def test_record_page_guided_mode_prompts_and_labels_each_gesture(recording, tmp_path, browser):  # noqa: F811
    """One repetition of one gesture: a countdown under the first label, then GESTURE_S
    seconds labelled with the gesture, then back; Ctrl-C leaves a whole, valid file."""
    from gesturekit.device.live.web_server import GESTURE_S

    path, _ = recording
    sim, pty_path = start("simulate", str(path), "--pty", "--speed", "2", "--loop")  # 100 Hz
    out = tmp_path / "recorded"
    rec = record_with_page(pty_path, out, "guided", "--labels", "jump", "--rate", "100")
    prompts = []

    def prompt_is(phase: str) -> bool:
        # Text and class in one script: read apart, the page could change between the two.
        text, shown = browser.execute_script(
            "const e = document.getElementById('prompt'); return [e.innerText, e.className];")
        if text and (not prompts or prompts[-1] != text):
            prompts.append(text)
        return shown == phase

    try:
        browser.get(page_url(rec))
        wait_for(lambda: counts_on_page(browser).get("idle", 0) > 0, "no samples on the page")
        reps = browser.find_element("id", "reps")
        reps.clear()
        reps.send_keys("1")
        browser.find_element("id", "guided-start").click()
        wait_for(lambda: prompt_is("ready"), "no countdown")
        wait_for(lambda: prompt_is("go"), "no prompt to do the gesture")
        wait_for(lambda: prompt_is("done"), "guided mode never finished")
        time.sleep(0.5)  # some idle after the gesture
        rec.send_signal(signal.SIGINT)
        out_text, err = rec.communicate(timeout=30)
    finally:
        rec.kill()
        sim.kill()
    assert rec.returncode == 0, err
    assert "interrupted" in out_text
    assert any(p.startswith("get ready: jump (1/1) in ") for p in prompts), prompts
    assert "jump now! (1/1)" in prompts and prompts[-1] == "guided recording done"
    labels = read_recording(out / "guided.csv", read_spec(out / "dataset.toml")).labels.tolist()
    assert list(dict.fromkeys(labels)) == ["idle", "jump"] and labels[-1] == "idle"
    # One run of jump, GESTURE_S long at 100 Hz (give or take a read's worth on a busy machine).
    first, last = labels.index("jump"), len(labels) - labels[::-1].index("jump")
    assert set(labels[first:last]) == {"jump"}
    assert abs((last - first) - GESTURE_S * 100) < 60, last - first


# The quick model is unsure of itself: opened up, its post-processing finds about five
# gestures in a 90 s session (default settings: about none).
OPEN_POSTPROCESS = ["--smoothing", "0", "--min-on", "0", "--threshold", "0.5",
                    "--refractory", "0"]


def page_events(driver) -> list[tuple[str, str]]:
    """(time as printed, label) of the events in the page's feed, oldest first."""
    rows = driver.find_elements("css selector", '#feed tbody tr[data-kind="event"]')
    return [(r.get_attribute("data-time"), r.get_attribute("data-label")) for r in rows][::-1]


@needs_chromium
def test_run_page_shows_the_events_the_runner_prints_and_closing_it_changes_nothing(
        quick_bundle, synth_dataset, browser):
    """The simulator plays a session into a pty, `run --web` classifies it: the plot moves,
    the bars are the bundle's classes with their thresholds, the feed holds the events the
    runner prints in the order it prints them, health shows the rate; the runner goes on to
    its end after the page is closed."""
    sim, pty_path = start("simulate", str(synth_dataset / "s02_session1.csv"), "--pty",
                          "--speed", "4", "--garbage", "0.05", "--seed", "1")
    run = subprocess.Popen([*GESTUREKIT, "run", "--port", pty_path, "--model", str(quick_bundle),
                            "--json", "--rate", "50", "--gap", "30", "--reconnect-timeout", "0",
                            *OPEN_POSTPROCESS, "--web", "127.0.0.1:0"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        browser.get(page_url(run))
        plot = browser.find_element("id", "plot")
        wait_for(lambda: plot.get_attribute("data-x-last"), "no signal plotted")
        canvas = "return document.querySelector('#plot canvas').toDataURL()"
        x0, image0 = float(plot.get_attribute("data-x-last")), browser.execute_script(canvas)
        wait_for(lambda: float(plot.get_attribute("data-x-last")) > x0 + 1, "the plot stands still")
        assert browser.execute_script(canvas) != image0
        bars = browser.find_elements("css selector", "#probs .prob")
        bundle = json.loads((quick_bundle / "model.json").read_text())
        assert [b.get_attribute("data-label") for b in bars] == bundle["labels"]
        assert len(browser.find_elements("css selector", "#probs .mark")) == len(bundle["labels"]) - 1
        wait_for(lambda: browser.find_element("id", "state").text in bundle["labels"], "no state")
        wait_for(lambda: len(page_events(browser)) >= 2, "fewer than 2 events on the page")
        # The health line is refreshed on its own clock: wait for the one after the windows.
        wait_for(lambda: re.search(r"latency p50 \d+\.\d / p99",
                                   browser.find_element("id", "health").text), "no latency shown")
        assert "rate 50.0 Hz" in browser.find_element("id", "health").text
        wait_for(lambda: re.search(r"bad lines [1-9]", browser.find_element("id", "health").text),
                 "no bad line counted on the page")
        shown = page_events(browser)
        browser.close()  # the page goes away mid-stream
        out, err = run.communicate(timeout=60)
    finally:
        run.kill()
        sim.kill()
    assert run.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    printed = [(f"{r['time']:.2f}", r["label"]) for r in records if r["kind"] == "event"]
    assert shown == printed[:len(shown)]
    summary = records[-1]  # the whole session: the runner went on to the stream's end
    assert summary["kind"] == "summary" and summary["ended"] == "disconnected"
    assert summary["samples"] == 4500  # every sample of the session (its header went first)


def stuck_page(url: str) -> socket.socket:
    """A page that opens the socket, then never reads a byte."""
    host, port = host_port(url)
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nOrigin: http://{host}:{port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
    return sock


def test_run_decides_the_same_with_a_stuck_page_as_with_none(quick_bundle, synth_dataset):
    """Two runs of the same session at the same time, one with no page, one with a page that
    never reads: the same windows and the same events at the same samples."""
    def play(web: bool):
        sim, pty_path = start("simulate", str(synth_dataset / "s03_session1.csv"), "--pty",
                              "--speed", "8")
        run = subprocess.Popen([*GESTUREKIT, "run", "--port", pty_path, "--model",
                                str(quick_bundle), "--json", "--windows", "--rate", "50",
                                "--gap", "30", "--reconnect-timeout", "0", *OPEN_POSTPROCESS,
                                *(["--web", "127.0.0.1:0"] if web else [])],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return sim, run

    (sim_a, plain), (sim_b, paged) = play(False), play(True)
    try:
        page = stuck_page(page_url(paged))
        results = [p.communicate(timeout=120) for p in (plain, paged)]
        page.close()
    finally:
        for p in (plain, paged, sim_a, sim_b):
            p.kill()
    assert plain.returncode == 0 and paged.returncode == 0, results[1][1]

    def decisions(out: str) -> list[tuple]:
        records = [json.loads(line) for line in out.splitlines()]
        return [(r["kind"], r["sample"], r["label"], r.get("probs")) for r in records
                if r["kind"] in ("window", "event")]

    first, second = decisions(results[0][0]), decisions(results[1][0])
    assert len(first) > 60 and any(kind == "event" for kind, *_ in first)  # 68 windows
    assert first == second
