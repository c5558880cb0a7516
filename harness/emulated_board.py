"""Feed the classifier firmware on the emulated board (QEMU) a whole stream and collect every
line it prints: the int8 outputs and Invoke() ticks of each window, the window and event lines
and its final stats. The tests compare it with the host; bench/firmware_board.py counts its
instructions."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gesturekit.device.emulator.qemu import BoardPort, Qemu
from gesturekit.errors import UserError


def parse_stats(line: str) -> dict[str, int]:
    """The board's `# stats key=value ...` line as a dict."""
    return {k: int(v) for k, v in (item.split("=") for item in line.split()[2:])}


@dataclass
class ClassifierRun:
    """What the classifier firmware printed for one stream; windows keyed by end sample."""

    banner: str
    int8: dict[int, np.ndarray] = field(default_factory=dict)  # the window's int8 outputs
    ticks: dict[int, int] = field(default_factory=dict)  # Invoke() in 25 MHz board ticks
    window_lines: dict[int, str] = field(default_factory=dict)  # "  window @N: label p"
    events: list[str] = field(default_factory=list)  # event lines, as printed
    stats: dict[str, int] = field(default_factory=dict)  # the final `#!stats`


def feed_classifier(elf: Path, stream: bytes, icount: bool = False,
                    deadline_s: float = 600.0) -> ClassifierRun:
    """Boot the classifier firmware, send `stream` (after a first line, which the board drops
    like the runner, and `#!windows`), and collect every line it prints until its stats."""
    with Qemu(elf, icount=icount) as qemu:
        board = BoardPort(qemu.pty)
        try:
            run = ClassifierRun(board.wait_ready())
            data = b"# dropped: the first line may be cut\n#!windows\n" + stream + b"#!stats\n"
            # The board prints while it reads: write from a thread, or both sides could wait.
            writer = threading.Thread(target=board.write, args=(data, deadline_s), daemon=True)
            writer.start()
            deadline = time.monotonic() + deadline_s
            while not run.stats:
                line = board.readline(max(0.0, deadline - time.monotonic()))
                if line is None:
                    raise UserError(f"emulate: the board stopped after {len(run.int8)} windows")
                if line.startswith("# int8 @"):  # "# int8 @N: <hex> ticks T"
                    _, _, at, hexbytes, _, ticks = line.split()
                    run.int8[int(at[1:-1])] = np.frombuffer(bytes.fromhex(hexbytes), np.int8)
                    run.ticks[int(at[1:-1])] = int(ticks)
                elif line.startswith("  window @"):
                    run.window_lines[int(line.split("@")[1].split(":")[0])] = line
                elif line.startswith("# stats"):
                    run.stats = parse_stats(line)
                elif not line.startswith("#"):
                    run.events.append(line)
            writer.join(timeout=deadline_s)
        finally:
            board.close()
    return run
