"""Bad ports and streams: one line on stderr, exit code 2, never a traceback."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
import threading
import time
import tty

import pytest
import serial

from gesturekit.device.live.ports import find_port

GESTUREKIT = [sys.executable, "-m", "gesturekit.cli"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*GESTUREKIT, *args], capture_output=True, text=True, env=ENV, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


class FakeBoard:
    """A real pty whose master side writes `lines` in a loop from a thread until stopped."""

    def __init__(self, line: bytes, rate_hz: float = 200.0):
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        os.close(slave)
        self._line, self._period, self._stop = line, 1.0 / rate_hz, threading.Event()
        self._thread = threading.Thread(target=self._play, daemon=True)
        self._thread.start()

    def _play(self) -> None:
        while not self._stop.wait(self._period):
            try:
                os.write(self.master, self._line)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self.master)


@pytest.fixture
def board_factory():
    boards = []

    def make(line: bytes, rate_hz: float = 200.0) -> FakeBoard:
        boards.append(FakeBoard(line, rate_hz))
        return boards[-1]

    yield make
    for board in boards:
        board.close()


def test_missing_port(quick_bundle):
    result = run_cli("run", "--port", "/dev/ttyDOES_NOT_EXIST", "--model", str(quick_bundle))
    assert_one_line_error(result, "/dev/ttyDOES_NOT_EXIST", "not found")


def test_unknown_url_scheme(quick_bundle):
    result = run_cli("run", "--port", "nosuch://x", "--model", str(quick_bundle))
    assert_one_line_error(result, "nosuch://x")


def test_busy_port(quick_bundle, board_factory):
    board = board_factory(b"1,2,3,4,5,6\n")
    holder = serial.serial_for_url(board.path, do_not_open=True)
    holder.exclusive = True
    holder.open()
    try:
        result = run_cli("run", "--port", board.path, "--model", str(quick_bundle))
    finally:
        holder.close()
    assert_one_line_error(result, "busy")


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs util-linux setpriv")
def test_permission_denied_hints_at_dialout(quick_bundle, board_factory):
    board = board_factory(b"1,2,3,4,5,6\n")
    os.chmod(board.path, 0)  # like /dev/ttyACM0 for a user outside the dialout group
    # Without the capability to override file modes, root is refused like any user.
    result = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                             *GESTUREKIT, "run", "--port", board.path, "--model", str(quick_bundle)],
                            capture_output=True, text=True, env=ENV, timeout=60)
    assert_one_line_error(result, "permission denied", "dialout")


def test_channel_mismatch_is_an_error(quick_bundle, board_factory):
    board = board_factory(b"0.1,0.2,0.3\n")
    result = run_cli("run", "--port", board.path, "--model", str(quick_bundle))
    assert_one_line_error(result, "sends 3 values per line", "expects 6", "ax, ay, az")


def test_no_valid_line_within_the_deadline(quick_bundle, board_factory):
    board = board_factory(b"\x00\xff garbage \xfe\n")
    start = time.monotonic()
    result = run_cli("run", "--port", board.path, "--model", str(quick_bundle),
                     "--first-line-timeout", "1")
    assert time.monotonic() - start < 30
    assert_one_line_error(result, "no valid sample line within 1 s", "binary")


def test_silent_port_hits_the_same_deadline(quick_bundle, board_factory):
    board = board_factory(b"", rate_hz=1)
    result = run_cli("run", "--port", board.path, "--model", str(quick_bundle),
                     "--first-line-timeout", "1")
    assert_one_line_error(result, "no valid sample line", "nothing parseable")


def test_rate_far_from_the_model_is_a_warning_not_an_error(quick_bundle, board_factory):
    board = board_factory(b"0.1,0.2,0.9,0.01,0.02,0.03\n", rate_hz=200)
    result = run_cli("run", "--port", board.path, "--model", str(quick_bundle), "--duration", "3",
                     "--json")
    assert result.returncode == 0, result.stderr
    assert "warning: stream runs at about" in result.stderr and "expects 50 Hz" in result.stderr


def test_bundle_without_the_requested_model(quick_bundle, tmp_path):
    result = run_cli("run", "--port", "loop://", "--model", str(tmp_path))
    assert_one_line_error(result, "not a model bundle")
    result = run_cli("run", "--port", "loop://", "--model", str(quick_bundle), "--backend",
                     "onnxruntime", "--int8")
    assert_one_line_error(result, "drop --int8")


def test_find_port_without_a_matching_board_returns_none():
    assert find_port("no board has this description") is None
    assert find_port("ffff:fffe") is None  # no USB device has this VID:PID


def test_run_with_a_match_that_finds_nothing(quick_bundle):
    result = run_cli("run", "--match", "ffff:fffe", "--model", str(quick_bundle))
    assert_one_line_error(result, "--match ffff:fffe", "no serial port matches")


def test_invalid_baud_rate_is_a_user_error():
    from gesturekit.device.live.ports import open_port
    from gesturekit.errors import UserError

    with pytest.raises(UserError, match="--baud -5: not a valid baud rate"):
        open_port("loop://", baudrate=-5)


def test_duration_0_ends_at_once_and_negative_is_refused(quick_bundle, board_factory):
    board = board_factory(b"0.1,0.2,0.9,0.01,0.02,0.03\n")
    result = subprocess.run([*GESTUREKIT, "run", "--port", board.path, "--model",
                             str(quick_bundle), "--json", "--duration", "0"],
                            capture_output=True, text=True, env=ENV, timeout=30)
    assert result.returncode == 0, result.stderr
    assert '"ended"' in result.stdout.splitlines()[-1]
    assert_one_line_error(run_cli("run", "--port", board.path, "--model", str(quick_bundle),
                                  "--duration", "-1"), "--duration", "'-1'")


NO_RICH = [sys.executable, "-c", "import sys; sys.modules['rich'] = None; "
           "from gesturekit.cli import main; sys.exit(main())"]


def test_view_without_rich_falls_back_to_lines(quick_bundle, board_factory):
    """The default view on a terminal, in a --no-deps install without rich: a warning, lines."""
    board = board_factory(b"0.1,0.2,0.9,0.01,0.02,0.03\n", rate_hz=50)
    master, slave = pty.openpty()  # stdout is a terminal, so the view is the default
    try:
        result = subprocess.run([*NO_RICH, "run", "--port", board.path, "--model",
                                 str(quick_bundle), "--duration", "1"], stdout=slave,
                                stderr=subprocess.PIPE, text=True, env=ENV, timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "warning: no live view" in result.stderr and "pip install rich" in result.stderr
    explicit = subprocess.run([*NO_RICH, "run", "--port", board.path, "--model",
                               str(quick_bundle), "--view", "--duration", "1"],
                              capture_output=True, text=True, env=ENV, timeout=60)
    assert_one_line_error(explicit, "--view needs the rich package")


def test_model_file_check_closes_the_file(tmp_path):
    import gc
    import warnings

    from gesturekit.device.core.backends import check_model_file

    model = tmp_path / "m.tflite"
    model.write_bytes(b"\0\0\0\0TFL3" + bytes(100))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        check_model_file(model, "float")
        gc.collect()
    # Only this file: the collection may also finalise what earlier tests in the process left.
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)
                and str(model) in str(w.message)]
