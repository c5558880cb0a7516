"""The firmware on the emulated Cortex-M4F board (QEMU mps2-an386): memory, speed, equality.

For each model (the default CNN-LSTM and the CNN head) and TFLM kernel set (CMSIS-NN and the
reference kernels, the baseline in the ratios):
- flash and RAM of gesture_classifier (`arm-none-eabi-size`), split from the link map into
  model, TFLM core, TFLM kernels, CMSIS-NN, newlib-nano, libm + libgcc + libstdc++, app
  (firmware + GestureKit + board layer);
- arena used (`arena_used_bytes()` on the board) and the stack high-water mark (painted);
- instructions per Invoke: QEMU with `-icount shift=0` makes emulated time the instruction
  count (1 ns each), and the board times Invoke() with SysTick (25 MHz: 40 instructions per
  tick), on the first windows of a HAPT test session;
and, for the CMSIS-NN CNN-LSTM, every window of two HAPT test sessions and of the demo session
through the board against the `tflite_micro` backend (must be byte-equal) and ai_edge_litert
(counted). imu_stream's size is reported too.

Results: bench/results/firmware_board.json. Run (bundles from `gesturekit export`, the CNN head
with `--model cnn`; the demo bundle and session from `make demo` or any synthetic run):
    .venv/bin/python bench/firmware_board.py --data HAPT --bundle B --cnn-bundle C \
        --demo-bundle D --demo-session demo/data/s02_session1.csv [--icount-windows 8] \
        [--release] [--cold-build]
(HAPT: the UCI HAPT folder, https://archive.ics.uci.edu/dataset/341.)
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from gesturekit.device.core.backends import Classifier, quantize
from gesturekit.device.core.bundle import load_bundle
from gesturekit.device.core.lineparser import format_sample
from gesturekit.device.core.postprocess import PostprocessConfig
from gesturekit.device.core.recording import load_session
from gesturekit.device.core.stream_eval import reference_phase, replay
from gesturekit.device.emulator import firmware

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # harness/, beside bench/
from harness.emulated_board import feed_classifier  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "firmware_board.json"
HAPT_SESSIONS = ("acc_exp03_user02.txt", "acc_exp07_user04.txt")  # UCI test subjects 2 and 4
INSTRUCTIONS_PER_TICK = 40  # -icount shift=0: 1 ns per instruction; SysTick 25 MHz
ASSUMED_MHZ = 64  # nRF52840 (Nano 33 BLE) core clock, for the implied time
PARTS = ("model", "tflm_core", "tflm_kernels", "cmsis_nn", "newlib_nano", "libm_libgcc_libstdcxx",
         "app")
MAP_LINE = re.compile(r"^ (\S+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")


def part_of(origin: str) -> str:
    """Which part of the firmware an input file of the link map belongs to. The firmware's
    TFLM archive keeps its members' paths (ar P): .../core/<source>.o or .../kernel/<source>.o."""
    name = Path(origin.split("(")[0]).name
    if name == "model_data.o":
        return "model"
    if name.startswith("libtflm"):
        member = origin.split("(", 1)[1]
        if "/third_party/cmsis_nn/" in member:
            return "cmsis_nn"
        return "tflm_kernels" if "/kernel/" in member else "tflm_core"
    if name.startswith(("libc_nano", "libg_nano", "libnosys")):
        return "newlib_nano"
    if name.startswith(("libm", "libgcc", "libstdc++", "libsupc++")):
        return "libm_libgcc_libstdcxx"
    return "app"


def flash_split(map_path: Path) -> dict[str, int]:
    """Bytes in flash (.text, .ARM.exidx, .data's load image) per part, from the link map."""
    split: dict[str, int] = defaultdict(int)
    text = map_path.read_text()
    memory_map = text[text.index("Linker script and memory map"):]
    output = None
    pending = None  # a long input-section name, whose numbers are on the next line
    for line in memory_map.splitlines():
        if line.startswith("."):
            output = line.split()[0]
            continue
        match = MAP_LINE.match(line)
        if match is None:
            stripped = line.strip()
            pending = stripped if stripped.startswith(".") and len(stripped.split()) == 1 else None
            continue
        section, _, size, origin = match.groups()
        section = section or pending
        pending = None
        if output not in (".text", ".ARM.exidx", ".data") or not section or origin.startswith("0x"):
            continue
        split[part_of(origin.strip())] += int(size, 16)
    return {part: split.get(part, 0) for part in PARTS}


def size_of(elf: Path) -> dict[str, int]:
    """`arm-none-eabi-size` (Berkeley): text, data, bss (bss includes stack and heap here)."""
    out = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True,
                         check=True).stdout.splitlines()[1].split()
    text, data, bss = map(int, out[:3])
    return {"text": text, "data": data, "bss": bss, "flash": text + data, "ram": data + bss}


def session_stream(path: Path, windows: int | None, bundle) -> tuple[np.ndarray, bytes]:
    data = load_session(path).data
    if windows is not None:  # the first seconds set the reference frame and are in no window
        reference = reference_phase(bundle)
        data = data[:reference + bundle.window + (windows - 1) * bundle.hop]
    stream = b"".join(format_sample(row) for row in data)
    # What both sides read: the board parses these lines, the host reads the same values back.
    return np.array([[float(v) for v in line.split(b",")] for line in stream.splitlines()],
                    np.float32), stream


def measure_build(bundle_dir: str, kernels: str, session: Path, icount_windows: int,
                  release: bool = False) -> dict:
    bundle = load_bundle(bundle_dir)
    build = firmware.build_firmware("classifier", bundle_dir, kernels=kernels, release=release)
    samples, stream = session_stream(session, icount_windows, bundle)
    start = time.monotonic()
    run = feed_classifier(build.elf, stream, icount=True)
    ticks = np.array(list(run.ticks.values()))
    return {"kernels": kernels + (" (TFLM_RELEASE=1)" if release else ""),
            "size": size_of(build.elf), "flash_split": flash_split(build.map),
            "model_bytes": bundle.path("int8").stat().st_size,
            "arena_used": run.stats["arena_used"], "arena_bytes": run.stats["arena_bytes"],
            "stack_used": run.stats["stack_used"], "stack_bytes": run.stats["stack_bytes"],
            "instructions_per_invoke": int(np.median(ticks)) * INSTRUCTIONS_PER_TICK,
            "instructions_min_max": [int(ticks.min()) * INSTRUCTIONS_PER_TICK,
                                     int(ticks.max()) * INSTRUCTIONS_PER_TICK],
            "icount_windows": len(ticks), "icount_seconds": time.monotonic() - start,
            "int8_first_windows": {str(k): v.tolist() for k, v in run.int8.items()}}


def event_texts(events) -> list[str]:
    return [f"{e.time:9.2f} s  {e.label:<20} {e.confidence:5.2f}" for e in events]


def compare_session(elf: Path, bundle_dir: str, path: Path) -> dict:
    """Every window of a session: the board against tflite_micro and ai_edge_litert."""
    bundle = load_bundle(bundle_dir)
    samples, stream = session_stream(path, None, bundle)
    start = time.monotonic()
    run = feed_classifier(elf, stream, deadline_s=3600)
    seconds = time.monotonic() - start
    board_events = [line.rsplit("  (", 1)[0] for line in run.events]
    q = bundle.quantization["output"]
    result = {"session": path.name, "bundle": bundle_dir, "windows": len(run.int8),
              "samples": len(samples), "stream_bytes": len(stream), "board_seconds": seconds,
              "board_events": len(board_events)}
    post = PostprocessConfig.for_bundle(bundle)
    for backend in ("tflite_micro", "ai_edge_litert"):
        ends, probs, events = replay(bundle, samples, Classifier(bundle, backend, "int8"), post)
        host = quantize(probs, np.float32(q["scale"]), q["zero_point"])  # back to the int8 outputs
        board = np.array([run.int8[int(e)] for e in ends])
        lsb = np.abs(board.astype(int) - host.astype(int))
        texts = event_texts(events)
        result[backend] = {
            "windows_differing": int((lsb.max(axis=1) > 0).sum()),
            "bytes_differing": int((lsb > 0).sum()), "max_lsb": int(lsb.max()),
            "argmax_differing": int((board.argmax(axis=1) != host.argmax(axis=1)).sum()),
            "events": len(texts),
            "events_differing": len(set(texts) ^ set(board_events)),
            "events_equal": texts == board_events}
    return result


def cold_build_seconds(kernels: str) -> float:
    """A TFLM library build from nothing, as CI does it on a fresh machine."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.monotonic()
        subprocess.run(["make", "-s", "-C", str(REPO / "firmware_notes"), "-j2", "tflm",
                        f"TFLM_KERNELS={kernels}", f"TFLM_BUILD_DIR={tmp}/tflm"], check=True,
                       capture_output=True)
        return time.monotonic() - start


def table(builds: list[dict]) -> str:
    base = {b["model"]: b for b in builds if b["kernels"] == "reference"}
    rows = ["| model | kernels | flash (text+data) | of it: model / TFLM core / TFLM kernels / "
            "CMSIS-NN / newlib-nano / libm+libgcc+libstdc++ / app | RAM (data+bss, stack and "
            "heap included) | arena used / size | stack used / size | instructions per Invoke "
            "| at 64 MHz | vs reference |", "|" + "---|" * 10]
    for b in builds:
        s = b["flash_split"]
        kb = " / ".join(f"{s[p] / 1024:.1f}" for p in PARTS)
        ins = b["instructions_per_invoke"]
        ratio = base[b["model"]]["instructions_per_invoke"] / ins if b["model"] in base else None
        rows.append(f"| {b['model']} | {b['kernels']} | {b['size']['flash']:,} B | {kb} KB | "
                    f"{b['size']['ram']:,} B | {b['arena_used']:,} / {b['arena_bytes']:,} B | "
                    f"{b['stack_used']:,} / {b['stack_bytes']:,} B | {ins / 1e6:.2f} M | "
                    f"{ins / ASSUMED_MHZ / 1000:.1f} ms | "
                    f"{f'{ratio:.1f}x fewer' if ratio and b['kernels'] != 'reference' else 'baseline'} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True,
                    help="the UCI HAPT folder (https://archive.ics.uci.edu/dataset/341); its "
                         f"RawData/ holds the test sessions {', '.join(HAPT_SESSIONS)}")
    ap.add_argument("--bundle", required=True, help="the default CNN-LSTM bundle (HAPT)")
    ap.add_argument("--cnn-bundle", help="the CNN head bundle (`gesturekit export --model cnn`)")
    ap.add_argument("--demo-bundle", help="the demo's (synthetic) bundle")
    ap.add_argument("--demo-session", help="the demo's session CSV")
    ap.add_argument("--icount-windows", type=int, default=8)
    ap.add_argument("--cold-build", action="store_true", help="also time TFLM builds from nothing")
    ap.add_argument("--skip-equality", action="store_true")
    ap.add_argument("--release", action="store_true", help="also the CNN-LSTM with TFLM_RELEASE=1")
    args = ap.parse_args()
    hapt = [args.data / "RawData" / name for name in HAPT_SESSIONS]
    missing = [path for path in hapt if not path.is_file()]
    if missing:
        ap.error(f"--data {args.data}: no {missing[0].relative_to(args.data)}; expected the UCI "
                 "HAPT folder")
    firmware.check_tools()

    builds = []
    for name, bundle_dir in (("cnn_lstm", args.bundle), ("cnn_head", args.cnn_bundle)):
        for kernels in ("cmsis_nn", "reference"):
            if bundle_dir:
                builds.append({**measure_build(bundle_dir, kernels, hapt[0], args.icount_windows),
                               "model": name})
                print(f"{name} {kernels}: {builds[-1]['instructions_per_invoke'] / 1e6:.2f} M "
                      "instructions per Invoke", flush=True)
    if args.release:  # the default model, CMSIS-NN, TFLM without error strings and asserts
        builds.append({**measure_build(args.bundle, "cmsis_nn", hapt[0], args.icount_windows, True),
                       "model": "cnn_lstm"})
    same = {b["model"]: b["int8_first_windows"] for b in builds if b["kernels"] == "reference"}
    kernels_agree = {f"{b['model']} {b['kernels']}": b["int8_first_windows"] == same.get(b["model"])
                     for b in builds if b["kernels"] != "reference"}
    stream = firmware.build_firmware("stream", recording=hapt[0])
    results = {"machine": platform.platform(), "qemu": subprocess.run(
        ["qemu-system-arm", "--version"], capture_output=True, text=True).stdout.splitlines()[0],
        "gcc": subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True,
                              text=True).stdout.splitlines()[0],
        "builds": builds, "cmsis_nn_equals_reference_first_windows": kernels_agree,
        "imu_stream": {"size": size_of(stream.elf), "recording_samples": len(
            load_session(hapt[0]).data)}}
    if not args.skip_equality:
        elf = firmware.build_firmware("classifier", args.bundle).elf
        sessions = [compare_session(elf, args.bundle, path) for path in hapt]
        if args.demo_bundle and args.demo_session:
            demo_elf = firmware.build_firmware("classifier", args.demo_bundle).elf
            sessions.append(compare_session(demo_elf, args.demo_bundle, Path(args.demo_session)))
        results["equality"] = sessions
        for s in sessions:
            t, a = s["tflite_micro"], s["ai_edge_litert"]
            print(f"{s['session']}: {s['windows']} windows; vs tflite_micro {t['windows_differing']} "
                  f"differ, events equal {t['events_equal']}; vs ai_edge_litert "
                  f"{a['windows_differing']} windows differ (max {a['max_lsb']} LSB, argmax "
                  f"{a['argmax_differing']}), {a['events_differing']} events differ", flush=True)
    if args.cold_build:
        results["cold_build_seconds"] = {k: cold_build_seconds(k) for k in ("cmsis_nn", "reference")}
        results["cold_build_cores"] = 2
    results["table"] = table(builds)
    print(results["table"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    assert shutil.which("qemu-system-arm"), "needs qemu-system-arm"
    main()
