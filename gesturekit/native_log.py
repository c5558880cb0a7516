"""TensorFlow's C++ log lines kept out of a command's output.

TensorFlow, its converter and the TFLite interpreter log from C++ straight to file descriptor
2: oneDNN and CPU-feature notices while loading (before absl reads TF_CPP_MIN_LOG_LEVEL, so
that variable cannot stop them), a cuInit error on every machine without a GPU, the
quantiser's settings on every int8 conversion. Python cannot reach those loggers, so a command
that loads TensorFlow runs with fd 2 behind a pipe whose reader drops exactly those lines and
passes every other byte through as it comes. `gesturekit --debug` leaves fd 2 alone.

The TFLite interpreter announces its XNNPACK delegate the same way each time one is created,
so the device side (`device.core.backends.Classifier`) drops native log lines while it creates one,
and only then: `run` keeps a real stderr (its status line needs the terminal).
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Lines that are native logging, never the toolkit's or Python's output.
NATIVE_LOG_LINE = re.compile(
    rb"[IWEF]\d{4} \d\d:\d\d:[\d.]+ +\d+ [^ :]+:\d+\] "  # absl/glog: I0000 00:00:17.5  6270 port.cc:153]
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|To enable the following instructions: "  # second line of cpu_feature_guard's notice
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate"  # TFLite's own logger
    rb"|fully_quantize: \d"  # the converter's calibration wrapper
)
# A child process still holding the pipe must not hold up the command's exit.
DRAIN_TIMEOUT_S = 2.0
# `gesturekit --debug` sets this: native logging is then shown everywhere.
show_native_logs = False


def is_native_log_line(line: bytes) -> bool:
    """True for a line of TensorFlow's C++ logging."""
    return NATIVE_LOG_LINE.match(line) is not None


@contextmanager
def native_logs_dropped() -> Iterator[None]:
    """Inside the block, lines written to fd 2 that are native log lines are dropped (unless
    `show_native_logs`)."""
    if show_native_logs:
        yield
        return
    sys.stderr.flush()
    real_stderr = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    reader = threading.Thread(target=_forward, args=(read_end, os.dup(real_stderr)),
                              name="native-log-filter", daemon=True)
    reader.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real_stderr, 2)  # the pipe's last writer is gone: the reader sees its end
        os.close(real_stderr)
        reader.join(DRAIN_TIMEOUT_S)


def _forward(read_end: int, out: int) -> None:
    """Copy whole lines from `read_end` to `out`, leaving native log lines out."""
    pending = b""
    try:
        while chunk := os.read(read_end, 65536):
            *lines, pending = (pending + chunk).split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not is_native_log_line(line))
            _write_all(out, kept)
        if pending and not is_native_log_line(pending):
            _write_all(out, pending)
    finally:
        os.close(read_end)
        os.close(out)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
