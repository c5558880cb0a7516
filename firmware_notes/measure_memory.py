"""Memory of an exported bundle on a TFLM board: prints the README's table rows.

    .venv/bin/python firmware_notes/measure_memory.py BUNDLE [BUNDLE ...]

model bytes: the int8 .tflite (= the g_model_data array in model_data.cc, which lands in
flash). arena: kTensorArenaBytes that `gesturekit export` wrote into model_config.h (its
estimate + 25%), and the arena that the real TensorFlow Lite Micro interpreter allocates
for the model (pip package tflite-micro, reference kernels, run on this 64-bit host; on a
32-bit board the per-tensor structs are smaller, CMSIS-NN/ESP-NN scratch may differ).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

# The TFLM interpreter prints its allocations from C++; a child process gets them all.
MEASURE = """
import sys
from tflite_micro.python.tflite_micro import runtime
interpreter = runtime.Interpreter.from_file(sys.argv[1], arena_size=1 << 20)
interpreter.print_allocations()
"""


def tflm_arena_bytes(model: Path) -> int:
    """Bytes the TFLM interpreter allocates in its arena for `model`."""
    result = subprocess.run([sys.executable, "-c", MEASURE, str(model)], capture_output=True,
                            text=True, timeout=120, check=True)
    # Where DebugLog writes (stdout or stderr) depends on the build; read both.
    found = re.search(r"Arena allocation total (\d+) bytes", result.stdout + result.stderr)
    return int(found.group(1))


def main(bundles: list[str]) -> int:
    print("| bundle | model | classes | int8 model (flash) | arena in model_config.h "
          "| arena used by TFLM (host) |")
    print("|---|---|---|---|---|---|")
    for root in map(Path, bundles):
        meta = json.loads((root / "model.json").read_text())
        model = root / meta["files"]["int8"]
        header = (root / "model_config.h").read_text()
        arena = int(re.search(r"kTensorArenaBytes = (\d+);", header).group(1))
        kind = meta.get("training", {}).get("model", "?")
        print(f"| {root.name} | {kind} | {len(meta['labels'])} | {model.stat().st_size:,} B "
              f"| {arena:,} B | {tflm_arena_bytes(model):,} B |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
