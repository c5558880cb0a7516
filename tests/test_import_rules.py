"""The rooms' import rules, read from the source (no data, nothing imported):

- nothing under device/ imports TensorFlow, Keras, gesturekit.train or gesturekit.export: the
  board side installs without them (`.[device]`, or tflite-runtime alone);
- device/core/ (recordings, windows, metadata, bundles, post-processing, the classifier)
  touches no serial port, terminal, process, socket or server, and nothing of the live side:
  training reads its data through it;
- train/ and export/ reach into device/ only through the core.

Every import counts, top level or inside a function (the CLI's imports are lazy).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

HEAVY = {"tensorflow", "keras", "tf_keras", "tf2onnx", "gesturekit.train", "gesturekit.export"}
LIVE_IO = {"serial", "pty", "tty", "termios", "fcntl", "select", "socket", "subprocess", "signal",
           "asyncio", "aiohttp", "rich", "gesturekit.device.live", "gesturekit.device.cli",
           "gesturekit.device.emulator"}
DEVICE_OUTSIDE_CORE = {"gesturekit.device.live", "gesturekit.device.cli", "gesturekit.device.emulator"}


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file; `from a import b` gives a and a.b."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.ImportFrom):  # relative imports would hide a room's edges
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def breaches(folder: str, banned: set[str]) -> list[str]:
    files = sorted((REPO / folder).rglob("*.py"))
    assert files, f"{folder}: no Python files (the rule would pass on nothing)"
    return [f"{p.relative_to(REPO)}:{line} imports {name}"
            for p in files for line, name in imports(p)
            if name.startswith(".") or any(name == b or name.startswith(b + ".") for b in banned)]


@pytest.mark.parametrize(("folder", "banned"), [
    ("device", HEAVY),
    ("device/core", LIVE_IO),
    ("train", DEVICE_OUTSIDE_CORE),
    ("export", DEVICE_OUTSIDE_CORE),
])
def test_import_rule(folder, banned):
    assert breaches(folder, banned) == []


def test_the_rule_sees_lazy_and_from_imports(tmp_path, monkeypatch):
    probe = tmp_path / "device" / "core" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("import numpy\n\ndef f():\n    from gesturekit.device import live\n"
                     "    import serial.tools.list_ports\n    from . import x\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert breaches("device/core", LIVE_IO) == [
        "device/core/probe.py:4 imports gesturekit.device.live",
        "device/core/probe.py:5 imports serial.tools.list_ports",
        "device/core/probe.py:6 imports .",
    ]
