"""The live page (`run --web`, `record --web`): its server's rules over real HTTP and WebSocket
connections, and the page itself in headless Chromium (selenium), fed by the real runner and
recorder reading the simulator's pseudo-terminal."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

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


@needs_chromium
def test_record_page_label_buttons_label_what_record_writes(recording, tmp_path, browser):  # noqa: F811
    path, data = recording
    sim, pty_path = start("simulate", str(path), "--pty", "--speed", "4", "--loop")  # 200 Hz
    out = tmp_path / "recorded"
    rec = subprocess.Popen([*GESTUREKIT, "record", "--port", pty_path, "--label", "idle",
                            "--labels", "walk,jump", "--out", str(out), "--session", "take1",
                            "--samples", "800", "--web", "127.0.0.1:0"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
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
