"""qemu-system-arm running a firmware .elf on mps2-an386, and its UART as the host sees it."""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
import tty
from pathlib import Path

from gesturekit.errors import UserError

QEMU_START_DEADLINE_S = 20.0  # until QEMU names its pty
READY_DEADLINE_S = 30.0  # until the classifier says "ready" (QEMU notices a reader in ~1 s)
READY_MARK = "; ready"
QEMU_PTY = re.compile(r"char device redirected to (\S+) \(label serial0\)")


class Qemu:
    """qemu-system-arm running an .elf on mps2-an386, its UART0 on a pty (`self.pty`).

    `icount=True` runs with `-icount shift=0`: emulated time is instruction count (1 ns each),
    so the board's clock counts instructions (slower; for measurements)."""

    def __init__(self, elf: Path, icount: bool = False):
        cmd = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
               "-serial", "pty", "-kernel", str(elf)]
        if icount:
            cmd += ["-icount", "shift=0"]
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.pty = self._wait_pty()

    def _wait_pty(self) -> str:
        deadline = time.monotonic() + QEMU_START_DEADLINE_S
        seen = []
        while (left := deadline - time.monotonic()) > 0:  # printed before the CPU starts
            if not select.select([self.process.stdout], [], [], left)[0]:
                break
            line = self.process.stdout.readline()
            if not line:
                break
            seen.append(line.strip())
            match = QEMU_PTY.search(line)
            if match:
                return match.group(1)
        self.close()
        raise UserError(f"emulate: qemu-system-arm named no pty ({' | '.join(seen[-2:]) or 'no output'})")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process.stdout.close()

    def __enter__(self) -> Qemu:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BoardPort:
    """The emulated board's UART as the host sees it: raw, non-blocking, no lock (so that
    `gesturekit simulate --port` can open the same pty to write while this reads)."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self._buffer = b""

    def readline(self, timeout_s: float) -> str | None:
        """The next whole line without its line end, or None at the deadline."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            try:
                chunk = os.read(self.fd, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.rstrip(b"\r").decode("ascii", "replace")

    def wait_ready(self, timeout_s: float = READY_DEADLINE_S) -> str:
        """The classifier's banner; it repeats it until the host sends something."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            line = self.readline(left)
            if line is not None and line.startswith("# error:"):
                raise UserError(f"emulated board: {line[2:]}")
            if line is not None and line.endswith(READY_MARK):
                return line
        raise UserError(f"emulate: the board said nothing within {timeout_s:g} s")

    def write(self, data: bytes, timeout_s: float = 5.0) -> None:
        """All of `data`; the board takes bytes as fast as it reads them (flow control)."""
        view = memoryview(data)
        while view:
            if not select.select([], [self.fd], [], timeout_s)[1]:
                raise UserError(f"emulate: the board took nothing for {timeout_s:g} s")
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                continue

    def close(self) -> None:
        os.close(self.fd)
